"""Time-based entries (birthday, holiday, win-back, broadcast) from the scheduler's scan, with a moved clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.journeys import time_triggers
from engine.journeys.versions import create_journey
from engine.store.models import Contact, Event
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, SmtpServer, drain
from triggers import birthday, holiday, win_back
from workers.runtime import Runtime
from workers.scheduler import run_once, scan_once

NUMBERS = itertools.count(1)


def contact_event(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, customer: str, *,
                  event_type: str = "contact_updated", occurred_at: datetime | None = None,
                  properties: dict[str, Any] | None = None, **contact: Any) -> None:
    payload = {"id": f"e-{next(NUMBERS)}", "type": event_type, "occurred_at": (occurred_at or clock()).isoformat(),
               "contact": {"external_id": customer, "email": f"{customer}@example.com", **contact},
               "properties": properties or {}}
    with sessions.begin() as session:
        [result] = ingest_events(session, shop.id, [payload], now=clock())
    assert result.status == "accepted"


def journey(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, definition: dict[str, Any]) -> None:
    with sessions.begin() as session:
        create_journey(session, shop.id, "Timed", definition, templates=SEED_TEMPLATES, now=clock())


def scan(rt: Runtime) -> int:
    entered = scan_once(rt)
    run_once(rt)
    drain(rt)
    return entered


def recipients(smtp_server: SmtpServer) -> list[str]:
    return [m["To"] for m in smtp_server.messages]


def test_a_birthday_greeting_goes_out_three_days_before_at_ten_local_time_once_a_year(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """Tokyo contact born 10 January: the greeting leaves 7 January 10:00 Tokyo time, once, and again next year."""
    clock.current = datetime(2030, 1, 6, 12, 0, tzinfo=UTC)
    contact_event(sessions, shop, clock, "kenji", birthday="1990-01-10", timezone="Asia/Tokyo", first_name="Kenji")
    contact_event(sessions, shop, clock, "other", birthday="1990-06-01", timezone="Asia/Tokyo")
    journey(sessions, shop, clock, birthday.recipe(days_before=3, coupon_code="BDAY10"))

    clock.current = datetime(2030, 1, 7, 0, 59, tzinfo=UTC)  # 09:59 in Tokyo
    assert scan(runtime) == 0
    clock.current = datetime(2030, 1, 7, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
    assert scan(runtime) == 1
    assert scan(runtime) == 0  # the scan repeats every minute: nobody enters twice
    [mail] = smtp_server.messages
    assert mail["To"] == "kenji@example.com" and "Happy birthday, Kenji" in mail["Subject"]
    assert "BDAY10" in mail.get_body(("plain",)).get_content()

    clock.current = datetime(2031, 1, 7, 1, 30, tzinfo=UTC)
    assert scan(runtime) == 1
    assert recipients(smtp_server) == ["kenji@example.com", "kenji@example.com"]


def test_a_29_february_birthday_is_greeted_on_the_28th_in_other_years(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """Leap-day birthdays are not skipped three years in four."""
    clock.current = datetime(2031, 2, 27, 12, 0, tzinfo=UTC)
    contact_event(sessions, shop, clock, "leap", birthday="2000-02-29", timezone="UTC")
    journey(sessions, shop, clock, birthday.recipe())
    clock.current = datetime(2031, 2, 28, 10, 5, tzinfo=UTC)
    assert scan(runtime) == 1
    assert recipients(smtp_server) == ["leap@example.com"]


def test_holiday_greetings_follow_each_contacts_local_date(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """New Year at 09:00 local: Auckland is greeted while it is still 31 December in London."""
    clock.current = datetime(2030, 12, 31, 12, 0, tzinfo=UTC)
    contact_event(sessions, shop, clock, "kiwi", timezone="Pacific/Auckland")
    contact_event(sessions, shop, clock, "londoner", timezone="Europe/London")
    journey(sessions, shop, clock, holiday.recipe(dates=["01-01"], name="Happy New Year", at="09:00"))

    clock.current = datetime(2030, 12, 31, 20, 30, tzinfo=UTC)  # 09:30 on 1 January in Auckland
    assert scan(runtime) == 1
    clock.current = datetime(2031, 1, 1, 9, 30, tzinfo=UTC)  # 09:30 in London
    assert scan(runtime) == 1
    assert recipients(smtp_server) == ["kiwi@example.com", "londoner@example.com"]
    assert all("Happy New Year" in m["Subject"] for m in smtp_server.messages)


def test_win_back_reaches_lapsed_customers_and_a_new_order_ends_it(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """No order for 90 days: first email at once; an order before the discount email ends the run."""
    start = clock.current
    contact_event(sessions, shop, clock, "lapsed", event_type="order_placed", occurred_at=start - timedelta(days=100),
                  properties={"order_id": "o1", "total": 40})
    contact_event(sessions, shop, clock, "recent", event_type="order_placed", occurred_at=start - timedelta(days=10),
                  properties={"order_id": "o2", "total": 40})
    contact_event(sessions, shop, clock, "never")  # no order ever: not a win-back case
    drain(runtime)
    journey(sessions, shop, clock, win_back.recipe(discount_code="BACK15"))
    assert scan(runtime) == 1
    assert recipients(smtp_server) == ["lapsed@example.com"]

    clock.advance(days=3)
    contact_event(sessions, shop, clock, "lapsed", event_type="order_placed", properties={"order_id": "o3"})
    drain(runtime)
    clock.advance(days=5)
    assert scan(runtime) == 0
    assert recipients(smtp_server) == ["lapsed@example.com"]  # no discount email after the new order


def test_a_broadcast_enters_everyone_matching_its_filter_once(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """At the set time VIPs get the email; before it nobody does; scanning again changes nothing."""
    for n in range(5):
        contact_event(sessions, shop, clock, f"c{n}", attributes={"vip": n % 2 == 0})
    at = clock.current + timedelta(hours=2)
    journey(sessions, shop, clock, {
        "trigger": {"broadcast_at": at.isoformat(), "filter": {"attribute": "vip", "value": True}},
        "steps": [{"type": "send", "id": "news", "channel": "email", "template": "holiday_greeting"}],
    })
    assert scan(runtime) == 0
    clock.current = at
    assert scan(runtime) == 3
    assert scan(runtime) == 0
    assert sorted(recipients(smtp_server)) == ["c0@example.com", "c2@example.com", "c4@example.com"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event).where(
            Event.workspace_id == shop.id, Event.type == "broadcast")) == 3


def entry_events(sessions: sessionmaker[Session], shop: Shop) -> dict[tuple[str, str], dict[str, Any]]:
    """The scan's entry events by (contact, type): the key their id ends with, and their properties."""
    with sessions() as session:
        rows = session.execute(select(Contact.external_id, Event.type, Event.external_id, Event.properties)
                               .join(Contact, Contact.id == Event.contact_id)
                               .where(Event.workspace_id == shop.id, Event.source == "scheduler"))
        return {(customer, event_type): {"id_key": external_id.rsplit(":", 1)[1],
                                         **{k: v for k, v in properties.items() if k != "journey_id"}}
                for customer, event_type, external_id, properties in rows}


def test_entry_events_say_which_date_holiday_or_lapse_they_are_for(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """Each entry event is keyed and described as the timeline shows it: the local date of the holiday
    (per time zone), the year of the birthday, the UTC date and instant of the last order."""
    clock.current = datetime(2031, 2, 28, 6, 0, tzinfo=UTC)
    contact_event(sessions, shop, clock, "late", event_type="order_placed", properties={"order_id": "o1"},
                  occurred_at=datetime(2030, 11, 1, 23, 30, 0, 250000, tzinfo=UTC), timezone="Asia/Tokyo")
    contact_event(sessions, shop, clock, "leap", birthday="2000-02-29", timezone="Europe/London")
    contact_event(sessions, shop, clock, "kiwi", timezone="Pacific/Auckland")
    drain(runtime)
    journey(sessions, shop, clock, win_back.recipe(days=90))
    journey(sessions, shop, clock, birthday.recipe(at="05:00"))
    journey(sessions, shop, clock, holiday.recipe(dates=["02-28", "03-01"], name="Spring", at="08:00"))

    assert scan(runtime) == 4  # London is not at 08:00 yet: "leap" has no holiday greeting
    assert entry_events(sessions, shop) == {
        ("late", "inactive"): {"id_key": "2030-11-01", "key": "2030-11-01", "last_event": "order_placed",
                               "last_at": "2030-11-01T23:30:00.250000+00:00", "days": 90},
        ("late", "holiday"): {"id_key": "2031-02-28", "key": "2031-02-28", "holiday": "02-28",
                              "holiday_name": "Spring"},
        ("leap", "date_reached"): {"id_key": "2031", "key": "2031", "date": "birthday", "occurrence": "2031-02-28",
                                   "offset_days": 0},
        ("kiwi", "holiday"): {"id_key": "2031-02-28", "key": "2031-02-28", "holiday": "02-28",
                              "holiday_name": "Spring"},
    }
    clock.current = datetime(2031, 2, 28, 19, 30, tzinfo=UTC)  # 19:30 in London; 1 March 08:30 in Auckland
    assert scan(runtime) == 2  # London's 28 February, and Auckland's 1 March: a holiday too


def test_a_scan_in_small_batches_enters_each_contact_due_once(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """Read two contacts at a time, lapsed VIPs still all enter, the others never; scanning again adds none."""
    for n in range(7):
        contact_event(sessions, shop, clock, f"c{n}", event_type="order_placed", properties={"order_id": f"o{n}"},
                      occurred_at=clock() - timedelta(days=100 + n), attributes={"vip": n % 3 != 1})
    drain(runtime)
    definition = win_back.recipe(days=90)
    definition["trigger"]["filter"] = {"attribute": "vip", "value": True}
    journey(sessions, shop, clock, definition)
    for expected in (5, 0):
        with sessions.begin() as session:
            assert time_triggers.scan(session, now=clock(), batch=2) == expected
    with sessions() as session:
        entered = session.scalars(select(Contact.external_id).join(Event, Event.contact_id == Contact.id)
                                  .where(Event.workspace_id == shop.id, Event.type == "inactive"))
        assert sorted(entered) == ["c0", "c2", "c3", "c5", "c6"]

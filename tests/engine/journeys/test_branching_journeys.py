"""Journeys with branches, driven through the real services, RQ jobs, SMTP and HTTP, with a moved clock."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.journeys.versions import create_journey
from engine.signing import verify
from engine.store.models import Contact, JournalEntry, Message, Run
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, SmtpServer, drain
from workers.runtime import Runtime
from workers.scheduler import run_once

EVENT_NUMBERS = itertools.count(1)


def ingest(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, event_type: str, *,
           customer: str = "c-1", email: str = "ada@example.com", properties: dict[str, Any] | None = None,
           contact: dict[str, Any] | None = None, event_id: str | None = None) -> None:
    payload = {
        "id": event_id or f"{event_type}-{next(EVENT_NUMBERS)}",
        "type": event_type,
        "occurred_at": clock().isoformat(),
        "contact": {"external_id": customer, "email": email, **(contact or {})},
        "properties": properties or {},
    }
    with sessions.begin() as session:
        [result] = ingest_events(session, shop.id, [payload], now=clock())
    assert result.status == "accepted", result


def journey(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, definition: dict[str, Any],
            name: str = "Branching") -> int:
    with sessions.begin() as session:
        return create_journey(session, shop.id, name, definition, templates=SEED_TEMPLATES, now=clock()).id


def tick(rt: Runtime) -> None:
    run_once(rt)
    drain(rt)


def send(step_id: str, template: str = "abandoned_cart") -> dict[str, Any]:
    return {"type": "send", "id": step_id, "channel": "email", "template": template}


CART = {"cart_id": "k1", "items": [{"name": "Mug", "price": 9, "quantity": 1}], "currency": "EUR",
        "total": 9, "recovery_url": "https://shop.example/cart/k1"}


def messages(sessions: sessionmaker[Session], shop: Shop) -> list[Message]:
    with sessions() as session:
        return list(session.scalars(select(Message).where(Message.workspace_id == shop.id).order_by(Message.id)))


def journal(sessions: sessionmaker[Session], shop: Shop, kind: str) -> list[str]:
    with sessions() as session:
        return [e.detail or "" for e in session.scalars(
            select(JournalEntry).where(JournalEntry.workspace_id == shop.id, JournalEntry.kind == kind)
            .order_by(JournalEntry.id))]


def test_wait_for_event_takes_yes_when_the_event_comes_and_no_at_the_timeout(
    runtime: Runtime, sessions, shop, clock, smtp_server: SmtpServer
) -> None:
    """A run waiting for order_placed moves on the moment it arrives; another times out into 'no'."""
    journey(sessions, shop, clock, {
        "trigger": {"event": "cart_updated", "key": "cart_id"},
        "steps": [{"type": "wait_for_event", "id": "await-order", "event": "order_placed",
                   "timeout": {"hours": 4},
                   "yes": [{"type": "update_contact", "id": "mark-buyer", "add_tags": ["recovered"]}],
                   "no": [send("nudge")]}],
    })
    ingest(sessions, shop, clock, "cart_updated", customer="buyer", email="b@example.com", properties=CART)
    ingest(sessions, shop, clock, "cart_updated", customer="browser", email="w@example.com",
           properties={**CART, "cart_id": "k2", "recovery_url": "https://shop.example/cart/k2"})
    drain(runtime)
    clock.advance(hours=1)
    ingest(sessions, shop, clock, "order_placed", customer="buyer", email="b@example.com",
           properties={"cart_id": "k1"})
    drain(runtime)
    with sessions() as session:
        buyer = session.scalar(select(Contact).where(Contact.workspace_id == shop.id, Contact.external_id == "buyer"))
        assert buyer is not None and buyer.attributes["tags"] == ["recovered"]
    assert smtp_server.messages == []

    clock.advance(hours=3, seconds=1)
    tick(runtime)
    [mail] = smtp_server.messages
    assert mail["To"] == "w@example.com"
    yes, no = journal(sessions, shop, "branch")
    assert yes.startswith("yes: order_placed received (order_placed-")
    assert no == "no: no order_placed before the timeout"


def test_a_condition_on_metrics_and_attributes_routes_each_contact(
    runtime: Runtime, sessions, shop, clock, smtp_server: SmtpServer
) -> None:
    """VIPs get the reminder at once; everyone else waits a day; the timeline says which branch and why."""
    journey(sessions, shop, clock, {
        "trigger": {"event": "cart_updated", "key": "cart_id"},
        "steps": [{"type": "condition", "id": "is-vip",
                   "condition": {"any": [{"attribute": "vip", "value": True},
                                         {"property": "total", "op": "gte", "value": 500}]},
                   "yes": [send("vip-email")],
                   "no": [{"type": "wait", "id": "a-day", "days": 1}, send("regular-email")]}],
    })
    ingest(sessions, shop, clock, "cart_updated", customer="vip", email="vip@example.com", properties=CART,
           contact={"attributes": {"vip": True}})
    ingest(sessions, shop, clock, "cart_updated", customer="big", email="big@example.com",
           properties={**CART, "cart_id": "k9", "total": 800})
    ingest(sessions, shop, clock, "cart_updated", customer="plain", email="plain@example.com",
           properties={**CART, "cart_id": "k3"})
    drain(runtime)
    assert sorted(m["To"] for m in smtp_server.messages) == ["big@example.com", "vip@example.com"]
    clock.advance(days=1, seconds=1)
    tick(runtime)
    assert sorted(m["To"] for m in smtp_server.messages) == ["big@example.com", "plain@example.com",
                                                             "vip@example.com"]
    branches = journal(sessions, shop, "branch")
    assert "yes: vip eq True or event.total gte 500: true" in branches
    assert "no: vip eq True or event.total gte 500: false" in branches


def test_a_split_with_a_holdout_sends_only_to_the_test_arm_and_records_the_arm(
    runtime: Runtime, sessions, shop, clock, smtp_server: SmtpServer
) -> None:
    """A 50/50 split with a holdout: about half get the email, each message carries its arm."""
    journey(sessions, shop, clock, {
        "trigger": {"event": "cart_updated", "key": "cart_id"},
        "steps": [{"type": "split", "id": "ab", "arms": [
            {"name": "email", "weight": 50, "steps": [send("reminder")]},
            {"name": "control", "weight": 50, "holdout": True},
        ]}],
    })
    for n in range(40):
        ingest(sessions, shop, clock, "cart_updated", customer=f"c{n}", email=f"c{n}@example.com",
               properties={**CART, "cart_id": f"cart-{n}"})
    drain(runtime)
    sent = messages(sessions, shop)
    assert 10 <= len(sent) <= 30  # 40 draws at p = 0.5: outside this is a 1-in-1,000 event
    assert {m.arm for m in sent} == {"ab:email"}
    assert len(smtp_server.messages) == len(sent)
    with sessions() as session:
        runs = list(session.scalars(select(Run).where(Run.workspace_id == shop.id)))
    assert all(r.status == "completed" for r in runs)
    assert sum(1 for r in runs if r.state.get("arm") == "ab:control") == 40 - len(sent)


def test_wait_until_sends_at_ten_local_time_on_a_weekday(
    runtime: Runtime, sessions, shop, clock, smtp_server: SmtpServer
) -> None:
    """A Saturday-evening cart in New York waits for Monday 10:00 New York time."""
    clock.current = datetime(2030, 1, 5, 23, 0, tzinfo=UTC)  # Saturday 18:00 in New York
    journey(sessions, shop, clock, {
        "trigger": {"event": "cart_updated", "key": "cart_id"},
        "steps": [{"type": "wait_until", "id": "ten-am", "time": "10:00",
                   "weekdays": ["mon", "tue", "wed", "thu", "fri"]}, send("reminder")],
    })
    ingest(sessions, shop, clock, "cart_updated", properties=CART, contact={"timezone": "America/New_York"})
    drain(runtime)
    with sessions() as session:
        [run] = session.scalars(select(Run).where(Run.workspace_id == shop.id))
    assert run.next_at == datetime(2030, 1, 7, 15, 0, tzinfo=UTC)  # Monday 10:00 EST
    clock.current = datetime(2030, 1, 7, 14, 59, tzinfo=UTC)
    tick(runtime)
    assert smtp_server.messages == []
    clock.current = datetime(2030, 1, 7, 15, 0, 1, tzinfo=UTC)
    tick(runtime)
    assert len(smtp_server.messages) == 1


def test_entry_filter_and_once_ever_rule_say_why_a_contact_was_not_enrolled(
    runtime: Runtime, sessions, shop, clock, smtp_server: SmtpServer
) -> None:
    """Carts under 20 do not enter; a contact enters a once-ever journey only the first time."""
    journey(sessions, shop, clock, {
        "trigger": {"event": "cart_updated", "key": "cart_id",
                    "filter": {"property": "total", "op": "gte", "value": 20}},
        "reentry": "once_ever",
        "steps": [send("reminder")],
    }, name="Big carts")
    ingest(sessions, shop, clock, "cart_updated", properties=CART)  # total 9
    ingest(sessions, shop, clock, "cart_updated", properties={**CART, "cart_id": "k5", "total": 25})
    ingest(sessions, shop, clock, "cart_updated", properties={**CART, "cart_id": "k6", "total": 30})
    drain(runtime)
    assert len(smtp_server.messages) == 1
    assert journal(sessions, shop, "not_enrolled") == [
        "Big carts: entry filter not met: event.total gte 20",
        "Big carts: re-entry rule once ever",
    ]


def test_every_days_rule_lets_a_contact_back_in_after_the_period(
    runtime: Runtime, sessions, shop, clock, smtp_server: SmtpServer
) -> None:
    """At most once per 7 days: a second cart 2 days later is refused, one 8 days later enters."""
    journey(sessions, shop, clock, {
        "trigger": {"event": "cart_updated"}, "reentry": {"every_days": 7}, "steps": [send("reminder")],
    })
    for days, cart in ((0, "a"), (2, "b"), (8, "c")):
        clock.advance(days=days)
        ingest(sessions, shop, clock, "cart_updated",
               properties={**CART, "cart_id": cart, "recovery_url": f"https://shop.example/{cart}"})
        drain(runtime)
    texts = [m.get_body(("plain",)).get_content() for m in smtp_server.messages]
    assert len(texts) == 2 and "shop.example/a" in texts[0] and "shop.example/c" in texts[1]


class Receiver(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.answers.pop(0) if self.answers else 204
        if status < 300:
            self.received.append((dict(self.headers), body))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("TestReceiver", (Receiver,), {"answers": [], "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/rapport", handler
    server.shutdown()
    server.server_close()


def test_a_webhook_step_posts_signed_json_and_retries_a_500_once(
    runtime: Runtime, sessions, shop, clock, smtp_server, receiver
) -> None:
    """The shop's URL gets the run's context signed with the workspace secret; a 500 is retried, not doubled."""
    url, handler = receiver
    handler.answers.extend([500])
    journey(sessions, shop, clock, {
        "trigger": {"event": "review_submitted", "key": "order_id"},
        "steps": [{"type": "webhook", "id": "alert-shop", "url": url, "payload": {"alert": "low rating"}}],
    }, name="Low rating alert")
    ingest(sessions, shop, clock, "review_submitted", properties={"order_id": "o-1", "score": 1})
    drain(runtime)
    assert handler.received == []
    [message] = messages(sessions, shop)
    assert message.status == "scheduled" and "HTTP 500" in (message.error or "")

    clock.advance(hours=1)
    tick(runtime)
    [(headers, body)] = handler.received
    verify(headers["Rapport-Signature"], shop.credentials.signing_secret, body, now=clock())
    data = json.loads(body)
    assert data["journey"] == "Low rating alert" and data["data"] == {"alert": "low rating"}
    assert data["event"]["score"] == 1 and data["contact"]["external_id"] == "c-1"
    assert messages(sessions, shop)[0].status == "sent"
    clock.advance(hours=2)
    tick(runtime)
    assert len(handler.received) == 1


def test_a_contact_entering_a_segment_enrolls_once_and_quietly_otherwise(
    runtime: Runtime, sessions, shop, clock, smtp_server: SmtpServer
) -> None:
    """Becoming a VIP with two orders starts the journey once; events before it leave no trace."""
    journey(sessions, shop, clock, {
        "trigger": {"segment": {"all": [{"attribute": "vip", "value": True},
                                        {"event": "order_placed", "at_least": 2}]}},
        "steps": [{"type": "update_contact", "id": "welcome-vip", "add_tags": ["vip-welcomed"]}],
    }, name="VIP welcome")
    ingest(sessions, shop, clock, "contact_updated", contact={"attributes": {"vip": True}})
    ingest(sessions, shop, clock, "order_placed", properties={"order_id": "o1"})
    drain(runtime)
    assert journal(sessions, shop, "enrolled") == [] and journal(sessions, shop, "not_enrolled") == []
    ingest(sessions, shop, clock, "order_placed", properties={"order_id": "o2"})
    ingest(sessions, shop, clock, "contact_updated", contact={"first_name": "Ada"})
    drain(runtime)
    [entry] = journal(sessions, shop, "enrolled")
    assert entry.startswith("VIP welcome")
    with sessions() as session:
        contact = session.scalar(select(Contact).where(Contact.workspace_id == shop.id))
        assert contact is not None and contact.attributes["tags"] == ["vip-welcomed"]

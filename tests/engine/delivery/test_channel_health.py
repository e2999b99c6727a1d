"""Channel health: a circuit breaker per workspace channel. Failures the retries did not clear open
it; after a cool-down one probe goes; its success closes the breaker by itself, its failure
re-opens it for longer. A person can still pause and resume by hand."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery import channel_health
from engine.delivery.channel_health import (
    WAITING_FOR_RESUME,
    counts_toward_breaker,
    pause,
    paused_channels,
    record_failure,
    record_success,
    resume,
    start_probe,
    wake_probes,
)
from engine.store.models import ChannelHealth, Contact, Message
from engine.workspaces.accounts import create_workspace
from tests.conftest import FakeClock, Shop


def fail(sessions: sessionmaker[Session], shop: Shop, channel: str, clock: FakeClock, *,
         times: int = 1, pause_after: int = 3, error: str = "HTTP 500", counted: bool = True) -> list[bool]:
    results = []
    for _ in range(times):
        with sessions.begin() as session:
            results.append(record_failure(session, shop.id, channel, error, now=clock(), pause_after=pause_after,
                                          counted=counted) is not None)
    return results


def succeed(sessions: sessionmaker[Session], shop: Shop, channel: str, clock: FakeClock) -> bool:
    with sessions.begin() as session:
        return record_success(session, shop.id, channel, now=clock())


def probe(sessions: sessionmaker[Session], shop: Shop, channel: str, clock: FakeClock) -> bool:
    with sessions.begin() as session:
        return start_probe(session, shop.id, channel, now=clock())


def status_of(sessions: sessionmaker[Session], shop: Shop, channel: str) -> dict:
    with sessions() as session:
        return next(s for s in channel_health.channel_status(session, shop.id) if s["channel"] == channel)


def held_messages(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, channel: str,
                  attempts: list[int]) -> list[int]:
    """Messages held for the paused channel, one per entry of `attempts` (how often each was tried)."""
    ids = []
    with sessions.begin() as session:
        for n, tried in enumerate(attempts):
            contact = Contact(workspace_id=shop.id, external_id=f"held-{n}", email=f"held{n}@example.com",
                              created_at=clock(), updated_at=clock())
            session.add(contact)
            session.flush()
            message = Message(workspace_id=shop.id, contact_id=contact.id, channel=channel, template="welcome",
                              to_address=contact.email, status="scheduled", attempts=tried,
                              scheduled_at=clock() + timedelta(hours=1), error=WAITING_FOR_RESUME,
                              created_at=clock(), context={})
            session.add(message)
            session.flush()
            ids.append(message.id)
    return ids


def due_ids(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> list[int]:
    with sessions() as session:
        return list(session.scalars(select(Message.id).where(
            Message.workspace_id == shop.id, Message.scheduled_at <= clock(), Message.status == "scheduled")))


@pytest.mark.parametrize(("attempts", "permanent", "counted"), [
    (1, False, False), (2, False, True), (8, False, True), (1, True, True)])
def test_only_failures_the_retry_schedule_did_not_clear_count(attempts: int, permanent: bool, counted: bool) -> None:
    """A first attempt's transient failure (greylisting) does not count; a second one, or a permanent one, does."""
    assert counts_toward_breaker(attempts=attempts, permanent=permanent) is counted


def test_the_nth_counted_failure_opens_the_breaker_and_says_when_it_probes(sessions, shop, clock) -> None:
    """With pause_after=3 the third counted failure opens it (once); the first probe is a minute later."""
    assert fail(sessions, shop, "sms", clock, times=5, error="HTTP 503: gateway down") == [
        False, False, True, False, False]
    with sessions() as session:
        assert paused_channels(session, shop.id) == {"sms"}
    assert status_of(sessions, shop, "sms") == {
        "channel": "sms", "state": "open", "paused": True, "paused_by": "breaker", "since": clock().isoformat(),
        "paused_at": clock().isoformat(), "next_probe_at": (clock() + timedelta(minutes=1)).isoformat(),
        "consecutive_failures": 5, "opened_total": 1, "last_error": "HTTP 503: gateway down"}


def test_the_opening_line_names_the_failures_the_error_and_the_next_probe(sessions, shop, clock) -> None:
    """The timeline says what happened and when it will try again."""
    with sessions.begin() as session:
        opened = record_failure(session, shop.id, "email", "451 try later", now=clock(), pause_after=1)
    assert opened is not None
    assert opened.describe() == (f"email paused automatically after 1 failure: 451 try later; "
                                 f"next probe at {(clock() + timedelta(minutes=1)).isoformat()}")


def test_failures_that_do_not_count_write_nothing_and_never_open(sessions, shop, clock) -> None:
    """Fifty first-attempt failures in a row: no row, no pause."""
    assert fail(sessions, shop, "email", clock, times=50, pause_after=1, counted=False) == [False] * 50
    with sessions() as session:
        assert session.scalars(select(ChannelHealth).where(ChannelHealth.workspace_id == shop.id)).all() == []


def test_a_success_resets_the_count_so_scattered_failures_never_open(sessions, shop, clock) -> None:
    """Failures separated by successes are not consecutive."""
    for _ in range(4):
        assert fail(sessions, shop, "telegram", clock, times=2) == [False, False]
        assert succeed(sessions, shop, "telegram", clock) is False
    status = status_of(sessions, shop, "telegram")
    assert (status["consecutive_failures"], status["state"], status["paused"]) == (0, "closed", False)
    assert status["last_error"] == "HTTP 500"  # kept, for the record


def test_a_success_on_a_healthy_channel_writes_nothing(sessions, shop, clock) -> None:
    """record_success is a conditional UPDATE: no row is created, none is touched at zero."""
    succeed(sessions, shop, "email", clock)
    fail(sessions, shop, "viber", clock)
    clock.advance(minutes=1)
    succeed(sessions, shop, "viber", clock)
    clock.advance(minutes=1)
    succeed(sessions, shop, "viber", clock)
    with sessions() as session:
        rows = session.scalars(select(ChannelHealth).where(ChannelHealth.workspace_id == shop.id)).all()
    assert [(r.channel, r.consecutive_failures, r.updated_at) for r in rows] == [
        ("viber", 0, clock() - timedelta(minutes=1))]


def test_a_success_while_open_does_not_close_the_breaker(sessions, shop, clock) -> None:
    """A send that started before the breaker opened proves nothing: only a probe closes it."""
    fail(sessions, shop, "whatsapp", clock, times=3)
    assert succeed(sessions, shop, "whatsapp", clock) is False
    assert status_of(sessions, shop, "whatsapp")["state"] == "open"


def test_no_probe_goes_before_the_cool_down_and_exactly_one_after(sessions, shop, clock) -> None:
    """59 s after opening no probe may go; at a minute four workers ask at once and one wins."""
    fail(sessions, shop, "sms", clock, times=3)
    clock.advance(seconds=59)
    assert probe(sessions, shop, "sms", clock) is False
    clock.advance(seconds=1)
    with ThreadPoolExecutor(max_workers=4) as pool:
        won = list(pool.map(lambda _: probe(sessions, shop, "sms", clock), range(4)))
    assert won.count(True) == 1
    status = status_of(sessions, shop, "sms")
    assert (status["state"], status["paused"], status["since"]) == ("half_open", True, clock().isoformat())


def test_a_probe_that_goes_through_closes_the_breaker_and_releases_the_held_messages(sessions, shop, clock) -> None:
    """The provider answers again: closed, count cleared, every held message due at once."""
    fail(sessions, shop, "email", clock, times=3)
    held = held_messages(sessions, shop, clock, "email", [0, 1, 2])
    clock.advance(minutes=1)
    assert probe(sessions, shop, "email", clock) is True
    assert succeed(sessions, shop, "email", clock) is True
    assert due_ids(sessions, shop, clock) == held
    status = status_of(sessions, shop, "email")
    assert (status["state"], status["paused"], status["paused_by"], status["next_probe_at"],
            status["consecutive_failures"], status["opened_total"]) == ("closed", False, None, None, 0, 1)
    with sessions() as session:
        assert paused_channels(session, shop.id) == set()


def test_a_failed_probe_reopens_with_a_cool_down_that_doubles_up_to_half_an_hour(sessions, shop, clock) -> None:
    """After the first minute: 2, 4, 8, 16, 30, 30 min; any failure of a probe re-opens, even a first attempt's."""
    fail(sessions, shop, "email", clock, times=3)
    cool_downs = []
    for _ in range(6):
        clock.advance(minutes=30)
        assert probe(sessions, shop, "email", clock) is True
        with sessions.begin() as session:
            reopened = record_failure(session, shop.id, "email", "451 still down", now=clock(), counted=False)
        assert reopened is not None and reopened.after_probe
        assert status_of(sessions, shop, "email")["state"] == "open"
        cool_downs.append(reopened.next_probe_at - clock())
    assert cool_downs == [timedelta(minutes=m) for m in (2, 4, 8, 16, 30, 30)]
    assert status_of(sessions, shop, "email")["opened_total"] == 1  # re-opening is the same outage


def test_a_lost_probe_is_replaced_after_the_probe_timeout(sessions, shop, clock) -> None:
    """The probe's worker died: no answer ever comes, and two minutes later another probe may go."""
    fail(sessions, shop, "sms", clock, times=3)
    clock.advance(minutes=1)
    assert probe(sessions, shop, "sms", clock) is True
    clock.advance(seconds=channel_health.PROBE_TIMEOUT.total_seconds() - 1)
    assert probe(sessions, shop, "sms", clock) is False
    clock.advance(seconds=1)
    assert probe(sessions, shop, "sms", clock) is True


def test_a_channel_paused_by_a_person_is_never_probed_nor_closed_by_a_success(sessions, shop, clock) -> None:
    """Only a person's resume ends a person's pause, even one made while the breaker was open."""
    fail(sessions, shop, "email", clock, times=3)
    with sessions.begin() as session:
        assert pause(session, shop.id, "email", now=clock()) is True
        assert pause(session, shop.id, "email", now=clock()) is False  # already paused by a person
    held_messages(sessions, shop, clock, "email", [1])
    clock.advance(hours=2)
    assert probe(sessions, shop, "email", clock) is False
    with sessions.begin() as session:
        assert wake_probes(session, now=clock()) == []
    assert succeed(sessions, shop, "email", clock) is False
    status = status_of(sessions, shop, "email")
    assert (status["state"], status["paused_by"], status["next_probe_at"]) == ("open", "person", None)
    with sessions.begin() as session:
        assert resume(session, shop.id, "email", now=clock()) is True
    assert status_of(sessions, shop, "email")["state"] == "closed"


def test_a_person_can_pause_a_healthy_channel(sessions, shop, clock) -> None:
    """A channel that never failed can be paused by hand; its messages are then held."""
    with sessions.begin() as session:
        assert pause(session, shop.id, "telegram", now=clock()) is True
    with sessions() as session:
        assert paused_channels(session, shop.id) == {"telegram"}
    assert status_of(sessions, shop, "telegram") | {"since": None} == {
        "channel": "telegram", "state": "open", "paused": True, "paused_by": "person", "since": None,
        "paused_at": clock().isoformat(), "next_probe_at": None, "consecutive_failures": 0, "opened_total": 0,
        "last_error": None}


def test_resuming_closes_and_clears_the_count(sessions, shop, clock) -> None:
    """After resume the channel needs N fresh counted failures to open again."""
    fail(sessions, shop, "sms", clock, times=3)
    with sessions.begin() as session:
        assert resume(session, shop.id, "sms", now=clock.advance(hours=1)) is True
    with sessions.begin() as session:
        assert resume(session, shop.id, "sms", now=clock()) is False  # already running
    status = status_of(sessions, shop, "sms")
    assert (status["state"], status["paused"], status["consecutive_failures"]) == ("closed", False, 0)
    assert fail(sessions, shop, "sms", clock, times=3) == [False, False, True]
    assert status_of(sessions, shop, "sms")["opened_total"] == 2


def test_the_scheduler_wakes_the_most_tried_held_message_to_probe_a_quiet_channel(sessions, shop, clock) -> None:
    """No traffic after the cool-down: one held message (the one tried most) becomes due; not twice."""
    fail(sessions, shop, "email", clock, times=3)
    _, most_tried, _ = held_messages(sessions, shop, clock, "email", [0, 3, 1])
    with sessions.begin() as session:
        assert wake_probes(session, now=clock()) == []  # cooling down
    clock.advance(minutes=1)
    with sessions.begin() as session:
        assert wake_probes(session, now=clock()) == [most_tried]
    with sessions.begin() as session:
        assert wake_probes(session, now=clock.advance(seconds=1)) == []  # it is on its way
    assert due_ids(sessions, shop, clock) == [most_tried]


def test_with_nothing_held_the_scheduler_half_opens_the_channel_for_new_messages(sessions, shop, clock) -> None:
    """Every message took its fallback: after the cool-down the channel is unpaused half-open (new messages
    are made on it); a failure there pauses it again for longer, a success closes it."""
    fail(sessions, shop, "sms", clock, times=3)
    clock.advance(minutes=1)
    with sessions.begin() as session:
        assert wake_probes(session, now=clock()) == []
        assert paused_channels(session, shop.id) == set()
    status = status_of(sessions, shop, "sms")
    assert (status["state"], status["paused"], status["paused_by"]) == ("half_open", False, "breaker")
    with sessions.begin() as session:
        reopened = record_failure(session, shop.id, "sms", "HTTP 503", now=clock(), counted=False)
        assert reopened is not None and paused_channels(session, shop.id) == {"sms"}
    assert status_of(sessions, shop, "sms")["paused_at"] == clock().isoformat()
    clock.advance(minutes=2)
    with sessions.begin() as session:
        wake_probes(session, now=clock())
    assert succeed(sessions, shop, "sms", clock) is True
    assert status_of(sessions, shop, "sms")["state"] == "closed"


def test_status_lists_every_channel_closed_by_default(sessions, shop) -> None:
    """A channel that never failed has no row and shows as closed, in CHANNELS order."""
    with sessions() as session:
        status = channel_health.channel_status(session, shop.id)
    assert [s["channel"] for s in status] == ["email", "sms", "telegram", "whatsapp", "viber"]
    assert all(s["state"] == "closed" and not s["paused"] and s["consecutive_failures"] == 0 for s in status)


def test_one_workspaces_failures_never_open_anothers_breaker(sessions, shop, clock) -> None:
    """Health is per workspace: each shop has its own credentials and its own trouble."""
    with sessions.begin() as session:
        other = Shop(create_workspace(session, "Other Shop", now=clock()))
    fail(sessions, shop, "email", clock, times=3)
    with sessions() as session:
        assert paused_channels(session, shop.id) == {"email"}
        assert paused_channels(session, other.id) == set()


def test_concurrent_failures_are_all_counted_and_exactly_one_call_opens(sessions, shop, clock) -> None:
    """Workers failing at once on a channel with no row yet: no lost update, one opening."""

    def fail_once(_: int) -> bool:
        with sessions.begin() as session:
            return record_failure(session, shop.id, "telegram", "timeout", now=clock(), pause_after=12) is not None

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(fail_once, range(16)))
    assert results.count(True) == 1
    assert status_of(sessions, shop, "telegram")["consecutive_failures"] == 16


def test_a_long_error_is_cut_to_a_readable_length(sessions, shop, clock) -> None:
    """A provider's whole HTML error page does not end up in the status."""
    fail(sessions, shop, "viber", clock, error="<html>" + "x" * 5000)
    assert len(status_of(sessions, shop, "viber")["last_error"]) == channel_health.MAX_ERROR_TEXT

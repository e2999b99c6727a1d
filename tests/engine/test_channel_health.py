"""Channel health: N failures in a row pause a workspace's channel; successes reset; a person resumes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.models import ChannelHealth
from engine.services import channel_health
from engine.services.channel_health import paused_channels, record_failure, record_success, resume
from engine.services.workspaces import create_workspace
from tests.conftest import FakeClock, Shop


def fail(sessions: sessionmaker[Session], shop: Shop, channel: str, clock: FakeClock, *,
         times: int = 1, pause_after: int = 3, error: str = "HTTP 500") -> list[bool]:
    results = []
    for _ in range(times):
        with sessions.begin() as session:
            results.append(record_failure(session, shop.id, channel, error, now=clock(), pause_after=pause_after))
    return results


def status_of(sessions: sessionmaker[Session], shop: Shop, channel: str) -> dict:
    with sessions() as session:
        return next(s for s in channel_health.channel_status(session, shop.id) if s["channel"] == channel)


def test_the_nth_consecutive_failure_pauses_the_channel_and_says_so_once(sessions, shop, clock) -> None:
    """With pause_after=3 the third failure pauses (True); later ones keep it paused (False)."""
    assert fail(sessions, shop, "sms", clock, times=5, error="HTTP 503: gateway down") == [
        False, False, True, False, False]
    with sessions() as session:
        assert paused_channels(session, shop.id) == {"sms"}
    status = status_of(sessions, shop, "sms")
    assert status == {"channel": "sms", "paused": True, "paused_at": clock().isoformat(),
                      "consecutive_failures": 5, "last_error": "HTTP 503: gateway down"}


def test_a_success_resets_the_count_so_scattered_failures_never_pause(sessions, shop, clock) -> None:
    """Failures separated by successes are not consecutive."""
    for _ in range(4):
        assert fail(sessions, shop, "telegram", clock, times=2) == [False, False]
        with sessions.begin() as session:
            record_success(session, shop.id, "telegram")
    status = status_of(sessions, shop, "telegram")
    assert status["consecutive_failures"] == 0 and status["paused"] is False
    assert status["last_error"] == "HTTP 500"  # kept, for the record


def test_a_success_on_a_healthy_channel_writes_nothing(sessions, shop, clock) -> None:
    """record_success is a conditional UPDATE: no row is created, none is touched at zero."""
    with sessions.begin() as session:
        record_success(session, shop.id, "email", now=clock())
    fail(sessions, shop, "viber", clock)
    with sessions.begin() as session:
        record_success(session, shop.id, "viber", now=clock.advance(minutes=1))
    with sessions.begin() as session:
        record_success(session, shop.id, "viber", now=clock.advance(minutes=1))
    with sessions() as session:
        rows = session.scalars(select(ChannelHealth).where(ChannelHealth.workspace_id == shop.id)).all()
    assert [(r.channel, r.consecutive_failures, r.updated_at) for r in rows] == [
        ("viber", 0, clock() - timedelta(minutes=1))]


def test_a_success_does_not_resume_a_paused_channel(sessions, shop, clock) -> None:
    """Only a person resumes: one message slipping through does not prove the provider well."""
    fail(sessions, shop, "whatsapp", clock, times=3)
    with sessions.begin() as session:
        record_success(session, shop.id, "whatsapp")
    with sessions() as session:
        assert paused_channels(session, shop.id) == {"whatsapp"}


def test_resuming_unpauses_and_clears_the_count(sessions, shop, clock) -> None:
    """After resume the channel needs N fresh failures to pause again."""
    fail(sessions, shop, "sms", clock, times=3)
    with sessions.begin() as session:
        assert resume(session, shop.id, "sms", now=clock.advance(hours=1)) is True
    with sessions.begin() as session:
        assert resume(session, shop.id, "sms", now=clock()) is False  # already running
    assert status_of(sessions, shop, "sms") | {"last_error": None} == {
        "channel": "sms", "paused": False, "paused_at": None, "consecutive_failures": 0, "last_error": None}
    assert fail(sessions, shop, "sms", clock, times=3) == [False, False, True]


def test_status_lists_every_channel_healthy_by_default(sessions, shop) -> None:
    """A channel that never failed has no row and shows as healthy, in CHANNELS order."""
    with sessions() as session:
        status = channel_health.channel_status(session, shop.id)
    assert [s["channel"] for s in status] == ["email", "sms", "telegram", "whatsapp", "viber"]
    assert all(not s["paused"] and s["consecutive_failures"] == 0 and s["last_error"] is None for s in status)


def test_one_workspaces_failures_never_pause_another(sessions, shop, clock) -> None:
    """Health is per workspace: each shop has its own credentials and its own trouble."""
    with sessions.begin() as session:
        other = Shop(create_workspace(session, "Other Shop", now=clock()))
    fail(sessions, shop, "email", clock, times=3)
    with sessions() as session:
        assert paused_channels(session, shop.id) == {"email"}
        assert paused_channels(session, other.id) == set()


def test_concurrent_failures_are_all_counted_and_exactly_one_call_pauses(sessions, shop, clock) -> None:
    """Workers failing at once on a channel with no row yet: no lost update, one pause."""

    def fail_once(_: int) -> bool:
        with sessions.begin() as session:
            return record_failure(session, shop.id, "telegram", "timeout", now=clock(), pause_after=12)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(fail_once, range(16)))
    assert results.count(True) == 1
    assert status_of(sessions, shop, "telegram")["consecutive_failures"] == 16


def test_a_long_error_is_cut_to_a_readable_length(sessions, shop, clock) -> None:
    """A provider's whole HTML error page does not end up in the status."""
    fail(sessions, shop, "viber", clock, error="<html>" + "x" * 5000)
    assert len(status_of(sessions, shop, "viber")["last_error"]) == channel_health.MAX_ERROR_TEXT

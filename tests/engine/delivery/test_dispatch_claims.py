"""Dispatch claims: a dead worker's untouched claims go back to be sent when its lease runs out (seconds,
not minutes); a live worker's lease is renewed; a slow worker that lost its claim does not send a second
copy; a graceful stop gives the claims back at once."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery import dispatch
from engine.delivery.handover import CLAIM_LEASE, Lease, SentRecord, handover
from tests.conftest import FakeClock, Shop, SmtpServer, drain, scheduled_emails, statuses
from workers.runtime import Runtime
from workers.scheduler import run_once


def test_claims_of_a_worker_that_died_go_back_and_are_sent_once(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """A worker claimed three messages and died before sending any: once its lease (15 s) runs out the
    sweeper hands them out again in the same sweep, and each is sent exactly once."""
    ids = scheduled_emails(sessions, shop, clock, 3)
    batch = dispatch._load(sessions, ids, runtime.templates, now=clock())
    claimed = dispatch._claim_chunk(sessions, list(batch.messages.values()), batch, runtime.channels, "dead-worker",
                                    now=clock())
    assert len(claimed) == 3 and statuses(sessions, ids) == ["claimed"] * 3
    clock.advance(seconds=CLAIM_LEASE.total_seconds() - 1)
    run_once(runtime)
    drain(runtime)
    assert statuses(sessions, ids) == ["claimed"] * 3 and smtp_server.messages == []
    clock.advance(seconds=2)
    run_once(runtime)  # releases the claims and hands them out
    drain(runtime)
    assert statuses(sessions, ids) == ["sent"] * 3
    assert sorted(m["To"] for m in smtp_server.messages) == ["c0@example.com", "c1@example.com", "c2@example.com"]


def test_a_slow_worker_whose_claim_was_handed_on_does_not_send_again(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """Worker A claims and stalls; its claim goes stale and worker B claims the message anew; when A
    wakes up the claim is no longer its own, so only B's send happens."""
    [message_id] = scheduled_emails(sessions, shop, clock, 1)
    batch_a = dispatch._load(sessions, [message_id], runtime.templates, now=clock())
    mine = dispatch._claim_chunk(sessions, list(batch_a.messages.values()), batch_a, runtime.channels, "worker-a",
                                 now=clock())
    clock.advance(seconds=CLAIM_LEASE.total_seconds() + 1)
    run_once(runtime)  # releases A's stale claim
    batch_b = dispatch._load(sessions, [message_id], runtime.templates, now=clock())
    theirs = dispatch._claim_chunk(sessions, list(batch_b.messages.values()), batch_b, runtime.channels,
                                   "worker-b", now=clock())
    assert [m.id for m in theirs] == [message_id]

    dispatch._send_chunk(sessions, mine, batch_a, runtime.channels, clock, "worker-a", pause_after=10,
                         sleep=lambda seconds: None)
    assert statuses(sessions, [message_id]) == ["claimed"] and smtp_server.messages == []
    dispatch._send_chunk(sessions, theirs, batch_b, runtime.channels, clock, "worker-b", pause_after=10,
                         sleep=lambda seconds: None)
    assert statuses(sessions, [message_id]) == ["sent"] and len(smtp_server.messages) == 1


def test_a_live_workers_renewed_lease_keeps_its_claims(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """Claims renewed by the worker's heartbeat stay its own past the lease; they go once renewals stop."""
    ids = scheduled_emails(sessions, shop, clock, 2)
    batch = dispatch._load(sessions, ids, runtime.templates, now=clock())
    dispatch._claim_chunk(sessions, list(batch.messages.values()), batch, runtime.channels, "busy-worker",
                          now=clock())
    lease = Lease(sessions, "busy-worker", clock)
    for _ in range(3):
        clock.advance(seconds=CLAIM_LEASE.total_seconds() - 5)
        lease.renew()
        run_once(runtime)
        assert statuses(sessions, ids) == ["claimed"] * 2
    clock.advance(seconds=CLAIM_LEASE.total_seconds() + 1)
    run_once(runtime)
    drain(runtime)
    assert statuses(sessions, ids) == ["sent"] * 2 and len(smtp_server.messages) == 2


def test_a_stop_request_finishes_the_current_message_and_gives_the_rest_back_at_once(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """SIGTERM mid-batch (the worker's stop flag): three go out, the other seven are `scheduled` again
    straight away, none in doubt, and the next worker sends them without waiting for a lease."""
    ids = scheduled_emails(sessions, shop, clock, 10)
    dispatch.dispatch_messages(sessions, ids, channels=runtime.channels, templates=runtime.templates, clock=clock,
                               stopping=lambda: len(smtp_server.messages) >= 3)
    assert statuses(sessions, ids) == ["sent"] * 3 + ["scheduled"] * 7
    drain(runtime)  # the released messages were handed to the queue already
    assert statuses(sessions, ids) == ["sent"] * 10 and len(smtp_server.messages) == 10


@pytest.mark.skipif(not os.environ.get("RAPPORT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="cuts a PostgreSQL connection with pg_terminate_backend; SQLite has none")
def test_a_hand_over_whose_connection_was_cut_reconnects_and_records_the_message_sent_before(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        db_engine: Engine) -> None:
    """The database connection of a lane is terminated between two sends: the next hand-over reconnects,
    records the first message sent and marks the second sending, instead of leaving the first in doubt."""
    first, second = scheduled_emails(sessions, shop, clock, 2)
    batch = dispatch._load(sessions, [first, second], runtime.templates, now=clock())
    dispatch._claim_chunk(sessions, list(batch.messages.values()), batch, runtime.channels, "lane", now=clock())
    with handover(sessions) as hand:
        assert hand.step(None, first, token="lane", now=clock()) == 1
        pid = hand._driver().info.backend_pid  # type: ignore[attr-defined]
        with db_engine.connect() as admin:
            assert admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        sent = SentRecord(batch.messages[first], "<1@example.com>", "Hi", "v1", {}, "sent: welcome", clock())
        assert hand.step(sent, second, token="lane", now=clock()) == 1
    assert statuses(sessions, [first, second]) == ["sent", "sending"]

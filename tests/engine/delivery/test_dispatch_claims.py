"""Dispatch claims: a dead worker's untouched claims go back to be sent when its lease runs out (seconds,
not minutes); a live worker's lease is renewed; a slow worker that lost its claim does not send a second
copy; a graceful stop gives the claims back at once."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery.dispatch import DispatchJob, dispatch_messages
from engine.delivery.handover import CLAIM_LEASE, Lease, SentRecord, handover
from tests.conftest import FakeClock, Shop, SmtpServer, drain, scheduled_emails, statuses
from workers.runtime import Runtime
from workers.scheduler import run_once


def worker(runtime: Runtime, sessions: sessionmaker[Session], ids: list[int], token: str) -> DispatchJob:
    """A dispatch job of these ids under `token`, as one worker runs it (its clock the test's)."""
    return DispatchJob(sessions, ids, channels=runtime.channels, templates=runtime.templates, clock=runtime.clock,
                       token=token, sleep=lambda seconds: None)


def test_claims_of_a_worker_that_died_go_back_and_are_sent_once(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """A worker claimed three messages and died before sending any: once its lease (15 s) runs out the
    sweeper hands them out again in the same sweep, and each is sent exactly once."""
    ids = scheduled_emails(sessions, shop, clock, 3)
    claimed = worker(runtime, sessions, ids, "dead-worker").claim()
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
    worker_a = worker(runtime, sessions, [message_id], "worker-a")
    mine = worker_a.claim()
    clock.advance(seconds=CLAIM_LEASE.total_seconds() + 1)
    run_once(runtime)  # releases A's stale claim
    worker_b = worker(runtime, sessions, [message_id], "worker-b")
    theirs = worker_b.claim()
    assert [m.id for m in theirs] == [message_id]

    worker_a.send(mine)
    assert statuses(sessions, [message_id]) == ["claimed"] and smtp_server.messages == []
    worker_b.send(theirs)
    assert statuses(sessions, [message_id]) == ["sent"] and len(smtp_server.messages) == 1
    assert (worker_a.result.outcomes, worker_b.result.outcomes) == ({message_id: "lost"}, {message_id: "sent"})


def test_a_live_workers_renewed_lease_keeps_its_claims(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """Claims renewed by the worker's heartbeat stay its own past the lease; they go once renewals stop."""
    ids = scheduled_emails(sessions, shop, clock, 2)
    worker(runtime, sessions, ids, "busy-worker").claim()
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
    dispatch_messages(sessions, ids, channels=runtime.channels, templates=runtime.templates, clock=clock,
                      stopping=lambda: len(smtp_server.messages) >= 3)
    assert statuses(sessions, ids) == ["sent"] * 3 + ["scheduled"] * 7
    drain(runtime)  # the released messages were handed to the queue already
    assert statuses(sessions, ids) == ["sent"] * 10 and len(smtp_server.messages) == 10


def test_a_dispatch_job_answers_what_became_of_each_message_it_claimed(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """Stopped after three sends, the job says so: three sent, the other seven given back unsent."""
    ids = scheduled_emails(sessions, shop, clock, 10)
    result = dispatch_messages(sessions, ids, channels=runtime.channels, templates=runtime.templates,
                               clock=clock, stopping=lambda: len(smtp_server.messages) >= 3)
    assert result.outcomes == {**dict.fromkeys(ids[:3], "sent"), **dict.fromkeys(ids[3:], "released")}
    assert str(result) == "7 released, 3 sent"


@pytest.mark.skipif(not os.environ.get("RAPPORT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="cuts a PostgreSQL connection with pg_terminate_backend; SQLite has none")
def test_a_hand_over_whose_connection_was_cut_reconnects_and_records_the_message_sent_before(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        db_engine: Engine) -> None:
    """The database connection of a lane is terminated between two sends: the next hand-over reconnects,
    records the first message sent and marks the second sending, instead of leaving the first in doubt."""
    first, second = scheduled_emails(sessions, shop, clock, 2)
    job = worker(runtime, sessions, [first, second], "lane")
    job.claim()
    with handover(sessions) as hand:
        assert hand.step(None, first, token="lane", now=clock()) == 1
        pid = hand.connection.scalar(text("SELECT pg_backend_pid()"))  # type: ignore[attr-defined]
        with db_engine.connect() as admin:
            assert admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        sent = SentRecord(job.messages[first], "<1@example.com>", "Hi", "v1", {}, "sent: welcome", clock())
        assert hand.step(sent, second, token="lane", now=clock()) == 1
    assert statuses(sessions, [first, second]) == ["sent", "sending"]

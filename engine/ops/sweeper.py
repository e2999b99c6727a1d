"""The scheduler's sweep: find due and overdue work in the database and hand it out again.

Redis only carries work; the tables say what is owed. Each sweep stamps the rows it
hands out (`enqueued_at`), so a row is handed out again only if it is still owed
`redeliver_after` later: the job was lost (Redis flushed, a worker killed) or is stuck.
Rows are claimed with SKIP LOCKED in batches, so a sweep never waits on a worker.

Messages taken by a dispatch job carry its lease (`claimed_at`, renewed every few
seconds while the job runs: engine/delivery/handover.py). When it runs out the worker
is gone: its claims go back to be sent at once, and a message it left `sending` (its
body may have reached the provider) is settled by the workspace's in-doubt policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from engine.delivery import in_doubt
from engine.delivery.handover import CLAIM_LEASE
from engine.store.db import JobName, defer
from engine.store.dialect import server_started_at
from engine.store.models import Event, Journey, JourneyStatus, Message, MessageStatus, Run, RunStatus, Workspace


@dataclass(frozen=True)
class SweepReport:
    due_runs: int = 0
    events: int = 0
    messages: int = 0
    in_doubt: int = 0  # messages whose worker died after handing them over, settled by the policy
    released: int = 0  # claims of dead workers, sent again

    @property
    def total(self) -> int:
        return self.due_runs + self.events + self.messages + self.in_doubt + self.released


def _stamp(session: Session, model: Any, owed: ColumnElement[bool], order: Any, *, now: datetime,
           redeliver_after: timedelta, limit: int) -> list[int]:
    """Mark up to `limit` owed rows as handed out now; return their ids."""
    not_in_flight = or_(model.enqueued_at.is_(None), model.enqueued_at < now - redeliver_after)
    chosen = (
        select(model.id).where(owed, not_in_flight).order_by(order).limit(limit).with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(chosen))
    if ids:
        session.execute(update(model).where(model.id.in_(ids)).values(enqueued_at=now))
    return ids


def sweep(session: Session, *, now: datetime, redeliver_after: timedelta, limit: int = 500,
          lease: timedelta = CLAIM_LEASE) -> SweepReport:
    # Paused journeys hold their timers.
    live_journeys = select(Journey.id).where(Journey.status == JourneyStatus.LIVE.value)
    runs = _stamp(session, Run, and_(Run.status == RunStatus.WAITING.value, Run.next_at <= now,
                                     Run.journey_id.in_(live_journeys)), Run.next_at,
                  now=now, redeliver_after=redeliver_after, limit=limit)
    # Fresh events are stamped when ingested, so only lost or stuck ones come back.
    events = _stamp(session, Event, Event.evaluated_at.is_(None), Event.id,
                    now=now, redeliver_after=redeliver_after, limit=limit)
    messages = _stamp(
        session, Message,
        and_(Message.status == MessageStatus.SCHEDULED.value, Message.scheduled_at <= now),
        Message.scheduled_at, now=now, redeliver_after=redeliver_after, limit=limit,
    )
    defer(session, JobName.ADVANCE_RUNS, runs)
    defer(session, JobName.EVALUATE_EVENTS, events)
    defer(session, JobName.DISPATCH_MESSAGES, messages)
    # A claim carries its job's token, so releasing one whose worker is merely slow is safe (the
    # worker finds the claim gone at its hand-over and sends nothing); a live worker renews it.
    doubtful = settle_stale_sends(session, now=now, older_than=lease, limit=limit)
    released = release_stale_claims(session, now=now, older_than=lease)
    return SweepReport(len(runs), len(events), len(messages), doubtful, released)


def release_stale_claims(session: Session, *, now: datetime, older_than: timedelta) -> int:
    """Messages a dead worker had claimed but not handed over go back to be sent, at once: each is
    marked `sending` at its hand-over, so these never reached the provider (even if rendered, or
    mid MAIL/RCPT)."""
    stale = and_(Message.status == MessageStatus.CLAIMED.value, Message.claimed_at < now - older_than)
    released = list(session.scalars(
        update(Message).where(stale).values(status=MessageStatus.SCHEDULED.value, enqueued_at=now)
        .returning(Message.id)))
    defer(session, JobName.DISPATCH_MESSAGES, released)
    return len(released)


def settle_stale_sends(session: Session, *, now: datetime, older_than: timedelta, limit: int = 500) -> int:
    """Messages whose worker died after handing them over: their body may have reached the provider.
    Each is settled by its workspace's in-doubt policy (engine/delivery/in_doubt.py).

    On PostgreSQL the hand-over commits without waiting for the disk; if the server restarted
    since a claim was made, its `sending` mark may have been lost with the crash, so such a
    claim is in doubt too.
    """
    lapsed = Message.claimed_at < now - older_than
    stale: ColumnElement[bool] = and_(Message.status == MessageStatus.SENDING.value, lapsed)
    causes = {MessageStatus.SENDING.value: in_doubt.WORKER_STOPPED}
    started = server_started_at(session)
    if started is not None:
        stale = or_(stale, and_(Message.status == MessageStatus.CLAIMED.value, lapsed, Message.claimed_at < started))
        causes[MessageStatus.CLAIMED.value] = in_doubt.DATABASE_RESTARTED
    messages = list(session.scalars(select(Message).where(stale).order_by(Message.id).limit(limit)
                                    .with_for_update(skip_locked=True)))
    settings: dict[str, dict[str, Any] | None] = {}
    for message in messages:
        if message.workspace_id not in settings:
            settings[message.workspace_id] = session.scalar(
                select(Workspace.settings).where(Workspace.id == message.workspace_id))
        in_doubt.settle(session, message, settings=settings[message.workspace_id], cause=causes[message.status],
                        now=now)
    return len(messages)

"""The scheduler's sweep: find due and overdue work in the database and hand it out again.

Redis only carries work; the tables say what is owed. Each sweep stamps the rows it
hands out (`enqueued_at`), so a row is handed out again only if it is still owed
`redeliver_after` later: the job was lost (Redis flushed, a worker killed) or is stuck.
Rows are claimed with SKIP LOCKED in batches, so a sweep never waits on a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from engine.db import defer
from engine.models import Event, Journey, Message, MessageStatus, Run, RunStatus
from engine.services.journal import record_message


@dataclass(frozen=True)
class SweepReport:
    due_runs: int = 0
    events: int = 0
    messages: int = 0
    unknown: int = 0

    @property
    def total(self) -> int:
        return self.due_runs + self.events + self.messages + self.unknown


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


def sweep(session: Session, *, now: datetime, redeliver_after: timedelta, limit: int = 500) -> SweepReport:
    live_journeys = select(Journey.id).where(Journey.status == "live")  # paused journeys hold their timers
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
    defer(session, "advance_runs", runs)
    defer(session, "evaluate_events", events)
    defer(session, "dispatch_messages", messages)
    # A claim carries its batch's token, so releasing one that is merely slow is safe (its
    # worker will find the claim gone and skip it); a `sending` one is judged much later.
    release_stale_claims(session, now=now, older_than=redeliver_after * 5)
    unknown = mark_stale_sends_unknown(session, now=now, older_than=max(redeliver_after * 5, timedelta(minutes=5)))
    return SweepReport(len(runs), len(events), len(messages), unknown)


def release_stale_claims(session: Session, *, now: datetime, older_than: timedelta) -> int:
    """Messages a dead worker had taken with its batch but never started sending go back to
    `scheduled`: each one is marked `sending` before it is handed over, so these never were.

    On PostgreSQL dispatch commits without waiting for the disk; if the server restarted
    since a claim was made, its `sending` mark may have been lost with the crash, so such a
    claim is marked `unknown` instead of being sent again.
    """
    stale = and_(Message.status == MessageStatus.CLAIMED.value, Message.claimed_at < now - older_than)
    doubtful = 0
    if session.get_bind().dialect.name == "postgresql":
        started = session.scalar(select(func.pg_postmaster_start_time()))
        doubtful = len(list(session.scalars(
            update(Message).where(stale, Message.claimed_at < started)
            .values(status=MessageStatus.UNKNOWN.value,
                    error="the database restarted while this was being sent; not resent to avoid a duplicate")
            .returning(Message.id))))
    released = list(session.scalars(
        update(Message).where(stale).values(status=MessageStatus.SCHEDULED.value, enqueued_at=None)
        .returning(Message.id)))
    return len(released) + doubtful


def mark_stale_sends_unknown(session: Session, *, now: datetime, older_than: timedelta) -> int:
    """A message left in `sending` by a dead worker may or may not have gone out (it is the one
    the worker was handing over when it died).

    Sending it again could make a duplicate, so it is marked `unknown` and shown.
    """
    stale = list(
        session.scalars(
            select(Message).where(
                Message.status == MessageStatus.SENDING.value, Message.claimed_at < now - older_than
            ).limit(500).with_for_update(skip_locked=True)
        )
    )
    for message in stale:
        message.status = MessageStatus.UNKNOWN.value
        message.error = "worker stopped while sending; not resent to avoid a duplicate"
        record_message(session, message, "unknown", at=now, detail=message.error)
    return len(stale)

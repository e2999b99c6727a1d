"""Messages in doubt: the body may have reached the provider, but its answer was never recorded.

A message gets here in two ways: its worker died after handing it over (the sweeper finds
it `sending` with its lease run out), or the adapter raised SendInDoubt (the connection
broke after the body went out). A message that was claimed but not yet handed over is
never in doubt: it simply goes back to be sent (engine/delivery/handover.py).

What happens then is the workspace's `in_doubt` delivery setting, per kind of message:
`resend` (the default for transactional messages: a missing order confirmation is worse
than a duplicate, and the resend carries the same Message-ID, which some mailbox providers
fold into one) or `skip` (the default for marketing: the message is left `unknown`).
Either way the timeline says what happened and why, and /metrics counts it by outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from engine.contacts.journal import JournalKind, record_message
from engine.delivery.settings import in_doubt_policy
from engine.store.db import JobName, defer
from engine.store.models import Message, MessageStatus

# The journal kinds written, counted by ops_metrics.in_doubt_counts under these outcome names.
OUTCOMES = {JournalKind.IN_DOUBT_RESENT: "resent", JournalKind.IN_DOUBT_SKIPPED: "skipped"}
# A message in doubt after this many attempts is not resent again: something about it (or
# its provider) keeps killing the send, and each resend may be another copy.
MAX_RESEND_ATTEMPTS = 5

WORKER_STOPPED = "worker stopped after handing the body over"
DATABASE_RESTARTED = "the database restarted while it was being handed over"


def settle(session: Session, message: Message, *, settings: dict[str, Any] | None, cause: str, now: datetime,
           resend_at: datetime | None = None) -> JournalKind:
    """Apply the workspace's policy to `message`; return the journal kind written (in_doubt_resent or _skipped).

    `resend_at`: when a resend goes (default now; dispatch waits a retry delay after a
    broken connection)."""
    kind = "transactional" if message.transactional else "marketing"
    policy = in_doubt_policy(settings, transactional=message.transactional)
    if policy == "resend" and message.attempts >= MAX_RESEND_ATTEMPTS:
        detail = (f"in doubt: {cause}; not resent: in doubt after {message.attempts} attempts "
                  f"({kind} policy: resend, up to {MAX_RESEND_ATTEMPTS})")
        return _skip(session, message, detail, now=now)
    if policy == "skip":
        return _skip(session, message, f"in doubt: {cause}; not resent ({kind} policy: skip)", now=now)
    at = resend_at or now
    detail = f"in doubt: {cause}; resent ({kind} policy)"
    due = at <= now
    session.execute(update(Message).where(Message.id == message.id).values(
        status=MessageStatus.SCHEDULED.value, scheduled_at=at, enqueued_at=now if due else None, error=detail)
        .execution_options(synchronize_session=False))
    record_message(session, message, JournalKind.IN_DOUBT_RESENT, at=now,
                   detail=detail if due else f"{detail} at {at.isoformat()}")
    if due:
        defer(session, JobName.DISPATCH_MESSAGES, [message.id])
    return JournalKind.IN_DOUBT_RESENT


def _skip(session: Session, message: Message, detail: str, *, now: datetime) -> JournalKind:
    session.execute(update(Message).where(Message.id == message.id).values(
        status=MessageStatus.UNKNOWN.value, error=detail).execution_options(synchronize_session=False))
    record_message(session, message, JournalKind.IN_DOUBT_SKIPPED, at=now, detail=detail)
    return JournalKind.IN_DOUBT_SKIPPED

"""Channel health: a workspace's channel pauses after N consecutive send failures.

The dispatcher calls `record_failure` when an adapter raises and `record_success`
when a send goes through; it routes around `paused_channels` and re-schedules their
messages instead of failing them: to the step's fallback channel, or, with none,
held (`scheduled`, error WAITING_FOR_RESUME). A person resumes a channel (the API's
POST /api/v1/channels/<channel>/resume), which clears the count and sends the held
messages at once.

Rows are created on the first failure. Concurrent workers are safe: the row is
inserted with ON CONFLICT DO NOTHING, incremented in one UPDATE (which takes the row
lock), and paused by a conditional UPDATE whose row count says which call paused it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, func, select, update
from sqlalchemy.orm import Session

from engine.channels import CHANNELS
from engine.db import defer, dialect_insert
from engine.models import ChannelHealth, Message, MessageStatus, Workspace
from engine.services import delivery_settings
from engine.services.journal import record_message

DEFAULT_PAUSE_AFTER = 10
WAITING_FOR_RESUME = "waiting for the paused channel to be resumed"  # the error of a held message
MAX_ERROR_TEXT = 1000


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched: for a conditional UPDATE, whether this call won."""
    return cast(CursorResult[Any], result).rowcount


def _row(workspace_id: str, channel: str) -> Any:
    return (ChannelHealth.workspace_id == workspace_id) & (ChannelHealth.channel == channel)


def record_failure(session: Session, workspace_id: str, channel: str, error: str, *, now: datetime,
                   pause_after: int = DEFAULT_PAUSE_AFTER) -> bool:
    """Count one more consecutive failure; True when this call paused the channel."""
    insert = dialect_insert(session, ChannelHealth).values(
        workspace_id=workspace_id, channel=channel, consecutive_failures=0, updated_at=now)
    session.execute(insert.on_conflict_do_nothing(index_elements=["workspace_id", "channel"]))
    session.execute(
        update(ChannelHealth).where(_row(workspace_id, channel))
        .values(consecutive_failures=ChannelHealth.consecutive_failures + 1,
                last_error=error[:MAX_ERROR_TEXT], updated_at=now)
        .execution_options(synchronize_session=False))
    paused = session.execute(
        update(ChannelHealth)
        .where(_row(workspace_id, channel), ChannelHealth.paused_at.is_(None),
               ChannelHealth.consecutive_failures >= max(1, pause_after))
        .values(paused_at=now)
        .execution_options(synchronize_session=False))
    return _rowcount(paused) == 1


def record_success(session: Session, workspace_id: str, channel: str, *, now: datetime | None = None) -> None:
    """Reset the count. Costs nothing when it is already zero (the usual case): no row is written.

    A success does not resume a paused channel: pausing is a signal for a person,
    and one message that slipped through does not prove the provider is well.
    """
    values: dict[str, Any] = {"consecutive_failures": 0}
    if now is not None:
        values["updated_at"] = now
    session.execute(
        update(ChannelHealth)
        .where(_row(workspace_id, channel), ChannelHealth.consecutive_failures > 0)
        .values(**values)
        .execution_options(synchronize_session=False))


def paused_channels(session: Session, workspace_id: str) -> set[str]:
    return set(session.scalars(
        select(ChannelHealth.channel)
        .where(ChannelHealth.workspace_id == workspace_id, ChannelHealth.paused_at.is_not(None))))


def resume(session: Session, workspace_id: str, channel: str, *, now: datetime) -> bool:
    """Unpause the channel, clear its count and send the messages held for it; True when it was paused."""
    unpaused = session.execute(
        update(ChannelHealth)
        .where(_row(workspace_id, channel), ChannelHealth.paused_at.is_not(None))
        .values(paused_at=None, consecutive_failures=0, updated_at=now)
        .execution_options(synchronize_session=False))
    release_held(session, workspace_id, channel, now=now)  # and any that a hold racing an earlier resume left
    if _rowcount(unpaused) == 1:
        return True
    record_success(session, workspace_id, channel, now=now)
    return False


def release_held(session: Session, workspace_id: str, channel: str, *, now: datetime) -> list[int]:
    """The messages held for the channel while it was paused are due now (dispatched after commit),
    except marketing ones older than the workspace's `held_messages.expire_after_hours`, which
    are skipped: a day-old cart reminder is better not sent."""
    held = (Message.workspace_id == workspace_id, Message.channel == channel,
            Message.status == MessageStatus.SCHEDULED.value, Message.error == WAITING_FOR_RESUME)
    workspace = session.get(Workspace, workspace_id)
    hours = delivery_settings.held_expiry_hours(workspace.settings if workspace else None)
    if hours:
        why = f"skipped: held over {hours} h while {channel} was paused"
        for message in session.scalars(select(Message).where(
                *held, Message.transactional.is_(False), Message.created_at < now - timedelta(hours=hours))):
            message.status, message.skip_reason, message.error = MessageStatus.SKIPPED.value, why, None
            record_message(session, message, "skipped", at=now, detail=why)
        session.flush()
    released = list(session.scalars(
        update(Message).where(*held).values(scheduled_at=now, enqueued_at=now, error=None)
        .returning(Message.id).execution_options(synchronize_session=False)))
    defer(session, "dispatch_messages", released)
    return released


def channel_status(session: Session, workspace_id: str) -> list[dict[str, Any]]:
    """Every channel's health, in CHANNELS order; a channel that never failed is healthy."""
    rows = {row.channel: row for row in session.scalars(
        select(ChannelHealth).where(ChannelHealth.workspace_id == workspace_id))}
    status = []
    for channel in CHANNELS:
        row = rows.get(channel)
        status.append({
            "channel": channel,
            "paused": row is not None and row.paused_at is not None,
            "paused_at": row.paused_at.isoformat() if row is not None and row.paused_at else None,
            "consecutive_failures": row.consecutive_failures if row is not None else 0,
            "last_error": row.last_error if row is not None else None,
        })
    return status


def messages_by_status(session: Session, workspace_id: str, *, now: datetime,
                       hours: int = 24) -> dict[str, dict[str, int]]:
    """{channel: {status: count}} for the workspace's messages created in the last `hours`."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = session.execute(
        select(Message.channel, Message.status, func.count())
        .where(Message.workspace_id == workspace_id, Message.created_at >= now - timedelta(hours=hours))
        .group_by(Message.channel, Message.status))
    for channel, status, count in rows:
        counts[channel][status] = count
    return dict(counts)

"""Channel health: a circuit breaker per workspace channel, so that a provider that is down
stops being hammered, and one that comes back is used again without waiting for a person.

What counts toward opening (`counts_toward_breaker`): a failure the retry schedule did
not clear. A message's transient failure (timeout, 4xx SMTP reply, 429, 5xx) counts only
on its second or later attempt, or when it is given up; its first attempt does not,
because a greylisting or briefly busy provider answers exactly that way and the message's
own retry clears it. A permanent failure of the channel (a rejection that is not about the
address: bad credentials, a refused sender) counts at once. A dead address, a template
that cannot render or a channel with no adapter never counts. Any success resets the count.

States (`state`):
- closed: messages go out. RAPPORT_CHANNEL_PAUSE_AFTER (default 10) counted failures in a
  row open it; the timeline of the message that opened it says so and when it will probe.
- open: the channel's messages go to their step's fallback or are held (`scheduled`, error
  WAITING_FOR_RESUME). After a cool-down (1 min, doubling with each failed probe up to
  30 min; `cool_down`) a probe may go: the next message dispatch takes for the channel, or,
  with no traffic, one held or retrying message the scheduler wakes (`wake_probes`, the most
  tried first). When there is none (every message took its fallback) the scheduler unpauses the
  channel half-open (`paused_at` cleared), so that new messages are made on it again and the
  first of them probes it.
- half_open: a probe is out. Its success closes the breaker and releases the held messages
  at once (`release_held`); any failure of a send on the channel re-opens it with a longer
  cool-down. A probe with no answer after PROBE_TIMEOUT (its worker died) is replaced by
  another.

A person can pause a channel by hand (`pause`): held like open, but never probed or closed
by a success; and resume it (`resume`), which closes the breaker whatever its state.
`paused_at` is set whenever the channel's messages are held or sent by their fallback (open,
half_open with a probe out, or paused by a person), so the routing of new messages only asks
for it.

Concurrent workers are safe: the row is inserted with ON CONFLICT DO NOTHING, counted in
one UPDATE (which takes the row lock), and every change of state is a conditional UPDATE
whose row count says which call made it. Every decision takes `now`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, exists, func, select, update
from sqlalchemy.orm import Session

from engine.channels import CHANNELS
from engine.contacts.journal import JournalKind, record_message
from engine.delivery import settings as delivery_settings
from engine.reasons import Reason
from engine.store.db import JobName, defer
from engine.store.dialect import upsert
from engine.store.models import ChannelHealth, Message, MessageStatus, Workspace

DEFAULT_PAUSE_AFTER = 10
WAITING_FOR_RESUME = "waiting for the paused channel to be resumed"  # the error of a held message
MAX_ERROR_TEXT = 1000
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
BY_BREAKER, BY_PERSON = "breaker", "person"
FIRST_COOL_DOWN = timedelta(minutes=1)
MAX_COOL_DOWN = timedelta(minutes=30)
PROBE_TIMEOUT = timedelta(minutes=2)  # longer than any send's own timeout


@dataclass(frozen=True)
class Opened:
    """The breaker was opened (or re-opened after a failed probe) by this failure."""

    channel: str
    failures: int
    error: str
    next_probe_at: datetime
    after_probe: bool

    def describe(self) -> str:
        """The timeline's line."""
        why = "its probe failed" if self.after_probe else (
            f"{self.failures} failure{'s' if self.failures != 1 else ''}")
        return (f"{self.channel} paused automatically after {why}: {self.error}; "
                f"next probe at {self.next_probe_at.isoformat()}")


def counts_toward_breaker(*, attempts: int, permanent: bool) -> bool:
    """Whether a failed send counts toward opening the breaker (the rule is in the module docstring).
    `attempts` includes the failed one; a given-up message has attempts > 1."""
    return permanent or attempts >= 2


def cool_down(failed_probes: int) -> timedelta:
    """1 min after opening, doubled for each failed probe since, at most 30 min."""
    grown: timedelta = FIRST_COOL_DOWN * 2 ** min(failed_probes, 16)
    return min(grown, MAX_COOL_DOWN)


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched: for a conditional UPDATE, whether this call won."""
    return cast(CursorResult[Any], result).rowcount


def _row(workspace_id: str, channel: str) -> Any:
    return (ChannelHealth.workspace_id == workspace_id) & (ChannelHealth.channel == channel)


def _ensure_row(session: Session, workspace_id: str, channel: str, *, now: datetime) -> None:
    insert = upsert(session, ChannelHealth).values(
        workspace_id=workspace_id, channel=channel, consecutive_failures=0, updated_at=now, state=CLOSED,
        failed_probes=0, opened_total=0)
    session.execute(insert.on_conflict_do_nothing(index_elements=["workspace_id", "channel"]))


def _change(session: Session, workspace_id: str, channel: str, *conditions: Any, **values: Any) -> bool:
    """A conditional UPDATE of the channel's row; True when it matched (this call made the change)."""
    result = session.execute(update(ChannelHealth).where(_row(workspace_id, channel), *conditions)
                             .values(**values).execution_options(synchronize_session=False))
    return _rowcount(result) == 1


def record_failure(session: Session, workspace_id: str, channel: str, error: str, *, now: datetime,
                   pause_after: int = DEFAULT_PAUSE_AFTER, counted: bool = True) -> Opened | None:
    """One more failed send on the channel; an `Opened` when this call opened (or re-opened) the breaker.

    `counted`: whether it counts toward opening (`counts_toward_breaker`). One that does not
    writes nothing, unless a probe is out: then any failure re-opens the breaker."""
    if counted:
        _ensure_row(session, workspace_id, channel, now=now)
        _change(session, workspace_id, channel, consecutive_failures=ChannelHealth.consecutive_failures + 1,
                last_error=error[:MAX_ERROR_TEXT], updated_at=now)
        next_probe_at = now + cool_down(0)
        if _change(session, workspace_id, channel, ChannelHealth.state == CLOSED,
                   ChannelHealth.consecutive_failures >= max(1, pause_after),
                   state=OPEN, paused_by=BY_BREAKER, paused_at=now, state_since=now, next_probe_at=next_probe_at,
                   failed_probes=0, opened_total=ChannelHealth.opened_total + 1):
            failures = session.scalar(select(ChannelHealth.consecutive_failures).where(_row(workspace_id, channel)))
            return Opened(channel, failures or 0, error[:MAX_ERROR_TEXT], next_probe_at, after_probe=False)
    return _reopen_after_probe(session, workspace_id, channel, error, now=now)


def _reopen_after_probe(session: Session, workspace_id: str, channel: str, error: str, *,
                        now: datetime) -> Opened | None:
    row = session.execute(select(ChannelHealth.state, ChannelHealth.paused_by, ChannelHealth.failed_probes,
                                 ChannelHealth.consecutive_failures, ChannelHealth.paused_at)
                          .where(_row(workspace_id, channel))).one_or_none()
    if row is None or row.state != HALF_OPEN or row.paused_by != BY_BREAKER:
        return None
    next_probe_at = now + cool_down(row.failed_probes + 1)
    if not _change(session, workspace_id, channel, ChannelHealth.state == HALF_OPEN,
                   ChannelHealth.paused_by == BY_BREAKER, ChannelHealth.failed_probes == row.failed_probes,
                   state=OPEN, state_since=now, paused_at=row.paused_at or now, next_probe_at=next_probe_at,
                   failed_probes=row.failed_probes + 1, last_error=error[:MAX_ERROR_TEXT], updated_at=now):
        return None  # another worker's failure re-opened it first
    return Opened(channel, row.consecutive_failures, error[:MAX_ERROR_TEXT], next_probe_at, after_probe=True)


def record_success(session: Session, workspace_id: str, channel: str, *, now: datetime) -> bool:
    """Reset the count, and close the breaker when a probe is out; True when this call closed it
    (its held messages are then released). Costs nothing on a healthy channel: no row is written.

    A success while the breaker is open (a send that started before it opened) does not close
    it, nor does any success undo a person's pause."""
    _change(session, workspace_id, channel, ChannelHealth.consecutive_failures > 0,
            consecutive_failures=0, updated_at=now)
    closed = _change(session, workspace_id, channel, ChannelHealth.state == HALF_OPEN,
                     ChannelHealth.paused_by == BY_BREAKER, **_closed_values(now))
    if closed:
        release_held(session, workspace_id, channel, now=now)
    return closed


def _closed_values(now: datetime) -> dict[str, Any]:
    return {"state": CLOSED, "paused_by": None, "paused_at": None, "state_since": now, "next_probe_at": None,
            "failed_probes": 0, "consecutive_failures": 0, "updated_at": now}


def start_probe(session: Session, workspace_id: str, channel: str, *, now: datetime) -> bool:
    """Take the probe of an open breaker whose cool-down is over (or whose probe was lost):
    True when the caller's message is to be sent as the probe."""
    return _change(session, workspace_id, channel, ChannelHealth.paused_by == BY_BREAKER,
                   ChannelHealth.next_probe_at <= now,
                   state=HALF_OPEN, state_since=now, next_probe_at=now + PROBE_TIMEOUT, updated_at=now)


def _held(workspace_id: str, channel: str) -> tuple[Any, ...]:
    return (Message.workspace_id == workspace_id, Message.channel == channel,
            Message.status == MessageStatus.SCHEDULED.value, Message.error == WAITING_FOR_RESUME)


def wake_probes(session: Session, *, now: datetime) -> list[int]:
    """For each breaker due to probe with no message of its channel due, make one due now
    (dispatched after commit) to be the probe: a held one or one awaiting its retry, the most
    tried first. With none (every message took its fallback), unpause the channel half-open:
    its next new message is the probe."""
    woken = []
    due = session.execute(select(ChannelHealth.workspace_id, ChannelHealth.channel).where(
        ChannelHealth.paused_by == BY_BREAKER, ChannelHealth.next_probe_at <= now)).all()
    for workspace_id, channel in due:
        waiting = (Message.workspace_id == workspace_id, Message.channel == channel,
                   Message.status == MessageStatus.SCHEDULED.value)
        if session.scalar(select(exists().where(*waiting, Message.scheduled_at <= now))):
            continue  # dispatch makes it the probe
        message_id = session.scalar(
            select(Message.id).where(*waiting, (Message.error == WAITING_FOR_RESUME) | (Message.attempts > 0))
            .order_by(Message.attempts.desc(), Message.id).limit(1))
        if message_id is not None:
            session.execute(update(Message).where(Message.id == message_id)
                            .values(scheduled_at=now, enqueued_at=now).execution_options(synchronize_session=False))
            woken.append(message_id)
        else:
            _change(session, workspace_id, channel, ChannelHealth.paused_by == BY_BREAKER,
                    ChannelHealth.next_probe_at <= now, state=HALF_OPEN, state_since=now, paused_at=None,
                    next_probe_at=now + PROBE_TIMEOUT, updated_at=now)
    defer(session, JobName.DISPATCH_MESSAGES, woken)
    return woken


def pause(session: Session, workspace_id: str, channel: str, *, now: datetime) -> bool:
    """A person pauses the channel: its messages are held until a person resumes it; no probe
    goes and no success closes it. True when it was not already paused by a person."""
    _ensure_row(session, workspace_id, channel, now=now)
    return _change(session, workspace_id, channel,
                   (ChannelHealth.paused_by.is_(None)) | (ChannelHealth.paused_by != BY_PERSON),
                   state=OPEN, paused_by=BY_PERSON, paused_at=now, state_since=now, next_probe_at=None,
                   updated_at=now)


def paused_channels(session: Session, workspace_id: str) -> set[str]:
    return set(session.scalars(
        select(ChannelHealth.channel)
        .where(ChannelHealth.workspace_id == workspace_id, ChannelHealth.paused_at.is_not(None))))


def resume(session: Session, workspace_id: str, channel: str, *, now: datetime) -> bool:
    """A person resumes the channel, whoever paused it: the breaker closes, its count is cleared
    and the messages held for it go out; True when it was paused."""
    unpaused = _change(session, workspace_id, channel, ChannelHealth.paused_at.is_not(None), **_closed_values(now))
    release_held(session, workspace_id, channel, now=now)  # and any that a hold racing an earlier resume left
    if not unpaused:
        _change(session, workspace_id, channel, ChannelHealth.consecutive_failures > 0,
                consecutive_failures=0, updated_at=now)
    return unpaused


def release_held(session: Session, workspace_id: str, channel: str, *, now: datetime) -> list[int]:
    """The messages held for the channel while it was paused are due now (dispatched after commit),
    except marketing ones older than the workspace's `held_messages.expire_after_hours`, which
    are skipped: a day-old cart reminder is better not sent."""
    held = _held(workspace_id, channel)
    workspace = session.get(Workspace, workspace_id)
    hours = delivery_settings.held_expiry_hours(workspace.settings if workspace else None)
    if hours:
        why = f"skipped: held over {hours} h while {channel} was paused"
        for message in session.scalars(select(Message).where(
                *held, Message.transactional.is_(False), Message.created_at < now - timedelta(hours=hours))):
            message.status, message.skip_reason, message.error = MessageStatus.SKIPPED.value, why, None
            record_message(session, message, JournalKind.SKIPPED, at=now, detail=why, reason=Reason.HELD_TOO_LONG)
        session.flush()
    released = list(session.scalars(
        update(Message).where(*held).values(scheduled_at=now, enqueued_at=now, error=None)
        .returning(Message.id).execution_options(synchronize_session=False)))
    defer(session, JobName.DISPATCH_MESSAGES, released)
    return released


def channel_status(session: Session, workspace_id: str) -> list[dict[str, Any]]:
    """Every channel's breaker, in CHANNELS order; a channel that never failed is closed."""
    rows = {row.channel: row for row in session.scalars(
        select(ChannelHealth).where(ChannelHealth.workspace_id == workspace_id))}
    return [_status(channel, rows.get(channel)) for channel in CHANNELS]


def _status(channel: str, row: ChannelHealth | None) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    if row is None:
        return {"channel": channel, "state": CLOSED, "paused": False, "paused_by": None, "since": None,
                "paused_at": None, "next_probe_at": None, "consecutive_failures": 0, "opened_total": 0,
                "last_error": None}
    return {"channel": channel, "state": row.state, "paused": row.paused_at is not None, "paused_by": row.paused_by,
            "since": when(row.state_since), "paused_at": when(row.paused_at), "next_probe_at": when(row.next_probe_at),
            "consecutive_failures": row.consecutive_failures, "opened_total": row.opened_total,
            "last_error": row.last_error}


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

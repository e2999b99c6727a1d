"""The database's part of GET /metrics: counts computed at scrape time, in SQL.

Computed from the tables rather than kept in each process's memory, so the numbers
are right however many web and worker processes there are, and survive restarts.
Each query is one GROUP BY; none returns a row per message.

These span all workspaces on purpose: they are for the operator of the deployment,
not for one shop (whose figures are in the workspace-scoped API).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.orm import Session

from engine.contacts.journal import JournalKind
from engine.delivery import in_doubt
from engine.store.dialect import seconds_between
from engine.store.models import ChannelHealth, JournalEntry, Message

# Upper bounds (seconds) of the send-latency histogram: from "as soon as it was due"
# to "an hour late" (a backlog, or retries with backoff).
LATENCY_BUCKETS: tuple[float, ...] = (0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
LATENCY_WINDOW = timedelta(hours=1)

# Provider errors are counted from the journal the dispatcher writes for each attempt:
# a "retrying" line is a transient error (timeout, 429, 5xx), a "failed" line a
# permanent one (rejected, given up after retries, or a template that cannot render).
# The journal outlives retries, so this only grows, as a Prometheus counter should.
ERROR_KINDS = {JournalKind.RETRYING: "transient", JournalKind.FAILED: "permanent"}


@dataclass(frozen=True)
class LatencyHistogram:
    buckets: tuple[tuple[float, int], ...]  # (upper bound, messages at or below it), cumulative
    count: int
    total_seconds: float


def message_counts(session: Session) -> list[tuple[str, str, int]]:
    """(channel, status, messages) over the whole outbox."""
    rows = session.execute(
        select(Message.channel, Message.status, func.count()).group_by(Message.channel, Message.status))
    return [(channel, status, count) for channel, status, count in rows]


def send_latency(session: Session, *, now: datetime,
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> dict[str, LatencyHistogram]:
    """Per channel: how long after its scheduled time each message sent in the last hour went out."""
    latency = cast(seconds_between(Message.scheduled_at, Message.sent_at), Float)
    columns = [func.sum(case((latency <= bound, 1), else_=0)) for bound in buckets]
    rows = session.execute(
        select(Message.channel, func.count(), func.coalesce(func.sum(latency), 0.0), *columns)
        .where(Message.sent_at.is_not(None), Message.sent_at > now - LATENCY_WINDOW, Message.sent_at <= now)
        .group_by(Message.channel))
    histograms = {}
    for channel, count, total, *in_buckets in rows:
        histograms[channel] = LatencyHistogram(
            buckets=tuple((bound, int(n or 0)) for bound, n in zip(buckets, in_buckets, strict=True)),
            count=int(count), total_seconds=float(total))
    return histograms


def provider_errors(session: Session) -> list[tuple[str, str, int]]:
    """(channel, "transient" | "permanent", errors) since the start, from the journal."""
    rows = session.execute(
        select(Message.channel, JournalEntry.kind, func.count())
        .join(Message, Message.id == JournalEntry.message_id)
        .where(JournalEntry.kind.in_([kind.value for kind in ERROR_KINDS]))
        .group_by(Message.channel, JournalEntry.kind))
    return [(channel, ERROR_KINDS[JournalKind(kind)], count) for channel, kind, count in rows]


def in_doubt_counts(session: Session) -> list[tuple[str, str, int]]:
    """(channel, "resent" | "skipped", messages) settled by the in-doubt policy since the start, from
    the journal (engine/delivery/in_doubt.py writes one line each time)."""
    rows = session.execute(
        select(Message.channel, JournalEntry.kind, func.count())
        .join(Message, Message.id == JournalEntry.message_id)
        .where(JournalEntry.kind.in_([kind.value for kind in in_doubt.OUTCOMES]))
        .group_by(Message.channel, JournalEntry.kind))
    return [(channel, in_doubt.OUTCOMES[JournalKind(kind)], count) for channel, kind, count in rows]


@dataclass(frozen=True)
class BreakerState:
    workspace: str
    channel: str
    state: str  # closed | open | half_open
    paused: bool
    consecutive_failures: int
    opened_total: int


def channel_health(session: Session) -> list[BreakerState]:
    """Every channel breaker that ever failed or was paused, by workspace and channel."""
    rows = session.execute(
        select(ChannelHealth.workspace_id, ChannelHealth.channel, ChannelHealth.state, ChannelHealth.paused_at,
               ChannelHealth.consecutive_failures, ChannelHealth.opened_total)
        .order_by(ChannelHealth.workspace_id, ChannelHealth.channel))
    return [BreakerState(workspace, channel, state, paused_at is not None, failures, opened)
            for workspace, channel, state, paused_at, failures, opened in rows]

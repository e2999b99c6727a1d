"""Wait until a local time of day on allowed weekdays, in the contact's time zone.

DST-safe: the wall-clock time is resolved in the zone for each candidate day. A time
that does not exist that day (clocks jump forward over it) moves forward by the gap
(02:30 becomes 03:30); a time that happens twice (clocks go back) is its first one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.journeys.definition import WaitUntilStep
from engine.journeys.steps.decisions import Decision, Proceed, StepContext, WaitUntil

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `at` on `day` in `zone` (fold=0: see the module doc)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def next_local_time(after: datetime, at: time, zone: ZoneInfo, weekdays: Sequence[str] | None) -> datetime:
    """The first instant at or after `after` whose local time is `at` on an allowed weekday."""
    day = after.astimezone(zone).date()
    for offset in range(8):
        candidate_day = day + timedelta(days=offset)
        if weekdays and WEEKDAYS[candidate_day.weekday()] not in weekdays:
            continue
        instant = local_instant(candidate_day, at, zone)
        if instant >= after:
            return instant
    raise AssertionError("some day within a week is allowed")  # pragma: no cover


def decide(step: WaitUntilStep, ctx: StepContext) -> Decision:
    hour, minute = (int(part) for part in step.time.split(":"))
    due = next_local_time(ctx.entered_at, time(hour, minute), ctx.timezone, step.weekdays)
    return Proceed(since=due) if ctx.now >= due else WaitUntil(due)

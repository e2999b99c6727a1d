"""Waiting until a local time of day: the contact's zone, allowed weekdays and both DST changes, in UTC instants."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.journeys.definition import JourneyDefinition, WaitUntilStep, parse_definition
from engine.journeys.interpreter import Completed, PlannedSend, Waiting, advance
from engine.journeys.steps.decisions import Proceed, StepContext, WaitUntil
from engine.journeys.steps.wait_until import decide, next_local_time
from engine.segments.conditions import Facts

BERLIN = ZoneInfo("Europe/Berlin")  # UTC+1 in winter, +2 in summer; clocks change at 01:00 UTC
NEW_YORK = ZoneInfo("America/New_York")  # UTC-5 in winter, -4 in summer; clocks change at 02:00 local
TEN = time(10, 0)
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def no_facts() -> Facts:
    raise AssertionError("a wait_until step needs no facts")


def context(entered_at: datetime, now: datetime, zone: ZoneInfo) -> StepContext:
    return StepContext(run_id=1, identity="1", entered_at=entered_at, now=now, timezone=zone, state={}, facts=no_facts)


def journey(*steps: dict[str, Any]) -> JourneyDefinition:
    return parse_definition({"trigger": {"event": "signed_up"}, "steps": list(steps)})


def wait_until(step_id: str, at: str, weekdays: list[str] | None = None) -> dict[str, Any]:
    return {"type": "wait_until", "id": step_id, "time": at, **({"weekdays": weekdays} if weekdays else {})}


def send(step_id: str, template: str = "welcome") -> dict[str, Any]:
    return {"type": "send", "id": step_id, "channel": "email", "template": template}


# next_local_time


def test_a_time_later_today_in_berlin_is_today() -> None:
    """Entered at 08:00 Berlin (07:00 UTC, winter), 10:00 local is the same day at 09:00 UTC."""
    assert next_local_time(utc(2026, 1, 14, 7, 0), TEN, BERLIN, None) == utc(2026, 1, 14, 9, 0)


def test_a_time_already_past_today_in_berlin_is_tomorrow() -> None:
    """Entered at 10:30 Berlin, 10:00 local has passed, so it is 10:00 the next day (09:00 UTC)."""
    assert next_local_time(utc(2026, 1, 14, 9, 30), TEN, BERLIN, None) == utc(2026, 1, 15, 9, 0)


def test_the_day_is_the_contacts_local_day_not_the_utc_day() -> None:
    """At 03:00 UTC on the 15th it is 22:00 on the 14th in New York, so 23:00 there is still today: 04:00 UTC."""
    assert next_local_time(utc(2026, 1, 15, 3, 0), time(23, 0), NEW_YORK, None) == utc(2026, 1, 15, 4, 0)


def test_a_time_later_today_in_new_york_is_today() -> None:
    """Entered at 07:00 New York (12:00 UTC, winter), 10:00 local is 15:00 UTC the same day."""
    assert next_local_time(utc(2026, 1, 14, 12, 0), TEN, NEW_YORK, None) == utc(2026, 1, 14, 15, 0)


@pytest.mark.parametrize(
    ("after", "expected"),
    [(utc(2026, 1, 16, 10, 0), utc(2026, 1, 19, 9, 0)),  # Friday 11:00 local: Friday's 10:00 has passed
     (utc(2026, 1, 17, 8, 0), utc(2026, 1, 19, 9, 0)),  # Saturday morning
     (utc(2026, 1, 18, 22, 0), utc(2026, 1, 19, 9, 0))],  # Sunday 23:00 local
    ids=["friday-after-ten", "saturday", "sunday-night"],
)
def test_weekdays_only_skip_the_weekend_to_monday(after: datetime, expected: datetime) -> None:
    """With mon–fri allowed, Friday after 10:00, Saturday and Sunday all wait for Monday 10:00 Berlin."""
    assert next_local_time(after, TEN, BERLIN, WEEKDAYS) == expected


def test_a_single_allowed_weekday_already_past_waits_a_whole_week() -> None:
    """Only Wednesday allowed, entered Wednesday after 10:00: the next Wednesday, seven days on."""
    assert next_local_time(utc(2026, 1, 14, 9, 30), TEN, BERLIN, ["wed"]) == utc(2026, 1, 21, 9, 0)


def test_a_weekend_across_the_spring_clock_change_keeps_ten_local() -> None:
    """Friday 27 March 10:00 is 09:00 UTC; after the Sunday change, Monday's 10:00 Berlin is 08:00 UTC."""
    assert next_local_time(utc(2026, 3, 27, 10, 0), TEN, BERLIN, WEEKDAYS) == utc(2026, 3, 30, 8, 0)


def test_entering_exactly_at_the_time_is_that_instant() -> None:
    """A run entering at 10:00:00 Berlin gets 10:00 today, not tomorrow."""
    assert next_local_time(utc(2026, 1, 14, 9, 0), TEN, BERLIN, None) == utc(2026, 1, 14, 9, 0)


# daylight saving time


def test_a_time_skipped_by_spring_forward_in_berlin_happens_an_hour_later() -> None:
    """02:30 does not exist on 29 March 2026 in Berlin (02:00 → 03:00): the wait ends at 03:30 CEST, 01:30 UTC."""
    due = next_local_time(utc(2026, 3, 29, 0, 0), time(2, 30), BERLIN, None)

    assert due == utc(2026, 3, 29, 1, 30)
    assert due.astimezone(BERLIN).time() == time(3, 30)


def test_a_time_repeated_by_fall_back_in_berlin_is_its_first_occurrence() -> None:
    """02:30 happens twice on 25 October 2026 in Berlin: the first, still CEST, is 00:30 UTC (not 01:30)."""
    due = next_local_time(utc(2026, 10, 24, 22, 0), time(2, 30), BERLIN, None)

    assert due == utc(2026, 10, 25, 0, 30)
    assert due.astimezone(BERLIN).utcoffset() == timedelta(hours=2)


def test_a_time_skipped_by_spring_forward_in_new_york_happens_an_hour_later() -> None:
    """02:30 does not exist on 8 March 2026 in New York: the wait ends at 03:30 EDT, 07:30 UTC."""
    due = next_local_time(utc(2026, 3, 8, 5, 0), time(2, 30), NEW_YORK, None)

    assert due == utc(2026, 3, 8, 7, 30)
    assert due.astimezone(NEW_YORK).time() == time(3, 30)


def test_a_time_repeated_by_fall_back_in_new_york_is_its_first_occurrence() -> None:
    """01:30 happens twice on 1 November 2026 in New York: the first, still EDT, is 05:30 UTC (not 06:30)."""
    assert next_local_time(utc(2026, 11, 1, 4, 0), time(1, 30), NEW_YORK, None) == utc(2026, 11, 1, 5, 30)


# the step


def test_the_step_waits_until_the_local_time_when_entered_before_it() -> None:
    """decide returns WaitUntil at 10:00 in the context's zone: 15:00 UTC for New York."""
    step = WaitUntilStep(type="wait_until", id="at-ten", time="10:00")
    entered = utc(2026, 1, 14, 12, 0)

    assert decide(step, context(entered, entered, NEW_YORK)) == WaitUntil(utc(2026, 1, 14, 15, 0))


def test_the_step_proceeds_as_of_the_due_time_when_entered_exactly_then() -> None:
    """Entered exactly at 10:00 local, the step is done at once, as of that instant."""
    step = WaitUntilStep(type="wait_until", id="at-ten", time="10:00")
    entered = utc(2026, 1, 14, 9, 0)

    assert decide(step, context(entered, entered, BERLIN)) == Proceed(since=entered)


# through the interpreter


def test_a_send_after_wait_until_goes_out_only_at_ten_in_the_contacts_zone() -> None:
    """A New York contact entered at 07:00 local waits until 15:00 UTC; one minute early nothing is sent."""
    definition = journey(wait_until("at-ten", "10:00"), send("morning-mail"))
    entered = utc(2026, 1, 14, 12, 0)

    early = advance(definition, "at-ten", entered, now=utc(2026, 1, 14, 14, 59), timezone=NEW_YORK)
    on_time = advance(definition, "at-ten", entered, now=utc(2026, 1, 14, 15, 0), timezone=NEW_YORK)

    assert early.stop == Waiting("at-ten", entered, utc(2026, 1, 14, 15, 0))
    assert early.sends == []
    assert on_time.sends == [PlannedSend("morning-mail", "email", "welcome")]
    assert on_time.stop == Completed()


def test_the_same_entry_waits_for_the_next_day_in_berlin() -> None:
    """Entered at 12:00 UTC (13:00 Berlin), 10:00 Berlin has passed: the run waits until 09:00 UTC tomorrow."""
    definition = journey(wait_until("at-ten", "10:00"), send("morning-mail"))
    entered = utc(2026, 1, 14, 12, 0)

    outcome = advance(definition, "at-ten", entered, now=utc(2026, 1, 14, 15, 0), timezone=BERLIN)

    assert outcome.stop == Waiting("at-ten", entered, utc(2026, 1, 15, 9, 0))
    assert outcome.sends == []


def test_a_wait_after_wait_until_is_measured_from_the_local_time_not_from_processing() -> None:
    """Processed five minutes after 10:00 Berlin, a following one-hour wait ends at 11:00 local, not 11:05."""
    definition = journey(wait_until("at-ten", "10:00"), {"type": "wait", "id": "hour", "hours": 1}, send("later"))

    outcome = advance(definition, "at-ten", utc(2026, 1, 14, 7, 0), now=utc(2026, 1, 14, 9, 5), timezone=BERLIN)

    assert outcome.stop == Waiting("hour", utc(2026, 1, 14, 9, 0), utc(2026, 1, 14, 10, 0))

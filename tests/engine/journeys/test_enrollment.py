"""The enrollment rule: the correlation key, re-entry, and which later events reach a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.journeys.definition import parse_definition
from engine.journeys.enrollment import (
    AlreadyEntered,
    Enter,
    NotEntered,
    PastRuns,
    awaited_step,
    correlation_key,
    decide_entry,
    goal_reached,
    may_enter,
)
from engine.reasons import Reason

NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
NO_RUNS = PastRuns()


def cart_journey(**overrides: Any) -> Any:
    data: dict[str, Any] = {
        "trigger": {"event": "cart_updated", "key": "cart_id"},
        "goals": [{"event": "order_placed", "name": "order placed"}],
        "steps": [{"type": "wait_for_event", "id": "await-order", "event": "order_placed", "timeout": {"hours": 24}}],
    }
    return parse_definition(data | overrides)


def entry(definition: Any, properties: dict[str, Any], past: PastRuns = NO_RUNS,
          taken: frozenset[str] = frozenset(), *, filter_holds: bool = True) -> Any:
    return decide_entry(definition, properties, past=past, filter_holds=lambda _condition: filter_holds,
                        is_taken=lambda key: key in taken, now=NOW)


@pytest.mark.parametrize(
    ("properties", "path", "expected"),
    [
        ({"cart_id": "c-1"}, "cart_id", "c-1"),
        ({"cart_id": 42}, "cart_id", "42"),
        ({"cart": {"id": "c-2"}}, "cart.id", "c-2"),
        ({"cart": {"owner": {"id": 7}}}, "cart.owner.id", "7"),
    ],
)
def test_correlation_key_reads_a_dotted_path_as_text(properties: dict[str, Any], path: str, expected: str) -> None:
    """The key is the value at the dotted path, as text."""
    assert correlation_key(properties, path) == expected


@pytest.mark.parametrize(
    ("properties", "path"),
    [
        ({}, "cart_id"),
        ({"cart_id": None}, "cart_id"),
        ({"cart_id": {"id": "c-1"}}, "cart_id"),
        ({"cart_id": ["c-1"]}, "cart_id"),
        ({"cart": "c-1"}, "cart.id"),
        ({"cart": {}}, "cart.id"),
    ],
)
def test_correlation_key_is_none_for_missing_null_or_structured_values(properties: dict[str, Any], path: str) -> None:
    """A missing, null, object or list value gives no key: such an event cannot be correlated."""
    assert correlation_key(properties, path) is None


def test_correlation_key_is_empty_text_when_the_journey_has_no_key_path() -> None:
    """Without a key path every event of the contact shares the key "" (one run per contact)."""
    assert correlation_key({"cart_id": "c-1"}, None) == ""


def test_an_event_without_the_key_does_not_enter() -> None:
    """A cart event without a cart id cannot be correlated, so it enrolls nobody."""
    assert entry(cart_journey(), {"total": 5}) == NotEntered(Reason.NO_KEY)


def test_the_entry_filter_is_asked_only_when_there_is_one() -> None:
    """A journey without a filter enters whatever the filter would say; one with a filter follows it."""
    assert entry(cart_journey(), {"cart_id": "c-1"}, filter_holds=False) == Enter("c-1", "c-1")
    filtered = cart_journey(trigger={"event": "cart_updated", "key": "cart_id",
                                     "filter": {"property": "total", "op": "gte", "value": 10}})
    assert entry(filtered, {"cart_id": "c-1"}, filter_holds=False) == NotEntered(Reason.ENTRY_FILTER)


def test_once_per_key_enters_each_key_once() -> None:
    """A second event for the same cart refreshes the run it already has; another cart enters."""
    already = entry(cart_journey(), {"cart_id": "c-1"}, PastRuns(1, NOW), frozenset({"c-1"}))
    assert already == AlreadyEntered("c-1", "c-1")
    assert entry(cart_journey(), {"cart_id": "c-2"}, PastRuns(1, NOW), frozenset({"c-1"})) == Enter("c-2", "c-2")


def test_once_ever_refuses_any_second_run() -> None:
    """After one run of the journey (any key, any version) the contact never enters it again."""
    journey = cart_journey(reentry="once_ever")
    assert entry(journey, {"cart_id": "c-2"}, PastRuns(1, NOW - timedelta(days=400))) == NotEntered(Reason.REENTRY_RULE)


def test_every_days_waits_that_long_and_marks_the_repeat_in_the_stored_key() -> None:
    """Every 7 days: six days after the last run no; eight days after, the third run gets key "c-1|#2"."""
    journey = cart_journey(reentry={"every_days": 7})
    assert entry(journey, {"cart_id": "c-1"}, PastRuns(2, NOW - timedelta(days=6))) == NotEntered(Reason.REENTRY_RULE)
    assert entry(journey, {"cart_id": "c-1"}, PastRuns(2, NOW - timedelta(days=8))) == Enter("c-1", "c-1|#2")


def test_a_goal_ends_only_the_run_of_its_key_or_of_its_own_message() -> None:
    """An order for another cart leaves the run alone, unless it is a click on this run's own email."""
    journey = cart_journey()
    assert goal_reached(journey, "order_placed", {"cart_id": "c-1"}, "c-1|#3") is not None
    assert goal_reached(journey, "order_placed", {"cart_id": "c-2"}, "c-1") is None
    assert goal_reached(journey, "order_placed", {"cart_id": "c-2", "run_id": 5}, "c-1", run_id=5) is not None
    assert goal_reached(journey, "order_placed", {}, "c-1", run_id=None) is None


def test_an_awaited_event_wakes_the_run_only_if_it_came_after_the_wait_began() -> None:
    """The order placed before the run began to wait for it is not the one it waits for."""
    journey = cart_journey()
    began = NOW - timedelta(hours=1)
    properties = {"cart_id": "c-1"}
    assert awaited_step(journey, "await-order", began, "order_placed", properties, "c-1", at=NOW) is not None
    assert awaited_step(journey, "await-order", began, "order_placed", properties, "c-1",
                        at=began - timedelta(seconds=1)) is None
    assert awaited_step(journey, "await-order", began, "cart_updated", properties, "c-1", at=NOW) is None


def test_a_time_scans_entry_event_enters_only_its_own_journey() -> None:
    """Two birthday journeys: the scan's event for one does not enter the other."""
    birthday = parse_definition({"trigger": {"date": "birthday"}, "steps": [{"type": "exit", "id": "x"}]})
    assert may_enter(birthday, 4, "date_reached", {"journey_id": 4, "key": "2030"})
    assert not may_enter(birthday, 5, "date_reached", {"journey_id": 4, "key": "2030"})

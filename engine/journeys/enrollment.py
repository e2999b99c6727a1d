"""The enrollment rule: which event enters a journey, under which key, and which events
reach a run that is already going (its goal, the event it waits for).

One rule for everything that enrolls or replays: the runs service (events and time
scans, against the database), the backtest (in memory) and, soon, broadcasts. The
functions here read nothing and write nothing: what a caller knows (the contact's earlier
runs, whether a key is taken, whether the entry filter holds) is passed in, and every
decision about time takes `now`, so a replay decides exactly as the live engine did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from engine.journeys.definition import TIME_TRIGGERS, EveryDays, Goal, JourneyDefinition, Reentry, WaitForEventStep
from engine.reasons import Reason
from engine.segments.conditions import Condition

REPEAT_MARK = "|#"  # stored key = "<correlation key>|#<n>" for the n-th repeat under an every_days rule


def correlation_key(properties: dict[str, Any], path: str | None) -> str | None:
    """The value at `path` (dotted) in the event's properties, as text; "" if no path."""
    if path is None:
        return ""
    value: Any = properties
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def base_key(stored: str) -> str:
    """The correlation key a run was stored under, without its repeat mark."""
    return stored.split(REPEAT_MARK, 1)[0]


# --- Entering --------------------------------------------------------------------------------

def time_entry_id_prefix(journey_id: int) -> str:
    """The start of the ids of a time scan's entry events for a journey (see `time_entry_id`)."""
    return f"scan:{journey_id}:"


def time_entry_id(journey_id: int, contact_id: int, key: str) -> str:
    """A time scan's entry event id: one per journey, contact and key, so a contact enters once
    per key (a birthday's year, a holiday's local date) however often the scan runs."""
    return f"{time_entry_id_prefix(journey_id)}{contact_id}:{key}"


def time_entry_properties(journey_id: int, key: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A time scan's entry event says which journey it enters (`may_enter` reads it) and under
    which key (the correlation key of every time trigger is the property "key")."""
    return {"journey_id": journey_id, "key": key, **detail}


def may_enter(definition: JourneyDefinition, journey_id: int | None, event_type: str,
              properties: dict[str, Any]) -> bool:
    """Is this event one that enters the journey? A time scan's entry event is for its own journey
    only (a backtest, of a definition with no journey yet, replays no time scan)."""
    if not definition.enters_on(event_type):
        return False
    return not isinstance(definition.trigger, TIME_TRIGGERS) or properties.get("journey_id") == journey_id


@dataclass(frozen=True)
class PastRuns:
    """The contact's earlier runs of the journey (any version): how many, and when the last began."""

    count: int = 0
    last_at: datetime | None = None

    def with_one_more(self, at: datetime) -> PastRuns:
        return PastRuns(self.count + 1, at if self.last_at is None else max(self.last_at, at))


def key_under_reentry_rule(rule: Reentry, key: str, past: PastRuns, *, now: datetime) -> str | None:
    """The key to store for a new run, or None when the re-entry rule forbids one.

    once_per_key: the (version, contact, key) uniqueness does it. once_ever: any earlier
    run of this journey (any version) forbids. every_days: the last run must be old
    enough, and the n-th run gets key "<key>|#n", still unique per version.
    """
    if rule == "once_per_key":
        return key
    if rule == "once_ever":
        return key if past.count == 0 else None
    if past.last_at is not None and now - past.last_at < timedelta(days=rule.every_days):
        return None
    return key if past.count == 0 else f"{key}{REPEAT_MARK}{past.count}"


def reentry_rule_text(rule: Reentry) -> str:
    """The rule as a marketer reads it in "not enrolled: re-entry rule once ever"."""
    return f"at most once per {rule.every_days} days" if isinstance(rule, EveryDays) else rule.replace("_", " ")


NotEnteredBecause = Literal[Reason.NO_KEY, Reason.ENTRY_FILTER, Reason.REENTRY_RULE]  # as the journal codes it


@dataclass(frozen=True)
class NotEntered:
    reason: NotEnteredBecause


@dataclass(frozen=True)
class Enter:
    key: str  # the correlation key
    stored_key: str  # the key the new run is stored under (the correlation key, or a repeat of it)


@dataclass(frozen=True)
class AlreadyEntered:
    """A run holds this key already: no second run; the live one sees the newer event."""

    key: str
    stored_key: str


Entry = NotEntered | Enter | AlreadyEntered


def decide_entry(definition: JourneyDefinition, properties: dict[str, Any], *, past: PastRuns,
                 filter_holds: Callable[[Condition], bool], is_taken: Callable[[str], bool],
                 now: datetime) -> Entry:
    """What an entering event (see `may_enter`) does, checked in this order: it must carry the
    key; the entry filter must hold (asked only if there is one); the re-entry rule must allow
    a run; and the stored key must be free (enrollment is unique per version, contact and key)."""
    key = correlation_key(properties, definition.key_path)
    if key is None:
        return NotEntered(Reason.NO_KEY)
    entry_filter = definition.entry_filter
    if entry_filter is not None and not filter_holds(entry_filter):
        return NotEntered(Reason.ENTRY_FILTER)
    stored_key = key_under_reentry_rule(definition.reentry, key, past, now=now)
    if stored_key is None:
        return NotEntered(Reason.REENTRY_RULE)
    if is_taken(stored_key):
        return AlreadyEntered(key, stored_key)
    return Enter(key, stored_key)


# --- Reaching a run that is going ----------------------------------------------------------------

def is_same_key(definition: JourneyDefinition, properties: dict[str, Any], stored_key: str, *,
                run_id: int | None = None) -> bool:
    """Does a later event concern this run? Yes in a journey without a key, for an open or click
    of the run's own message (it carries `run_id`), or when it carries the run's key."""
    if not definition.is_keyed or (run_id is not None and properties.get("run_id") == run_id):
        return True
    return correlation_key(properties, definition.key_path) == base_key(stored_key)


def goal_reached(definition: JourneyDefinition, event_type: str, properties: dict[str, Any], stored_key: str, *,
                 run_id: int | None = None) -> Goal | None:
    """The goal this event meets for a live run (which then exits), if any."""
    goal = definition.goal_for(event_type)
    if goal is None or not is_same_key(definition, properties, stored_key, run_id=run_id):
        return None
    return goal


def waits_for_an_event(definition: JourneyDefinition, step_id: str | None) -> bool:
    """Is a run standing on this step one that an event may wake?"""
    return _wait_for_event_step(definition, step_id) is not None


def _wait_for_event_step(definition: JourneyDefinition, step_id: str | None) -> WaitForEventStep | None:
    if step_id is None or not definition.has_step(step_id):
        return None
    step = definition.step(step_id)
    return step if isinstance(step, WaitForEventStep) else None


def awaited_step(definition: JourneyDefinition, step_id: str | None, step_entered_at: datetime, event_type: str,
                 properties: dict[str, Any], stored_key: str, *, at: datetime,
                 run_id: int | None = None) -> WaitForEventStep | None:
    """The wait_for_event step a live run standing on `step_id` leaves by its yes branch because of
    this event: the awaited type, come at or after the run began to wait (`at`), with the run's key
    unless the step says any key will do."""
    step = _wait_for_event_step(definition, step_id)
    if step is None or step.event != event_type or at < step_entered_at:
        return None
    if step.same_key and not is_same_key(definition, properties, stored_key, run_id=run_id):
        return None
    return step


def with_received(state: dict[str, Any], step: WaitForEventStep, external_id: str) -> dict[str, Any]:
    """The run's state once the awaited event came: the step's yes branch is taken on the next walk."""
    return {**state, "received": {**state.get("received", {}), step.id: external_id}}

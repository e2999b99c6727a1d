"""What entering a journey may do to a contact at once, and what it reads on entry.

Batched evaluation keeps each contact's events in order but lets journeys of one event
be decided together; it must wait for an earlier journey's walk only when that walk
changes an attribute a later journey reads on entry. These pure helpers say which.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from engine.journeys.definition import ConditionStep, UpdateContactStep, WaitForEventStep, WaitStep, branches
from engine.journeys.versions import LiveVersion
from engine.segments.conditions import AllOf, AnyOf, AttributeIs, EventHistory, MetricIs, NotOf, PropertyIs


@dataclass(frozen=True)
class EntryEffects:
    """Which contact attributes entering a journey may change at once (update steps before the
    first wait), and which it reads on entry (its entry filter, conditions before that wait).
    Attributes by their first name ("tags" for tag changes); "*" stands for any."""

    changes: frozenset[str]
    reads: frozenset[str]


_ENTRY_EFFECTS: dict[int, EntryEffects] = {}


def entry_effects(live: LiveVersion) -> EntryEffects:
    found = _ENTRY_EFFECTS.get(live.version_id)
    if found is None:
        changes: set[str] = set()
        reads = set(_attributes_read(live.definition.entry_filter))
        _walk_before_waiting(live.definition.steps, changes, reads)
        found = _ENTRY_EFFECTS[live.version_id] = EntryEffects(frozenset(changes), frozenset(reads))
    return found


def _walk_before_waiting(steps: list[Any], changes: set[str], reads: set[str]) -> None:
    """Collect what the steps a run passes on entering may change and read (a run that has just
    entered stops at a wait with a duration, or a wait for an event with a timeout)."""
    for step in steps:
        if isinstance(step, UpdateContactStep):
            changes.update(name.split(".", 1)[0] for name in [*step.set, *step.unset])
            if step.add_tags or step.remove_tags:
                changes.add("tags")
        elif isinstance(step, ConditionStep):
            reads.update(_attributes_read(step.condition))
        if isinstance(step, WaitStep) and step.duration > timedelta(0):
            return
        if isinstance(step, WaitForEventStep) and step.timeout.delta > timedelta(0):
            return
        for _label, branch in branches(step):
            _walk_before_waiting(branch, changes, reads)


def _attributes_read(condition: Any) -> list[str]:
    match condition:
        case None:
            return []
        case AttributeIs(attribute=path):
            return [path.split(".", 1)[0]]
        case AllOf(all=parts) | AnyOf(any=parts):
            return [name for part in parts for name in _attributes_read(part)]
        case NotOf(not_=inner):
            return _attributes_read(inner)
        case PropertyIs() | MetricIs() | EventHistory():
            return []
        case _:
            return ["*"]  # a kind of condition this does not know: it may read anything

"""Walk a run through its journey from where it stands, without doing any I/O.

`advance` returns what happened: the sends to make, in order, and where the run
stops (waiting, completed or exited). The runs service applies that outcome in one
transaction, so a crash either keeps all of it or none of it, and a repeat of the
same walk makes the same sends, which the outbox's (run, step) key de-duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from engine.journeys import JourneyDefinition
from engine.steps import HANDLERS
from engine.steps.decisions import Exit, Proceed, Send, WaitUntil


@dataclass(frozen=True)
class PlannedSend:
    step_id: str
    channel: str
    template: str


@dataclass(frozen=True)
class Waiting:
    step_id: str
    entered_at: datetime
    until: datetime


@dataclass(frozen=True)
class Completed:
    pass


@dataclass(frozen=True)
class Exited:
    step_id: str
    reason: str


Stop = Waiting | Completed | Exited


@dataclass(frozen=True)
class Outcome:
    stop: Stop
    sends: list[PlannedSend] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)  # step ids walked through


MAX_STEPS_PER_ADVANCE = 1000  # a definition has at most 200 steps; this is a guard


def advance(
    definition: JourneyDefinition, step_id: str, entered_at: datetime, *, now: datetime
) -> Outcome:
    sends: list[PlannedSend] = []
    passed: list[str] = []
    for _ in range(MAX_STEPS_PER_ADVANCE):
        step = definition.step(step_id)
        done_at = now
        decision = HANDLERS[step.type](step, entered_at, now)
        match decision:
            case WaitUntil(at=at):
                return Outcome(Waiting(step_id, entered_at, at), sends, passed)
            case Exit(reason=reason):
                passed.append(step_id)
                return Outcome(Exited(step_id, reason), sends, passed)
            case Send(channel=channel, template=template):
                sends.append(PlannedSend(step_id, channel, template))
            case Proceed(since=since):
                done_at = since or now
            case _:
                assert_never(decision)
        passed.append(step_id)
        next_id = definition.next_step_id(step_id)
        if next_id is None:
            return Outcome(Completed(), sends, passed)
        step_id, entered_at = next_id, done_at
    raise RuntimeError("journey walk did not stop")  # pragma: no cover

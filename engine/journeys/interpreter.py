"""Walk a run through its journey from where it stands, without doing any I/O.

`advance` returns what happened: the effects to apply, in order (sends, contact
updates, webhook calls, branches taken), the run's new state, and where it stops
(waiting, completed or exited). The runs service applies that outcome in one
transaction, so a crash either keeps all of it or none of it, and a repeat of the
same walk makes the same effects, which the outbox's (run, step) key de-duplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, assert_never
from zoneinfo import ZoneInfo

from engine.journeys.definition import JourneyDefinition
from engine.journeys.steps import HANDLERS
from engine.journeys.steps.decisions import (
    Branch,
    CallWebhook,
    Exit,
    Proceed,
    Send,
    StepContext,
    UpdateContact,
    WaitUntil,
)
from engine.segments.conditions import Facts
from engine.timezones import UTC_ZONE


@dataclass(frozen=True)
class PlannedSend:
    step_id: str
    channel: str
    template: str
    transactional: bool = False
    arm: str | None = None
    fallback: tuple[str, ...] = ()
    topic: str | None = None
    when_capped: str = "skip"


@dataclass(frozen=True)
class PlannedUpdate:
    step_id: str
    change: UpdateContact


@dataclass(frozen=True)
class PlannedWebhook:
    step_id: str
    url: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Branched:
    step_id: str
    label: str
    reason: str
    arm: str | None = None  # for a split: "<step id>:<arm name>", as the run's state and its messages carry it


Effect = PlannedSend | PlannedUpdate | PlannedWebhook | Branched


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
    effects: list[Effect] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)  # step ids walked through

    @property
    def sends(self) -> list[PlannedSend]:
        return [e for e in self.effects if isinstance(e, PlannedSend)]


MAX_STEPS_PER_ADVANCE = 1000  # a definition has at most a few hundred steps; this is a guard


def _no_facts() -> Facts:
    raise RuntimeError("this walk was given no facts, but a step asked for them")


def advance(
    definition: JourneyDefinition,
    step_id: str,
    entered_at: datetime,
    *,
    now: datetime,
    run_id: int = 0,
    identity: str | None = None,
    timezone: ZoneInfo | None = None,
    state: dict[str, Any] | None = None,
    facts: Callable[[], Facts] = _no_facts,
) -> Outcome:
    state = dict(state or {})
    zone = timezone or UTC_ZONE
    effects: list[Effect] = []
    passed: list[str] = []
    for _ in range(MAX_STEPS_PER_ADVANCE):
        step = definition.step(step_id)
        ctx = StepContext(run_id=run_id, identity=identity or str(run_id), entered_at=entered_at, now=now,
                          timezone=zone, state=state, facts=facts)
        decision = HANDLERS[step.type](step, ctx)
        done_at = now
        next_id: str | None
        match decision:
            case WaitUntil(at=at):
                return Outcome(Waiting(step_id, entered_at, at), effects, state, passed)
            case Exit(reason=reason):
                passed.append(step_id)
                return Outcome(Exited(step_id, reason), effects, state, passed)
            case Branch(label=label, first_step_id=first, reason=reason, state=update, since=since):
                state.update(update)
                effects.append(Branched(step_id, label, reason, update.get("arm")))
                passed.append(step_id)
                if first is None:
                    return Outcome(Completed(), effects, state, passed)
                step_id, entered_at = first, since or now
                continue
            case Send() as send:
                effects.append(PlannedSend(step_id, send.channel, send.template, send.transactional,
                                           state.get("arm"), send.fallback, send.topic, send.when_capped))
            case UpdateContact():
                effects.append(PlannedUpdate(step_id, decision))
            case CallWebhook(url=url, payload=payload):
                effects.append(PlannedWebhook(step_id, url, payload))
            case Proceed(since=since):
                done_at = since or now
            case _:
                assert_never(decision)
        passed.append(step_id)
        next_id = definition.next_step_id(step_id)
        if next_id is None:
            return Outcome(Completed(), effects, state, passed)
        step_id, entered_at = next_id, done_at
    raise RuntimeError("journey walk did not stop")  # pragma: no cover

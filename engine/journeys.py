"""Journey definitions: the one validated format the API, YAML files, UI and engine share.

A journey is a trigger (event type + the property that correlates later events with
this run, e.g. the cart id), goals (events that end the run when they carry the same
key) and a list of steps. Steps have ids that are unique in the journey, so a run
records where it is by id and a journey edited into a new version never confuses a
run that entered the old one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import DefinitionError

StepId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
EventType = Annotated[str, Field(min_length=1, max_length=100)]
PropertyPath = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Model):
    event: EventType
    key: PropertyPath | None = None  # a property of the event; None: one run per contact


class Goal(_Model):
    event: EventType
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.event.replace("_", " ")


class WaitStep(_Model):
    type: Literal["wait"]
    id: StepId
    seconds: int = Field(default=0, ge=0)
    minutes: int = Field(default=0, ge=0)
    hours: int = Field(default=0, ge=0)
    days: int = Field(default=0, ge=0)

    @property
    def duration(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds)


class SendStep(_Model):
    type: Literal["send"]
    id: StepId
    channel: Literal["email"]
    template: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9_]+$")]


class ExitStep(_Model):
    type: Literal["exit"]
    id: StepId
    reason: str = "exit step"


Step = Annotated[WaitStep | SendStep | ExitStep, Field(discriminator="type")]


class JourneyDefinition(_Model):
    trigger: Trigger
    goals: list[Goal] = Field(default_factory=list)
    steps: Annotated[list[Step], Field(min_length=1, max_length=200)]

    @model_validator(mode="after")
    def _step_ids_are_unique(self) -> JourneyDefinition:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return self

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def next_step_id(self, step_id: str) -> str | None:
        ids = [s.id for s in self.steps]
        index = ids.index(step_id) + 1
        return ids[index] if index < len(ids) else None

    @property
    def first_step_id(self) -> str:
        return self.steps[0].id

    def goal_for(self, event_type: str) -> Goal | None:
        return next((g for g in self.goals if g.event == event_type), None)


def parse_definition(data: Any) -> JourneyDefinition:
    """Validate a definition; errors name the path of each bad field."""
    try:
        return JourneyDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(field_errors(exc)) from None


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(root)", "message": err["msg"]}
        for err in exc.errors()
    ]

"""Journey definitions: the one validated format the API, YAML files, UI and engine share.

A journey is a trigger (event type + the property that correlates later events with
this run, e.g. the cart id, + an optional filter), a re-entry rule, goals (events that
end the run when they carry the same key) and a tree of steps: branching steps (wait
for event, condition, split) end their sequence and each branch goes on by itself, as
in Klaviyo flows. Step ids are unique in the tree, so a run records where it is by id
and a journey edited into a new version never confuses a run that entered the old one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError, model_validator

from engine.channels import Channel
from engine.delivery.templates import NAME_LENGTH, NAME_PATTERN
from engine.errors import DefinitionError
from engine.field_errors import Location, field_errors
from engine.segments.conditions import Condition

StepId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
EventType = Annotated[str, Field(min_length=1, max_length=100)]
PropertyPath = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duration(_Model):
    days: int = Field(default=0, ge=0)
    hours: int = Field(default=0, ge=0)
    minutes: int = Field(default=0, ge=0)
    seconds: int = Field(default=0, ge=0)

    @property
    def delta(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds)


LocalTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class Trigger(_Model):
    """Enter on an event (or on any of several, e.g. cart_updated or checkout_started)."""

    event: EventType | Annotated[list[EventType], Field(min_length=1, max_length=10)]
    key: PropertyPath | None = None  # a property of the event; None: one run per contact
    filter: Condition | None = None  # on the event's properties and the contact; None: every event


class SegmentTrigger(_Model):
    """Enter when the contact comes to match a condition (attributes, metrics, history for now;
    full segments come later). Checked on each of the contact's events; keyed "segment", so
    the re-entry rule says whether leaving and matching again enters again."""

    segment: Condition


class DateTrigger(_Model):
    """Enter on a date of the contact's (birthday, or a date attribute), N days before or after,
    at a local time. Keyed by year: once per year."""

    date: Annotated[str, Field(pattern=r"^(birthday|attributes\.[A-Za-z0-9_.-]+)$")]
    offset_days: int = Field(default=0, ge=-60, le=60)  # -3: three days before
    at: LocalTime = "10:00"
    filter: Condition | None = None


class HolidayTrigger(_Model):
    """Enter on listed dates ("12-25" every year, or "2026-11-27" once), at a local time."""

    dates: Annotated[list[Annotated[str, Field(pattern=r"^(\d{4}-)?\d{2}-\d{2}$")]], Field(min_length=1)]
    name: Annotated[str, Field(max_length=100)] | None = None  # shown in the email, e.g. "Happy New Year"
    at: LocalTime = "10:00"
    filter: Condition | None = None


class InactivityTrigger(_Model):
    """Enter when a contact has had no event of a type for N days (win-back).
    Keyed by the date of their last such event: lapsing again later enters again."""

    inactive_event: EventType
    days: int = Field(ge=1, le=3650)
    filter: Condition | None = None


class BroadcastTrigger(_Model):
    """Enter everyone matching the filter, once, at a set time."""

    broadcast_at: datetime
    filter: Condition | None = None


TimeTrigger = DateTrigger | HolidayTrigger | InactivityTrigger | BroadcastTrigger
TRIGGER_KINDS = {"event": "event", "segment": "segment", "date": "date", "dates": "holiday",
                 "inactive_event": "inactivity", "broadcast_at": "broadcast"}


def _trigger_kind(value: Any) -> str | None:
    """Which kind of trigger a dict describes, by its distinguishing key (errors then name one kind)."""
    if not isinstance(value, dict):
        return next((kind for cls, kind in TRIGGER_CLASSES.items() if isinstance(value, cls)), None)
    # An event trigger is the common case: one missing its "event" is reported as such.
    return next((kind for key, kind in TRIGGER_KINDS.items() if key in value), "event")


AnyTrigger = Annotated[
    Annotated[Trigger, Tag("event")] | Annotated[SegmentTrigger, Tag("segment")] | Annotated[DateTrigger, Tag("date")]
    | Annotated[HolidayTrigger, Tag("holiday")]
    | Annotated[InactivityTrigger, Tag("inactivity")] | Annotated[BroadcastTrigger, Tag("broadcast")],
    Discriminator(_trigger_kind, custom_error_type="trigger_kind",
                  custom_error_message="a trigger needs one of: event, segment, date, dates, inactive_event, "
                                       "broadcast_at"),
]
TRIGGER_CLASSES: dict[type, str] = {Trigger: "event", SegmentTrigger: "segment", DateTrigger: "date",
                                    HolidayTrigger: "holiday", InactivityTrigger: "inactivity",
                                    BroadcastTrigger: "broadcast"}
TIME_TRIGGERS = (DateTrigger, HolidayTrigger, InactivityTrigger, BroadcastTrigger)
TIME_TRIGGER_EVENTS = {  # the event a scheduler scan records when a contact enters such a journey
    DateTrigger: "date_reached", HolidayTrigger: "holiday", InactivityTrigger: "inactive",
    BroadcastTrigger: "broadcast",
}


class EveryDays(_Model):
    every_days: int = Field(ge=1, le=3650)


Reentry = Literal["once_per_key", "once_ever"] | EveryDays


class Goal(_Model):
    event: EventType
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.event.replace("_", " ")


class WaitStep(_Model):
    """Wait a fixed time after reaching the step."""

    type: Literal["wait"]
    id: StepId
    seconds: int = Field(default=0, ge=0)
    minutes: int = Field(default=0, ge=0)
    hours: int = Field(default=0, ge=0)
    days: int = Field(default=0, ge=0)

    @property
    def duration(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class WaitUntilStep(_Model):
    """Wait until a local time of day (the contact's time zone), on allowed weekdays."""

    type: Literal["wait_until"]
    id: StepId
    time: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    weekdays: Annotated[list[Weekday], Field(min_length=1)] | None = None


class WaitForEventStep(_Model):
    """Wait for an event (with the run's key, unless same_key is false): yes if it comes, no on timeout."""

    type: Literal["wait_for_event"]
    id: StepId
    event: EventType
    timeout: Duration
    same_key: bool = True
    yes: Steps = Field(default_factory=list)
    no: Steps = Field(default_factory=list)


class ConditionStep(_Model):
    """Branch on the contact's attributes, metrics, trigger event and event history."""

    type: Literal["condition"]
    id: StepId
    condition: Condition
    yes: Steps = Field(default_factory=list)
    no: Steps = Field(default_factory=list)


class SplitArm(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    weight: int = Field(ge=0, le=10_000)
    holdout: bool = False  # a control group: receives nothing
    steps: Steps = Field(default_factory=list)

    @model_validator(mode="after")
    def _holdout_is_empty(self) -> SplitArm:
        if self.holdout and self.steps:
            raise ValueError("a holdout arm receives nothing: it cannot have steps")
        return self


class SplitStep(_Model):
    """Random split into weighted arms; each run's arm is fixed by its id, so a replay agrees."""

    type: Literal["split"]
    id: StepId
    arms: Annotated[list[SplitArm], Field(min_length=2, max_length=10)]

    @model_validator(mode="after")
    def _arms_are_distinct(self) -> SplitStep:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("arm names must be unique")
        if sum(arm.weight for arm in self.arms) == 0:
            raise ValueError("at least one arm needs a weight above 0")
        return self


class SendStep(_Model):
    """Send a template on a channel; routing tries `fallback` in order when it cannot go.

    `channel` may also be "preferred" (the contact's choice on the preference center,
    then the fallbacks) or "reply" (the channel the trigger event came in on, for bots).
    """

    type: Literal["send"]
    id: StepId
    channel: Literal[Channel, "preferred", "reply"] = "email"
    fallback: list[Channel] = Field(default_factory=list, max_length=5)
    template: Annotated[str, Field(min_length=1, max_length=NAME_LENGTH, pattern=NAME_PATTERN)]
    transactional: bool = False  # order updates: sent without marketing consent (never to suppressed)
    topic: Annotated[str, Field(min_length=1, max_length=64)] | None = None  # preference-center topic
    when_capped: Literal["skip", "defer"] = "skip"  # a frequency cap skips the send, or waits for room

    @model_validator(mode="after")
    def _routable(self) -> SendStep:
        if self.channel == "preferred" and not self.fallback:
            raise ValueError("channel 'preferred' needs a fallback list for contacts who chose none")
        if self.channel in self.fallback:
            raise ValueError("fallback repeats the step's own channel")
        if len(set(self.fallback)) != len(self.fallback):
            raise ValueError("fallback lists a channel twice")
        return self

    @property
    def channels(self) -> list[str]:
        """Every channel this step may send on, in the order routing considers them."""
        first = [] if self.channel in ("preferred", "reply") else [self.channel]
        return [*first, *self.fallback]


class UpdateContactStep(_Model):
    type: Literal["update_contact"]
    id: StepId
    set: dict[str, Any] = Field(default_factory=dict)
    unset: list[str] = Field(default_factory=list)
    add_tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list)
    remove_tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _does_something(self) -> UpdateContactStep:
        if not (self.set or self.unset or self.add_tags or self.remove_tags):
            raise ValueError("set, unset, add_tags or remove_tags must say what to change")
        return self


class WebhookStep(_Model):
    """POST the run's context as JSON to a URL, signed like our own API (Rapport-Signature)."""

    type: Literal["webhook"]
    id: StepId
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2000)]
    payload: dict[str, Any] = Field(default_factory=dict)


class ExitStep(_Model):
    type: Literal["exit"]
    id: StepId
    reason: str = "exit step"


Step = Annotated[
    WaitStep | WaitUntilStep | WaitForEventStep | ConditionStep | SplitStep | SendStep | UpdateContactStep
    | WebhookStep | ExitStep,
    Field(discriminator="type"),
]
Steps = Annotated[list[Step], Field(max_length=200)]
BRANCHING = (WaitForEventStep, ConditionStep, SplitStep)

for _model in (WaitForEventStep, ConditionStep, SplitArm, SplitStep):
    _model.model_rebuild()


def branches(step: Any) -> list[tuple[str, list[Any]]]:
    """A branching step's (label, steps) pairs, in order; [] for other steps."""
    if isinstance(step, WaitForEventStep | ConditionStep):
        return [("yes", step.yes), ("no", step.no)]
    if isinstance(step, SplitStep):
        return [(arm.name, arm.steps) for arm in step.arms]
    return []


class JourneyDefinition(_Model):
    trigger: AnyTrigger
    reentry: Reentry = "once_per_key"
    goals: list[Goal] = Field(default_factory=list)
    steps: Annotated[list[Step], Field(min_length=1, max_length=200)]
    _steps_by_id: dict[str, tuple[Any, list[Any], int]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _index(self) -> JourneyDefinition:
        """Step ids are unique across the tree; branches end their sequence (no merging back)."""
        index: dict[str, tuple[Any, list[Any], int]] = {}

        def visit(sequence: list[Any], path: str) -> None:
            for position, step in enumerate(sequence):
                if step.id in index:
                    raise ValueError(f"step id {step.id!r} is used twice")
                index[step.id] = (step, sequence, position)
                if isinstance(step, BRANCHING) and position != len(sequence) - 1:
                    raise ValueError(
                        f"{path}.{position} ({step.id}): a branching step must be the last of its "
                        "sequence; put what follows into its branches"
                    )
                for label, steps in branches(step):
                    visit(steps, f"{path}.{position}.{label}")

        visit(self.steps, "steps")
        self._steps_by_id = index
        return self

    def step(self, step_id: str) -> Any:
        return self._steps_by_id[step_id][0]

    def has_step(self, step_id: str) -> bool:
        return step_id in self._steps_by_id

    def all_steps(self) -> list[Any]:
        return [entry[0] for entry in self._steps_by_id.values()]

    def next_step_id(self, step_id: str) -> str | None:
        _step, sequence, position = self._steps_by_id[step_id]
        return sequence[position + 1].id if position + 1 < len(sequence) else None

    @property
    def first_step_id(self) -> str:
        return self.steps[0].id

    @property
    def entry_events(self) -> tuple[str, ...]:
        """The event types that enroll: the trigger's, the one a time scan records, or "*" (any)."""
        if isinstance(self.trigger, Trigger):
            event = self.trigger.event
            return (event,) if isinstance(event, str) else tuple(event)
        if isinstance(self.trigger, SegmentTrigger):
            return ("*",)
        return (TIME_TRIGGER_EVENTS[type(self.trigger)],)

    def enters_on(self, event_type: str) -> bool:
        return event_type in self.entry_events or self.entry_events == ("*",)

    @property
    def entry_filter(self) -> Condition | None:
        if isinstance(self.trigger, SegmentTrigger):
            return self.trigger.segment
        return self.trigger.filter

    @property
    def entry_event(self) -> str:
        """The entry event types as one text, e.g. "cart_updated,checkout_started"."""
        return ",".join(self.entry_events)

    @property
    def key_path(self) -> str | None:
        """Where the correlation key is in the entering event's properties (None: no key)."""
        if isinstance(self.trigger, Trigger):
            return self.trigger.key
        return None if isinstance(self.trigger, SegmentTrigger) else "key"

    @property
    def is_keyed(self) -> bool:
        """Do later events (goals, awaited events) have to carry the run's key to apply to it?

        Only for event triggers with a key: a win-back keyed by the lapse date is ended by
        any order of the contact's.
        """
        return isinstance(self.trigger, Trigger) and self.trigger.key is not None

    def goal_for(self, event_type: str) -> Goal | None:
        return next((g for g in self.goals if g.event == event_type), None)


def parse_definition(data: Any) -> JourneyDefinition:
    """Validate a definition; errors name the path of each bad field."""
    try:
        return JourneyDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(field_errors(exc, rename=_implied_trigger_kind)) from None


def _implied_trigger_kind(loc: Location) -> Location:
    """The trigger's kind is implied by its fields: "trigger.event", not "trigger.event.event"."""
    if len(loc) > 1 and loc[0] == "trigger" and loc[1] in TRIGGER_KINDS.values():
        return (loc[0], *loc[2:])
    return loc

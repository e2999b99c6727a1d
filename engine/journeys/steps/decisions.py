"""What a step can decide, and what it is told. The interpreter matches on decisions exhaustively."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.segments.conditions import Facts


@dataclass(frozen=True)
class StepContext:
    """Everything a step may look at. Facts are gathered only if a step asks for them."""

    run_id: int
    identity: str  # who this run is, stably: "<contact id>:<key>"; a replay computes the same
    entered_at: datetime
    now: datetime
    timezone: ZoneInfo
    state: dict[str, Any]
    facts: Callable[[], Facts]


@dataclass(frozen=True)
class Proceed:
    """Go on to the next step; `since` is when this step was done, if not just now.

    A wait that fell due at 10:00 but is processed at 10:02 is done as of 10:00, so
    the waits after it are measured from 10:00 and delays do not add up.
    """

    since: datetime | None = None


@dataclass(frozen=True)
class WaitUntil:
    at: datetime


@dataclass(frozen=True)
class Branch:
    """Take branch `label` (its first step, or the end of the run if it is empty).

    `since` is when the branch was taken, if not just now (as for Proceed): a condition
    reached at a wait's due time, or a timeout, counts from then, so delays do not add up.
    """

    label: str
    first_step_id: str | None
    reason: str
    state: dict[str, Any] = field(default_factory=dict)  # merged into the run's state
    since: datetime | None = None


@dataclass(frozen=True)
class Send:
    channel: str  # a channel, or "preferred" / "reply" (resolved by routing)
    template: str
    transactional: bool = False
    fallback: tuple[str, ...] = ()
    topic: str | None = None
    when_capped: str = "skip"


@dataclass(frozen=True)
class UpdateContact:
    set: dict[str, Any]
    unset: list[str]
    add_tags: list[str]
    remove_tags: list[str]


@dataclass(frozen=True)
class CallWebhook:
    url: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Exit:
    reason: str


Decision = Proceed | WaitUntil | Branch | Send | UpdateContact | CallWebhook | Exit

"""Step kinds: one module each, found through `HANDLERS` by the step's `type`.

A handler is pure: given the step and a StepContext (when the run entered the step,
`now`, the contact's time zone, the run's state and lazily gathered facts) it returns
a decision. The interpreter turns decisions into a walk over the journey.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.journeys.steps import (
    condition,
    exit,
    send,
    split,
    update_contact,
    wait,
    wait_for_event,
    wait_until,
    webhook,
)
from engine.journeys.steps.decisions import Decision, StepContext

Handler = Callable[[Any, StepContext], Decision]

HANDLERS: dict[str, Handler] = {
    "wait": wait.decide,
    "wait_until": wait_until.decide,
    "wait_for_event": wait_for_event.decide,
    "condition": condition.decide,
    "split": split.decide,
    "send": send.decide,
    "update_contact": update_contact.decide,
    "webhook": webhook.decide,
    "exit": exit.decide,
}

"""Set or unset contact attributes and add or remove tags."""

from __future__ import annotations

from engine.journeys.definition import UpdateContactStep
from engine.journeys.steps.decisions import Decision, StepContext, UpdateContact


def decide(step: UpdateContactStep, ctx: StepContext) -> Decision:
    return UpdateContact(dict(step.set), list(step.unset), list(step.add_tags), list(step.remove_tags))

"""Branch yes/no on a condition over the contact, its metrics, the trigger event and history."""

from __future__ import annotations

from engine.journeys.definition import ConditionStep
from engine.journeys.steps.decisions import Branch, Decision, StepContext
from engine.segments.conditions import describe, holds


def decide(step: ConditionStep, ctx: StepContext) -> Decision:
    if holds(step.condition, ctx.facts()):
        return Branch("yes", step.yes[0].id if step.yes else None, f"{describe(step.condition)}: true",
                      since=ctx.entered_at)
    return Branch("no", step.no[0].id if step.no else None, f"{describe(step.condition)}: false",
                  since=ctx.entered_at)

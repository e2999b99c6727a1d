"""Branch yes/no on a condition over the contact, its metrics, the trigger event and history."""

from __future__ import annotations

from engine.conditions import describe, holds
from engine.journeys import ConditionStep
from engine.steps.decisions import Branch, Decision, StepContext


def decide(step: ConditionStep, ctx: StepContext) -> Decision:
    if holds(step.condition, ctx.facts()):
        return Branch("yes", step.yes[0].id if step.yes else None, f"{describe(step.condition)}: true",
                      since=ctx.entered_at)
    return Branch("no", step.no[0].id if step.no else None, f"{describe(step.condition)}: false",
                  since=ctx.entered_at)

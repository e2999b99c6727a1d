"""Wait a fixed duration after the run reached the step."""

from __future__ import annotations

from engine.journeys.definition import WaitStep
from engine.journeys.steps.decisions import Decision, Proceed, StepContext, WaitUntil


def decide(step: WaitStep, ctx: StepContext) -> Decision:
    due = ctx.entered_at + step.duration
    return Proceed(since=due) if ctx.now >= due else WaitUntil(due)

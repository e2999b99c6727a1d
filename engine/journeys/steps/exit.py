"""End the run here."""

from __future__ import annotations

from engine.journeys.definition import ExitStep
from engine.journeys.steps.decisions import Decision, Exit, StepContext


def decide(step: ExitStep, ctx: StepContext) -> Decision:
    return Exit(step.reason)

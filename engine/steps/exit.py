"""End the run here."""

from __future__ import annotations

from engine.journeys import ExitStep
from engine.steps.decisions import Decision, Exit, StepContext


def decide(step: ExitStep, ctx: StepContext) -> Decision:
    return Exit(step.reason)

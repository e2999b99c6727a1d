"""End the run here."""

from __future__ import annotations

from datetime import datetime

from engine.journeys import ExitStep
from engine.steps.decisions import Decision, Exit


def decide(step: ExitStep, entered_at: datetime, now: datetime) -> Decision:
    return Exit(step.reason)

"""Wait a fixed duration after the run reached the step."""

from __future__ import annotations

from datetime import datetime

from engine.journeys import WaitStep
from engine.steps.decisions import Decision, Proceed, WaitUntil


def decide(step: WaitStep, entered_at: datetime, now: datetime) -> Decision:
    due = entered_at + step.duration
    return Proceed(since=due) if now >= due else WaitUntil(due)

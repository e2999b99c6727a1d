"""Send a message. Whether it goes out is for the policies, when the message is made."""

from __future__ import annotations

from datetime import datetime

from engine.journeys import SendStep
from engine.steps.decisions import Decision, Send


def decide(step: SendStep, entered_at: datetime, now: datetime) -> Decision:
    return Send(step.channel, step.template)

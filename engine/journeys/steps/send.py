"""Send a message. Whether it goes out is for the policies, when the message is made."""

from __future__ import annotations

from engine.journeys.definition import SendStep
from engine.journeys.steps.decisions import Decision, Send, StepContext


def decide(step: SendStep, ctx: StepContext) -> Decision:
    return Send(step.channel, step.template, step.transactional, tuple(step.fallback), step.topic, step.when_capped)

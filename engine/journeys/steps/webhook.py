"""Call the shop's (or any) URL with the run's context; delivered and retried like a message."""

from __future__ import annotations

from engine.journeys.definition import WebhookStep
from engine.journeys.steps.decisions import CallWebhook, Decision, StepContext


def decide(step: WebhookStep, ctx: StepContext) -> Decision:
    return CallWebhook(step.url, dict(step.payload))

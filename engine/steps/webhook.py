"""Call the shop's (or any) URL with the run's context; delivered and retried like a message."""

from __future__ import annotations

from engine.journeys import WebhookStep
from engine.steps.decisions import CallWebhook, Decision, StepContext


def decide(step: WebhookStep, ctx: StepContext) -> Decision:
    return CallWebhook(step.url, dict(step.payload))

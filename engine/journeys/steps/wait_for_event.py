"""Wait for an event: the yes branch as soon as it arrives, the no branch at the timeout.

The runs service records a matching event in the run's state (`received`) when it
arrives and walks the run at once; this handler only reads that record.
"""

from __future__ import annotations

from engine.journeys.definition import WaitForEventStep
from engine.journeys.steps.decisions import Branch, Decision, StepContext, WaitUntil


def decide(step: WaitForEventStep, ctx: StepContext) -> Decision:
    received = ctx.state.get("received", {}).get(step.id)
    if received is not None:
        return Branch("yes", step.yes[0].id if step.yes else None, f"{step.event} received ({received})")
    deadline = ctx.entered_at + step.timeout.delta
    if ctx.now >= deadline:
        return Branch("no", step.no[0].id if step.no else None, f"no {step.event} before the timeout",
                      since=deadline)
    return WaitUntil(deadline)

"""Random split into weighted arms.

The arm is a pure function of (the run's identity, step id), where the identity is
"<contact id>:<key>": the same run always lands in the same arm, a backtest replay
(which has no run ids) agrees with what really happened, and arms are independent
between splits of one journey.
"""

from __future__ import annotations

import hashlib

from engine.journeys.definition import SplitArm, SplitStep
from engine.journeys.steps.decisions import Branch, Decision, StepContext


def choose_arm(arms: list[SplitArm], identity: int | str, step_id: str) -> SplitArm:
    digest = hashlib.sha256(f"{identity}:{step_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(arm.weight for arm in arms)
    for arm in arms:
        if point < arm.weight:
            return arm
        point -= arm.weight
    return next(arm for arm in reversed(arms) if arm.weight > 0)  # float edge at the very top


def decide(step: SplitStep, ctx: StepContext) -> Decision:
    arm = choose_arm(step.arms, ctx.identity, step.id)
    total = sum(a.weight for a in step.arms)
    reason = f"arm {arm.name} ({arm.weight}/{total}){' holdout: receives nothing' if arm.holdout else ''}"
    return Branch(arm.name, arm.steps[0].id if arm.steps else None, reason, {"arm": f"{step.id}:{arm.name}"},
                  since=ctx.entered_at)

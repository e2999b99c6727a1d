"""Per-journey and per-step counts for the journey canvas: who waits where, what was sent,
which branches were taken, how runs ended, how many converted, and the orders and revenue
attributed to its messages (engine/tracking/attribution.py), per step and per split arm.
Grouped in SQL, from the journal's columns (the branch label, the reason code): never from
the sentences beside them.

Revenue is a decimal string per currency ({"EUR": "59.90"}): summing euros and dollars
into one number would be wrong, and an order without a currency is counted under "".
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from engine.contacts.journal import JournalKind
from engine.journeys.versions import get_journey
from engine.reasons import Reason
from engine.store.models import Attribution, JournalEntry, Message, Run

STEP_KINDS = tuple(kind.value for kind in (JournalKind.WAITING, JournalKind.BRANCH, JournalKind.MESSAGE_SCHEDULED,
                                           JournalKind.SKIPPED, JournalKind.CONTACT_UPDATED, JournalKind.EXITED))


def journey_stats(session: Session, workspace_id: str, journey_id: int) -> dict[str, Any]:
    journey = get_journey(session, workspace_id, journey_id)
    runs = select(Run.id).where(Run.journey_id == journey.id)
    by_status = dict(session.execute(
        select(Run.status, func.count()).where(Run.journey_id == journey.id).group_by(Run.status)).all())
    exits = dict(session.execute(
        select(Run.exit_reason, func.count()).where(Run.journey_id == journey.id, Run.status == "exited")
        .group_by(Run.exit_reason)).all())
    steps: dict[str, dict[str, Any]] = {}

    def step(step_id: str | None) -> dict[str, Any]:
        return steps.setdefault(step_id or "(none)", {"reached": 0, "waiting": 0, "messages": {}, "branches": {}})

    for step_id, count in session.execute(
        select(JournalEntry.step_id, func.count(distinct(JournalEntry.run_id)))
        .where(JournalEntry.run_id.in_(runs), JournalEntry.kind.in_(STEP_KINDS)).group_by(JournalEntry.step_id)
    ):
        step(step_id)["reached"] = count
    for step_id, count in session.execute(
        select(Run.step_id, func.count()).where(Run.journey_id == journey.id, Run.status == "waiting")
        .group_by(Run.step_id)
    ):
        step(step_id)["waiting"] = count
    for step_id, status, count in session.execute(
        select(Message.step_id, Message.status, func.count()).where(Message.journey_id == journey.id)
        .group_by(Message.step_id, Message.status)
    ):
        step(step_id)["messages"][status] = count
    for step_id, label, count in session.execute(
        select(JournalEntry.step_id, JournalEntry.label, func.count())
        .where(JournalEntry.run_id.in_(runs), JournalEntry.kind == JournalKind.BRANCH.value)
        .group_by(JournalEntry.step_id, JournalEntry.label)
    ):
        step(step_id)["branches"][label] = count
    conversions = session.scalar(
        select(func.count(distinct(JournalEntry.run_id)))
        .where(JournalEntry.run_id.in_(runs), JournalEntry.kind == JournalKind.EXITED.value,
               JournalEntry.reason == Reason.GOAL_REACHED.value))
    attributed = _attributed(session, workspace_id, journey.id, step)
    return {
        "journey_id": journey.id,
        "status": journey.status,
        "runs": {"total": sum(by_status.values()), **by_status},
        "exits": exits,
        "conversions": conversions or 0,
        "attributed": attributed,
        "steps": steps,
    }


def _attributed(session: Session, workspace_id: str, journey_id: int, step: Any) -> dict[str, Any]:
    """Fill each step's "attributed" (orders, revenue, and the same per arm); return the journey's totals."""
    total = _tally()
    for step_id, arm, currency, orders, revenue in session.execute(
        select(Attribution.step_id, Attribution.arm, Attribution.currency, func.count(), func.sum(Attribution.revenue))
        .where(Attribution.workspace_id == workspace_id, Attribution.journey_id == journey_id)
        .group_by(Attribution.step_id, Attribution.arm, Attribution.currency)
    ):
        at_step = step(step_id).setdefault("attributed", _tally())
        tallies = [total, at_step]
        if arm is not None:
            tallies += [total["arms"].setdefault(arm, _tally(arms=False)),
                        at_step["arms"].setdefault(arm, _tally(arms=False))]
        for tally in tallies:
            tally["orders"] += orders
            money = Decimal(tally["revenue"].get(currency or "", "0")) + Decimal(str(revenue or 0))
            tally["revenue"][currency or ""] = str(money.quantize(Decimal("0.01")))
    return total


def _tally(*, arms: bool = True) -> dict[str, Any]:
    return {"orders": 0, "revenue": {}, **({"arms": {}} if arms else {})}

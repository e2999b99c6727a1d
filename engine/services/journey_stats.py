"""Per-journey and per-step counts for the journey canvas: who waits where, what was sent,
which branches were taken, how runs ended, how many converted. Grouped in SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from engine.models import JournalEntry, Message, Run
from engine.services.journeys import get_journey

STEP_KINDS = ("waiting", "branch", "message_scheduled", "skipped", "contact_updated", "exited")


def _label(session: Session, column: Any) -> Any:
    """The branch label: the detail's text before the first ':'."""
    if session.get_bind().dialect.name == "postgresql":
        return func.split_part(column, ":", 1)
    return func.substr(column, 1, func.instr(column, ":") - 1)


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
    label = _label(session, JournalEntry.detail)
    for step_id, name, count in session.execute(
        select(JournalEntry.step_id, label, func.count())
        .where(JournalEntry.run_id.in_(runs), JournalEntry.kind == "branch").group_by(JournalEntry.step_id, label)
    ):
        step(step_id)["branches"][name] = count
    return {
        "journey_id": journey.id,
        "status": journey.status,
        "runs": {"total": sum(by_status.values()), **by_status},
        "exits": exits,
        "conversions": sum(n for reason, n in exits.items() if (reason or "").startswith("goal reached")),
        "steps": steps,
    }

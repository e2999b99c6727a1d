"""The journal: one line per decision, so the timeline can say why anything happened."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine.models import JournalEntry


def record(
    session: Session,
    *,
    workspace_id: str,
    contact_id: int,
    kind: str,
    at: datetime,
    run_id: int | None = None,
    step_id: str | None = None,
    message_id: int | None = None,
    detail: str | None = None,
) -> None:
    session.add(
        JournalEntry(
            workspace_id=workspace_id,
            contact_id=contact_id,
            run_id=run_id,
            step_id=step_id,
            message_id=message_id,
            kind=kind,
            at=at,
            detail=detail[:500] if detail else None,
        )
    )

"""The journal: one line per decision, so the timeline can say why anything happened."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine.store.models import JournalEntry, Message, Run


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


def record_run(session: Session, run: Run, kind: str, *, at: datetime, step_id: str | None = None,
               detail: str | None = None) -> None:
    """A line about a run; `step_id` defaults to the step the run stands on."""
    record(session, workspace_id=run.workspace_id, contact_id=run.contact_id, run_id=run.id,
           step_id=step_id or run.step_id, kind=kind, at=at, detail=detail)


def record_message(session: Session, message: Message, kind: str, *, at: datetime,
                   detail: str | None = None) -> None:
    record(session, workspace_id=message.workspace_id, contact_id=message.contact_id, run_id=message.run_id,
           step_id=message.step_id, message_id=message.id, kind=kind, at=at, detail=detail)

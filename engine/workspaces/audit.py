"""The audit log: who did what in a workspace, and when.

One row per deliberate act of a person (or of the operator at the command line): signing
in, adding a user, changing a role or a password, and, as the workspace UI grows,
publishing, pausing, editing settings, rotating keys. Rows are written in the transaction
of the act itself, so the log never claims what did not happen, nor misses what did.
The action is a code from `Action` (data, not prose); `detail` holds its particulars.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.store.people import AuditEntry

PAGE = 100


class Action(enum.StrEnum):
    SIGNED_IN = "signed_in"
    SIGNED_OUT_EVERYWHERE = "signed_out_everywhere"
    USER_ADDED = "user_added"
    ROLE_CHANGED = "role_changed"
    PASSWORD_CHANGED = "password_changed"


@dataclass(frozen=True)
class Actor:
    """Who acts: a user (kept by id and by the email they had then), or the command line."""

    user_id: int | None
    name: str


COMMAND_LINE = Actor(None, "command line")


def audit(session: Session, workspace_id: str, user: Actor, action: Action, subject: str,
          detail: dict[str, Any] | None = None, *, now: datetime) -> None:
    """Record that `user` did `action` to `subject` in `workspace_id`."""
    session.add(AuditEntry(workspace_id=workspace_id, user_id=user.user_id, actor=user.name, action=action.value,
                           subject=subject, detail=detail or {}, at=now))


def recent_entries(session: Session, workspace_id: str, *, limit: int = PAGE) -> list[AuditEntry]:
    """The workspace's latest entries, newest first."""
    return list(session.scalars(select(AuditEntry).where(AuditEntry.workspace_id == workspace_id)
                                .order_by(AuditEntry.id.desc()).limit(limit)))

"""A draft's revisions: every change is a numbered row, and the journey points at the current one.

A change names the revision it was based on and moves the journey from that number to the
next in one conditional UPDATE, whose row count says whether it won: two tabs that both
saw revision 7 cannot both make revision 8, on PostgreSQL (the second UPDATE waits for the
first and then finds 8) as on SQLite (writers queue). The loser gets StaleDraft with the
number that won, and what it sent is not written anywhere. The unique (journey, revision)
index stands behind the UPDATE.

Undo and redo walk the edits as a tree, as editors do: undo goes back to the content the
current one was made on; redo goes to the newest edit made on the current content, so a
new edit after an undo is what redo reaches from there. Both are changes of their own,
with a new number, so a stale client cannot race them either.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from engine.errors import StaleDraft
from engine.store.models import Journey, JourneyDraftRevision


class Action(enum.StrEnum):
    """What a revision did. An edit holds new content; undo and redo hold an earlier edit's."""

    EDIT = "edit"
    UNDO = "undo"
    REDO = "redo"


def record_edit(session: Session, journey: Journey, definition: dict[str, Any], *, base_revision: int | None,
                now: datetime, author: str | None = None) -> JourneyDraftRevision:
    """Save `definition` as the draft's next revision, if the draft is still at `base_revision`
    (None: whatever it is now, for writers that hold the journey's row lock, such as an import)."""
    current = current_revision(session, journey)
    parent = current.state_revision if current is not None else None
    return _advance(session, journey, definition, base_revision=base_revision, action=Action.EDIT,
                    state_revision=None, parent_revision=parent, now=now, author=author)


def record_return(session: Session, journey: Journey, target: JourneyDraftRevision, action: Action, *,
                  base_revision: int, now: datetime, author: str | None = None) -> JourneyDraftRevision:
    """Move the draft back (undo) or forward (redo) to the content of the edit `target`."""
    return _advance(session, journey, target.definition, base_revision=base_revision, action=action,
                    state_revision=target.revision, parent_revision=None, now=now, author=author)


def _advance(session: Session, journey: Journey, definition: dict[str, Any], *, base_revision: int | None,
             action: Action, state_revision: int | None, parent_revision: int | None, now: datetime,
             author: str | None) -> JourneyDraftRevision:
    base = journey.draft_revision if base_revision is None else base_revision
    number = base + 1
    moved = session.execute(
        update(Journey)
        .where(Journey.workspace_id == journey.workspace_id, Journey.id == journey.id,
               Journey.draft_revision == base)
        .values(draft_revision=number, draft=definition, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.expire(journey, ["draft", "draft_revision", "updated_at"])
    if cast(CursorResult[Any], moved).rowcount != 1:
        raise StaleDraft(f"the draft is at revision {journey.draft_revision}, not {base}: reload it and "
                         "make the change again", current_revision=journey.draft_revision)
    revision = JourneyDraftRevision(
        workspace_id=journey.workspace_id, journey_id=journey.id, revision=number, action=action.value,
        state_revision=number if state_revision is None else state_revision, parent_revision=parent_revision,
        definition=definition, author=author, created_at=now,
    )
    session.add(revision)
    session.flush()
    return revision


def revision_row(session: Session, journey: Journey, number: int) -> JourneyDraftRevision | None:
    return session.scalar(select(JourneyDraftRevision).where(
        JourneyDraftRevision.workspace_id == journey.workspace_id, JourneyDraftRevision.journey_id == journey.id,
        JourneyDraftRevision.revision == number))


def current_revision(session: Session, journey: Journey) -> JourneyDraftRevision | None:
    return revision_row(session, journey, journey.draft_revision) if journey.draft_revision else None


def undo_target(session: Session, journey: Journey) -> JourneyDraftRevision | None:
    """The edit whose content undo returns to: the one the current content was made on."""
    current = current_revision(session, journey)
    if current is None:
        return None
    edit = current if current.state_revision == current.revision else revision_row(
        session, journey, current.state_revision)
    if edit is None or edit.parent_revision is None:
        return None
    return revision_row(session, journey, edit.parent_revision)


def redo_target(session: Session, journey: Journey) -> JourneyDraftRevision | None:
    """The edit redo goes to: the newest one made on the current content (only edits have a parent)."""
    current = current_revision(session, journey)
    if current is None:
        return None
    return session.scalar(
        select(JourneyDraftRevision)
        .where(JourneyDraftRevision.workspace_id == journey.workspace_id,
               JourneyDraftRevision.journey_id == journey.id,
               JourneyDraftRevision.parent_revision == current.state_revision)
        .order_by(JourneyDraftRevision.revision.desc()).limit(1))


def history(session: Session, journey: Journey, *, limit: int, before: int | None = None
            ) -> list[JourneyDraftRevision]:
    """The newest `limit` revisions, below `before` if given (pages of history, newest first)."""
    query = select(JourneyDraftRevision).where(JourneyDraftRevision.workspace_id == journey.workspace_id,
                                               JourneyDraftRevision.journey_id == journey.id)
    if before is not None:
        query = query.where(JourneyDraftRevision.revision < before)
    return list(session.scalars(query.order_by(JourneyDraftRevision.revision.desc()).limit(limit)))

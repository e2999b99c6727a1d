"""The journey builder's draft: saved at every change, even when it does not validate yet.

Nothing a marketer does is lost. Each change is a new revision (engine/journeys/revisions.py)
based on the one the client saw; a stale one is refused (StaleDraft) rather than written
over another tab's work. A draft may be incomplete or wrong while it is being built, so it
is saved as it is and `problems` says what is wrong, by field path, with the same checks
publishing, the API and YAML import run (validate_definition); only publishing refuses a
draft with problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.delivery.templates import Templates
from engine.errors import DefinitionError, StaleDraft
from engine.journeys import revisions
from engine.journeys.versions import JourneyStateError, get_journey, publish_journey, validate_definition
from engine.store.models import Journey, JourneyDraftRevision, JourneyStatus, JourneyVersion

_STEP_BY_ID = re.compile(r"^steps\[id=([^\]]+)\]")


@dataclass(frozen=True)
class Draft:
    """The draft as the builder shows it: its content, revision, what is wrong, and what undo/redo can do."""

    journey_id: int
    revision: int
    definition: dict[str, Any] | None
    problems: list[dict[str, str]]
    can_undo: bool
    can_redo: bool
    updated_at: datetime


def problems(definition: Any, *, templates: Templates, workspace_id: str) -> list[dict[str, str]]:
    """What keeps the draft from being published: {"field", "message"} by path, and "step_id" where the
    field belongs to a step (for the builder to link each problem to its step). [] when it is ready."""
    try:
        validate_definition(definition, templates=templates, workspace_id=workspace_id)
    except DefinitionError as exc:
        return [_with_step(definition, problem) for problem in exc.errors]
    return []


def _with_step(definition: Any, problem: dict[str, str]) -> dict[str, str]:
    """The problem, with the id of the innermost step on its path ("steps.2.yes.0.wait.hours" walks
    the draft: steps[2], its yes branch, that branch's step 0; the step's type tag is skipped)."""
    by_id = _STEP_BY_ID.match(problem["field"])
    if by_id:
        return problem | {"step_id": by_id.group(1)}
    node, step_id, at_step = definition, None, False
    for part in problem["field"].split("."):
        if at_step and part == node.get("type"):  # the tag pydantic puts right after a step's index
            at_step = False
            continue
        if isinstance(node, list) and part.isascii() and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            break
        at_step = isinstance(node, dict) and "type" in node and isinstance(node.get("id"), str)
        if at_step:
            step_id = node["id"]
    return problem | {"step_id": step_id} if step_id is not None else problem


def load_draft(session: Session, workspace_id: str, journey_id: int, *, templates: Templates) -> Draft:
    return _draft(session, get_journey(session, workspace_id, journey_id), templates)


def save_draft(session: Session, workspace_id: str, journey_id: int, definition: Any, *, base_revision: int,
               templates: Templates, now: datetime, author: str | None = None) -> Draft:
    """Save the builder's change as the next revision, valid or not, if the draft is still at
    `base_revision`; the same content again is no change and keeps the revision."""
    if not isinstance(definition, dict):
        raise DefinitionError([{"field": "definition", "message": "a draft is a JSON object (it may be incomplete)"}])
    journey = _editable(session, workspace_id, journey_id, base_revision)
    if definition != journey.draft:
        revisions.record_edit(session, journey, definition, base_revision=base_revision, now=now, author=author)
    return _draft(session, journey, templates)


def undo(session: Session, workspace_id: str, journey_id: int, *, base_revision: int, templates: Templates,
         now: datetime, author: str | None = None) -> Draft:
    """Back to the content the current draft was made on, as a new revision."""
    return _return_to(session, workspace_id, journey_id, revisions.Action.UNDO, base_revision=base_revision,
                      templates=templates, now=now, author=author)


def redo(session: Session, workspace_id: str, journey_id: int, *, base_revision: int, templates: Templates,
         now: datetime, author: str | None = None) -> Draft:
    """Forward to the newest edit made on the current content (what the last undo went back from)."""
    return _return_to(session, workspace_id, journey_id, revisions.Action.REDO, base_revision=base_revision,
                      templates=templates, now=now, author=author)


def _return_to(session: Session, workspace_id: str, journey_id: int, action: revisions.Action, *,
               base_revision: int, templates: Templates, now: datetime, author: str | None) -> Draft:
    journey = _editable(session, workspace_id, journey_id, base_revision)
    target = (revisions.undo_target if action == revisions.Action.UNDO else revisions.redo_target)(session, journey)
    if target is None:
        raise JourneyStateError(f"nothing to {action.value}")
    revisions.record_return(session, journey, target, action, base_revision=base_revision, now=now, author=author)
    return _draft(session, journey, templates)


def publish_draft(session: Session, workspace_id: str, journey_id: int, *, templates: Templates, now: datetime,
                  base_revision: int | None = None) -> JourneyVersion:
    """Publish the draft as a new version. A draft with problems is refused with all of them (by path and
    step); with `base_revision`, so is a draft changed since the publisher looked at it."""
    journey = get_journey(session, workspace_id, journey_id, lock=True)
    if base_revision is not None and base_revision != journey.draft_revision:
        raise StaleDraft(f"the draft is at revision {journey.draft_revision}, not {base_revision}: review it "
                         "before publishing", current_revision=journey.draft_revision)
    found = problems(journey.draft, templates=templates, workspace_id=workspace_id)
    if found:
        raise DefinitionError(found)
    return publish_journey(session, workspace_id, journey_id, templates=templates, now=now)


def history(session: Session, workspace_id: str, journey_id: int, *, limit: int = 50, before: int | None = None
            ) -> tuple[Journey, list[JourneyDraftRevision]]:
    """The journey and its draft's revisions, newest first (`before`: the page below that number)."""
    journey = get_journey(session, workspace_id, journey_id)
    return journey, revisions.history(session, journey, limit=limit, before=before)


def _editable(session: Session, workspace_id: str, journey_id: int, base_revision: int) -> Journey:
    journey = get_journey(session, workspace_id, journey_id)
    if journey.status == JourneyStatus.ARCHIVED:
        raise JourneyStateError("an archived journey cannot be edited")
    if base_revision != journey.draft_revision:  # early and cheap; the conditional UPDATE is what decides
        raise StaleDraft(f"the draft is at revision {journey.draft_revision}, not {base_revision}: reload it and "
                         "make the change again", current_revision=journey.draft_revision)
    return journey


def _draft(session: Session, journey: Journey, templates: Templates) -> Draft:
    return Draft(
        journey_id=journey.id, revision=journey.draft_revision, definition=journey.draft,
        problems=problems(journey.draft, templates=templates, workspace_id=journey.workspace_id),
        can_undo=revisions.undo_target(session, journey) is not None,
        can_redo=revisions.redo_target(session, journey) is not None, updated_at=journey.updated_at,
    )

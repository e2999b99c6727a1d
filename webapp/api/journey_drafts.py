"""The journey builder's draft under /api/v1/journeys/<id>: saved at every change, with history, undo
and redo, and the publish preview (diff, runs in flight).

Every change carries `base_revision`, the draft revision the client last saw; a stale one
answers 409 `stale_draft` with `current_revision`, and nothing of either side is lost. A
draft that does not validate is saved all the same; `problems` lists what is wrong, and
publishing (POST .../publish, in webapp/api/journeys.py) refuses it with the same list.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from engine.errors import DefinitionError, StaleDraft
from engine.journeys import drafts, preview
from engine.journeys.versions import JourneyStateError
from engine.store.models import JourneyDraftRevision
from webapp import context
from webapp.api.auth import authenticate
from webapp.api.errors import BadJson, error, register_api_errors
from webapp.api.json_body import json_body

bp = Blueprint("journey_drafts_api", __name__, url_prefix="/api/v1/journeys")
HISTORY_PAGE = 50
MAX_HISTORY_PAGE = 200
MAX_REVISION = 2**31 - 1  # the revision columns are 32-bit integers


def stale(exc: StaleDraft) -> Any:
    return error(409, "stale_draft", str(exc), current_revision=exc.current_revision)


register_api_errors(bp)
bp.register_error_handler(StaleDraft, stale)
bp.register_error_handler(
    DefinitionError, lambda exc: error(422, "invalid_request", "the request has invalid fields", errors=exc.errors))
bp.register_error_handler(JourneyStateError, lambda exc: error(409, "journey_state", str(exc)))


def draft_json(draft: drafts.Draft) -> dict[str, Any]:
    return {"journey_id": draft.journey_id, "revision": draft.revision, "definition": draft.definition,
            "problems": draft.problems, "can_undo": draft.can_undo, "can_redo": draft.can_redo,
            "updated_at": draft.updated_at.isoformat()}


def revision_json(revision: JourneyDraftRevision, current: int) -> dict[str, Any]:
    return {"revision": revision.revision, "action": revision.action, "state_revision": revision.state_revision,
            "author": revision.author, "created_at": revision.created_at.isoformat(),
            "current": revision.revision == current}


def base_revision(body: dict[str, Any]) -> int:
    """The revision a change is based on: required, a whole number a revision can be."""
    value = body.get("base_revision")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_REVISION:
        raise DefinitionError([{"field": "base_revision", "message": (
            "required: the draft revision this change is based on (`revision` from GET .../draft)")}])
    return value


def object_body() -> dict[str, Any]:
    data = json_body()
    if not isinstance(data, dict):
        raise BadJson("expected a JSON object")
    return data


@bp.get("/<int:journey_id>/draft")
def show_draft(journey_id: int) -> Any:
    caller = authenticate()
    with context.sessions()() as session:
        return jsonify(draft_json(drafts.load_draft(session, caller.workspace_id, journey_id,
                                                    templates=context.templates())))


@bp.put("/<int:journey_id>/draft")
def save_draft(journey_id: int) -> Any:
    """Save the draft, valid or not: {"base_revision": n, "definition": {...}}."""
    caller = authenticate()
    body = object_body()
    base = base_revision(body)
    with context.sessions().begin() as session:
        draft = drafts.save_draft(session, caller.workspace_id, journey_id, body.get("definition"),
                                  base_revision=base, templates=context.templates(), now=context.now())
        return jsonify(draft_json(draft))


@bp.post("/<int:journey_id>/draft/undo", defaults={"step": "undo"})
@bp.post("/<int:journey_id>/draft/redo", defaults={"step": "redo"})
def undo_or_redo(journey_id: int, step: str) -> Any:
    caller = authenticate()
    base = base_revision(object_body())
    move = drafts.undo if step == "undo" else drafts.redo
    with context.sessions().begin() as session:
        draft = move(session, caller.workspace_id, journey_id, base_revision=base, templates=context.templates(),
                     now=context.now())
        return jsonify(draft_json(draft))


@bp.get("/<int:journey_id>/draft/history")
def history(journey_id: int) -> Any:
    """The draft's revisions, newest first; `before=<next_before>` pages on."""
    caller = authenticate()
    limit = _whole_number("limit", HISTORY_PAGE, low=1, high=MAX_HISTORY_PAGE)
    before = _whole_number("before", None, low=1, high=MAX_REVISION)
    with context.sessions()() as session:
        journey, rows = drafts.history(session, caller.workspace_id, journey_id, limit=limit, before=before)
        more = len(rows) == limit and rows[-1].revision > 1
        return jsonify(revisions=[revision_json(row, journey.draft_revision) for row in rows],
                       next_before=rows[-1].revision if more else None)


@bp.get("/<int:journey_id>/diff")
def diff(journey_id: int) -> Any:
    """?from=live&to=draft (the defaults): steps added, removed, changed (with the fields) and moved."""
    caller = authenticate()
    with context.sessions()() as session:
        return jsonify(preview.diff_refs(session, caller.workspace_id, journey_id,
                                         old=request.args.get("from", "live"), new=request.args.get("to", "draft")))


@bp.get("/<int:journey_id>/in-flight")
def in_flight(journey_id: int) -> Any:
    """Runs still going, per version and step: each finishes on the version it entered."""
    caller = authenticate()
    with context.sessions()() as session:
        return jsonify(preview.runs_in_flight(session, caller.workspace_id, journey_id))


def _whole_number(name: str, default: int | None, *, low: int, high: int) -> Any:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or not low <= int(raw) <= high:
        raise DefinitionError([{"field": name, "message": f"expected a whole number from {low} to {high}"}])
    return int(raw)

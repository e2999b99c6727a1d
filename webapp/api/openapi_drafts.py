"""OpenAPI paths of the journey builder's draft and publish preview (webapp/api/journey_drafts.py)."""

from __future__ import annotations

from typing import Any

from engine.journeys.preview import NOT_STARTED, REF_HELP
from engine.journeys.revisions import Action
from webapp.api.journey_drafts import MAX_HISTORY_PAGE, MAX_REVISION
from webapp.api.openapi_journeys import DEFINITION, ERRORS, JOURNEY_ID, NOT_FOUND, _answer, _op

PROBLEM = {"type": "object", "required": ["field", "message"], "properties": {
    "field": {"type": "string", "description": "Path of the bad field, e.g. steps.3.yes.0.wait_for_event.timeout "
                                               "(a template missing: steps[id=<step>].template)."},
    "message": {"type": "string"},
    "step_id": {"type": "string", "description": "The step the field belongs to, when it belongs to one."}}}
DRAFT = {"type": "object", "required": ["journey_id", "revision", "definition", "problems", "can_undo", "can_redo",
                                        "updated_at"], "properties": {
    "journey_id": {"type": "integer"},
    "revision": {"type": "integer", "description": "Send it as `base_revision` with the next change."},
    "definition": {"type": ["object", "null"], "description": "The draft as saved: it may not validate yet."},
    "problems": {"type": "array", "items": PROBLEM, "description": "What keeps it from being published; "
                                                                   "[] when it is ready."},
    "can_undo": {"type": "boolean"}, "can_redo": {"type": "boolean"},
    "updated_at": {"type": "string", "format": "date-time"}}}
STALE = _answer("The draft changed since `base_revision` (another tab or person saved): nothing was written. "
               "`current_revision` says where it is; reload it and make the change again. Or (`journey_state`) "
               "the journey is archived, or there is nothing to undo or redo.", {
                   "type": "object", "required": ["error", "message"], "properties": {
                       **ERRORS["properties"], "current_revision": {"type": "integer"}}})
BAD_FIELDS = _answer("A field of the request is missing or wrong; `errors` names each.", ERRORS)
BASE_BODY = {"type": "object", "required": ["base_revision"], "properties": {
    "base_revision": {"type": "integer", "minimum": 0, "maximum": MAX_REVISION,
                      "description": "The draft revision this change is based on."}}}
REVISION = {"type": "object", "required": ["revision", "action", "state_revision", "author", "created_at",
                                           "current"], "properties": {
    "revision": {"type": "integer"},
    "action": {"enum": [action.value for action in Action], "description": (
        "edit: new content; undo and redo: the content of an earlier edit, named by `state_revision`.")},
    "state_revision": {"type": "integer", "description": "The edit whose content this revision holds."},
    "author": {"type": ["string", "null"]}, "created_at": {"type": "string", "format": "date-time"},
    "current": {"type": "boolean", "description": "This is the draft now."}}}
SIDE = {"type": "object", "required": ["ref", "version", "revision"], "properties": {
    "ref": {"type": "string"}, "version": {"type": ["integer", "null"]},
    "revision": {"type": ["integer", "null"], "description": "The draft revision (a version: the one it was "
                                                             "published from, when known)."}}}
PLACED_STEP = {"type": "object", "required": ["step_id", "type", "path"], "properties": {
    "step_id": {"type": "string"}, "type": {"description": "The step's type, as written."},
    "path": {"type": "string", "description": "Where it is, e.g. steps.2.yes.0 or steps.4.arms.1.steps.0."}}}
FIELD_CHANGE = {"type": "object", "required": ["field", "from", "to"], "properties": {
    "field": {"type": "string"}, "from": {"description": "null: no such field"}, "to": {}}}
DIFF = {"type": "object", "required": ["from", "to", "added", "removed", "changed", "moved", "settings"],
        "properties": {
    "from": SIDE, "to": SIDE,
    "added": {"type": "array", "items": PLACED_STEP}, "removed": {"type": "array", "items": PLACED_STEP},
    "changed": {"type": "array", "items": {"type": "object", "required": ["step_id", "type", "path", "fields"],
                                           "properties": {**PLACED_STEP["properties"], "fields": {
                                               "type": "array", "items": FIELD_CHANGE}}}},
    "moved": {"type": "array", "items": {"type": "object", "required": ["step_id", "type", "from", "to"],
                                         "properties": {"step_id": {"type": "string"}, "type": {},
                                                        "from": {"type": "string"}, "to": {"type": "string"}}}},
    "settings": {"type": "array", "items": FIELD_CHANGE, "description": "trigger, reentry, goals."}}}
IN_FLIGHT = {"type": "object", "required": ["journey_id", "live_version", "runs", "versions"], "properties": {
    "journey_id": {"type": "integer"}, "live_version": {"type": ["integer", "null"]},
    "runs": {"type": "integer", "description": "Active or waiting runs of every version."},
    "versions": {"type": "array", "description": "Oldest first; only versions with runs in flight.", "items": {
        "type": "object", "required": ["version", "live", "runs", "steps"], "properties": {
            "version": {"type": "integer"}, "live": {"type": "boolean"}, "runs": {"type": "integer"},
            "steps": {"type": "object", "additionalProperties": {"type": "integer"}, "description": (
                f"Runs per step id they are at ({NOT_STARTED!r}: not started yet).")}}}}}}
DRAFT_ANSWER = _answer("The draft, its revision and its problems.", DRAFT)


def _move(action: str, text: str) -> dict[str, Any]:
    return {"parameters": [JOURNEY_ID], "post": _op(
        f"{action}JourneyDraft", text, {"200": DRAFT_ANSWER, "404": NOT_FOUND, "409": STALE, "422": BAD_FIELDS},
        requestBody={"required": True, "content": {"application/json": {"schema": BASE_BODY}}})}


DRAFT_PATHS: dict[str, Any] = {
    "/api/v1/journeys/{journey_id}/draft": {
        "parameters": [JOURNEY_ID],
        "get": _op("getJourneyDraft", "The builder's draft, with its revision and what keeps it from being "
                         "published", {"200": DRAFT_ANSWER, "404": NOT_FOUND}),
        "put": _op(
            "saveJourneyDraft", "Save the draft at once, valid or not, as a new revision based on `base_revision`",
            {"200": DRAFT_ANSWER, "404": NOT_FOUND, "409": STALE, "422": BAD_FIELDS},
            requestBody={"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["base_revision", "definition"], "properties": {
                    **BASE_BODY["properties"], "definition": DEFINITION}}}}}),
    },
    "/api/v1/journeys/{journey_id}/draft/undo": _move("undo", "Undo: back to what the draft was before its last "
                                                              "edit (a new revision)"),
    "/api/v1/journeys/{journey_id}/draft/redo": _move("redo", "Redo: forward to the edit the last undo went back "
                                                              "from (a new revision)"),
    "/api/v1/journeys/{journey_id}/draft/history": {"parameters": [JOURNEY_ID], "get": _op(
        "journeyDraftHistory", "The draft's revisions, newest first",
        {"200": _answer("A page; `before=<next_before>` gives the next one.", {
            "type": "object", "required": ["revisions", "next_before"], "properties": {
                "revisions": {"type": "array", "items": REVISION}, "next_before": {"type": ["integer", "null"]}}}),
         "404": NOT_FOUND, "422": BAD_FIELDS},
        parameters=[
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                        "maximum": MAX_HISTORY_PAGE, "default": 50}},
            {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_REVISION}}])},
    "/api/v1/journeys/{journey_id}/diff": {"parameters": [JOURNEY_ID], "get": _op(
        "journeyDiff", "What changes between two of the journey's definitions, by step id: added, removed, "
        "changed (with each field) and moved",
        {"200": _answer("The diff.", DIFF), "404": _answer("No such journey, version or revision.", ERRORS),
         "422": BAD_FIELDS},
        parameters=[{"name": side, "in": "query", "description": f"{REF_HELP}; default {default}",
                     "schema": {"type": "string", "default": default}}
                    for side, default in (("from", "live"), ("to", "draft"))])},
    "/api/v1/journeys/{journey_id}/in-flight": {"parameters": [JOURNEY_ID], "get": _op(
        "journeyRunsInFlight", "Runs still going, per version and step: each finishes on the version it entered",
        {"200": _answer("The counts.", IN_FLIGHT), "404": NOT_FOUND})},
}

"""OpenAPI path of the dead-letters API (webapp/api/dead_letters.py)."""

from __future__ import annotations

from typing import Any

from engine.batches.dead_letters import MAX_FAILURES, STATUSES
from engine.store.db import JobName
from webapp.api.dead_letters import MAX_LIMIT

ERRORS = {"type": "object", "required": ["error", "message"], "properties": {
    "error": {"type": "string"}, "message": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "field": {"type": "string"}, "message": {"type": "string"}}}}}}
TIME = {"type": "string", "format": "date-time"}
MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}

DEAD_LETTER = {"type": "object", "required": [
    "id", "workspace", "kind", "item_type", "item_id", "contact", "status", "error_type", "error", "attempts",
    "first_failed_at", "last_failed_at", "dead_at", "resolved_at"], "properties": {
    "id": {"type": "integer", "description": "Give it to `rapport dead-letters retry`."},
    "workspace": {"type": "string", "description": "The caller's own workspace."},
    "kind": {"enum": [name.value for name in JobName], "description": "The job the item failed in."},
    "item_type": {"enum": ["event", "run", "message"]},
    "item_id": {"type": "integer", "description": "The event's, run's or message's internal id."},
    "contact": {"type": ["string", "null"], "description": "The contact's external_id: its timeline shows each "
                                                           "failure (`processing_failed`) and the set-aside "
                                                           "(`dead_letter`)."},
    "status": {"enum": list(STATUSES), "description": f"failing: still retried by the sweep; dead: set aside after "
                                                      f"{MAX_FAILURES} failures (the event is marked evaluated, "
                                                      f"the run exited, the message failed, each saying why); "
                                                      f"resolved: went through later."},
    "error_type": {"type": "string", "description": "The exception's type, e.g. OverflowError."},
    "error": {"type": "string", "description": "The first line of its message."},
    "attempts": {"type": "integer", "minimum": 1},
    "first_failed_at": TIME, "last_failed_at": TIME, "dead_at": MAYBE_TIME, "resolved_at": MAYBE_TIME,
}}

DEAD_LETTER_PATHS: dict[str, Any] = {
    "/api/v1/dead-letters": {"get": {
        "operationId": "listDeadLetters", "tags": ["operations"],
        "summary": "Items (events, runs, messages) that kept failing and were set aside, newest first",
        "description": "A job whose ids include one that fails is split so that the others go through at once; "
                       f"the failing item is retried by the sweep and set aside after {MAX_FAILURES} failures. "
                       "Once the cause is fixed, `rapport dead-letters retry [--workspace W] [ID ...]` owes them "
                       "again; one that goes through is marked resolved.",
        "parameters": [
            {"name": "status", "in": "query", "required": False,
             "schema": {"enum": [*STATUSES, "all"], "default": "dead"}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}},
            {"name": "before", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
             "description": "Only letters older than this id: the previous page's `next_before`."},
        ],
        "responses": {
            "200": {"description": "A page of the workspace's dead letters.", "content": {"application/json": {
                "schema": {"type": "object", "required": ["dead_letters", "next_before"], "properties": {
                    "dead_letters": {"type": "array", "items": DEAD_LETTER},
                    "next_before": {"type": ["integer", "null"],
                                    "description": "Pass as `before` for the next page; null: no more."}}}}}},
            "401": {"description": "Bad or missing API key.", "content": {"application/json": {"schema": ERRORS}}},
            "422": {"description": "A query parameter is invalid; `errors` names it.",
                    "content": {"application/json": {"schema": ERRORS}}},
        },
    }},
}

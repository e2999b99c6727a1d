"""OpenAPI paths of the journeys API (kept apart so each spec module stays readable)."""

from __future__ import annotations

from typing import Any

JOURNEY_ID = {"name": "journey_id", "in": "path", "required": True, "schema": {"type": "integer"}}
DEFINITION_DOC = (
    "A journey definition: `trigger` (an event with optional `key` and `filter`; or `date` + `offset_days` + "
    "`at`; or holiday `dates`; or `inactive_event` + `days`; or `broadcast_at`), `reentry` (once_per_key, "
    "once_ever or {every_days}), `goals` and a tree of `steps` (wait, wait_until, wait_for_event, condition, "
    "split, send, update_contact, webhook, exit). Branching steps end their sequence."
)
DEFINITION = {"type": "object", "description": DEFINITION_DOC}
JOURNEY = {"type": "object", "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"},
    "status": {"enum": ["draft", "live", "paused", "archived"]},
    "draft": DEFINITION, "live_version_id": {"type": ["integer", "null"]},
    "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"},
}}
VERSION = {"type": "object", "properties": {
    "id": {"type": "integer"}, "version": {"type": "integer"}, "definition": DEFINITION,
    "created_at": {"type": "string", "format": "date-time"}}}
ERRORS = {"type": "object", "properties": {
    "error": {"type": "string"}, "message": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "field": {"type": "string", "description": "Path of the bad field, e.g. steps.0.wait.hours"},
        "message": {"type": "string"}}}}}}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    common = {"401": _answer("Bad or missing API key.", ERRORS)}
    return {"operationId": op_id, "tags": ["journeys"], "summary": summary, "responses": responses | common,
            **extra}


INVALID = _answer("The definition has invalid fields; `errors` names each path.", ERRORS)
NOT_FOUND = _answer("No such journey in this workspace.", ERRORS)
CONFLICT = _answer("The journey's status does not allow this (e.g. resuming an archived journey).", ERRORS)
JSON_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
    "name": {"type": "string"}, "definition": DEFINITION, "publish": {"type": "boolean"}}}}}}


def _status(action: str, text: str) -> dict[str, Any]:
    return {"parameters": [JOURNEY_ID], "post": _op(
        f"{action}Journey", text, {"200": _answer("The journey.", JOURNEY), "404": NOT_FOUND, "409": CONFLICT})}


JOURNEY_PATHS: dict[str, Any] = {
    "/api/v1/journeys": {
        "get": _op("listJourneys", "List journeys", {"200": _answer("All journeys of the workspace.", {
            "type": "object", "properties": {"journeys": {"type": "array", "items": JOURNEY}}})}),
        "post": _op("createJourney", "Create a journey (a draft; published at once with publish: true)",
                    {"201": _answer("Created.", JOURNEY), "422": INVALID}, requestBody=JSON_BODY),
    },
    "/api/v1/journeys/validate": {"post": _op(
        "validateJourney", "Validate a definition without saving it",
        {"200": _answer("`valid`, and the errors with their paths.", {"type": "object", "properties": {
            "valid": {"type": "boolean"}, "errors": ERRORS["properties"]["errors"]}})}, requestBody=JSON_BODY)},
    "/api/v1/journeys/import": {"post": _op(
        "importJourney", "Create a journey from a YAML file (`name` and `definition`); ?publish=true publishes it",
        {"201": _answer("Created.", JOURNEY), "422": INVALID},
        parameters=[{"name": "publish", "in": "query", "schema": {"type": "boolean"}}],
        requestBody={"required": True, "content": {"application/yaml": {"schema": {"type": "string"}}}})},
    "/api/v1/journeys/{journey_id}": {
        "parameters": [JOURNEY_ID],
        "get": _op("getJourney", "Get a journey", {"200": _answer("The journey.", JOURNEY), "404": NOT_FOUND}),
        "put": _op("editJourney", "Edit the draft (what runs changes only when published)",
                   {"200": _answer("The journey.", JOURNEY), "404": NOT_FOUND, "409": CONFLICT, "422": INVALID},
                   requestBody=JSON_BODY),
    },
    "/api/v1/journeys/{journey_id}/publish": {"parameters": [JOURNEY_ID], "post": _op(
        "publishJourney", "Publish the draft as a new immutable version; running contacts stay on theirs",
        {"201": _answer("The new version.", VERSION), "404": NOT_FOUND, "409": CONFLICT, "422": INVALID})},
    "/api/v1/journeys/{journey_id}/pause": _status("pause", "Pause: timers hold and nobody enters"),
    "/api/v1/journeys/{journey_id}/resume": _status("resume", "Resume: due timers fire"),
    "/api/v1/journeys/{journey_id}/archive": _status("archive", "Archive: live runs exit"),
    "/api/v1/journeys/{journey_id}/versions": {"parameters": [JOURNEY_ID], "get": _op(
        "listJourneyVersions", "List published versions", {"200": _answer("Oldest first.", {
            "type": "object", "properties": {"versions": {"type": "array", "items": VERSION}}}), "404": NOT_FOUND})},
    "/api/v1/journeys/{journey_id}/stats": {"parameters": [JOURNEY_ID], "get": _op(
        "journeyStats", "Counts: runs by status, exits by reason, conversions, and per step: reached, waiting, "
        "messages by status, branches taken", {"200": _answer("The counts.", {"type": "object"}), "404": NOT_FOUND})},
    "/api/v1/journeys/{journey_id}/export": {"parameters": [JOURNEY_ID], "get": _op(
        "exportJourney", "The draft as a YAML file",
        {"200": {"description": "YAML", "content": {"application/yaml": {"schema": {"type": "string"}}}},
         "404": NOT_FOUND})},
}

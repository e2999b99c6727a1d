"""OpenAPI paths of the journeys API (kept apart so each spec module stays readable)."""

from __future__ import annotations

from typing import Any

from engine.store.models import JourneyStatus

JOURNEY_ID = {"name": "journey_id", "in": "path", "required": True, "schema": {"type": "integer"}}
DEFINITION_DOC = (
    "A journey definition: `trigger` (an event with optional `key` and `filter`; or `date` + `offset_days` + "
    "`at`; or holiday `dates`; or `inactive_event` + `days`; or `broadcast_at`), `reentry` (once_per_key, "
    "once_ever or {every_days}), `goals` and a tree of `steps` (wait, wait_until, wait_for_event, condition, "
    "split, send, update_contact, webhook, exit). Branching steps end their sequence."
)
DEFINITION = {"type": "object", "description": DEFINITION_DOC}
JOURNEY: dict[str, Any] = {"type": "object", "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"},
    "uuid": {"type": "string", "description": "Written into exported files: importing one updates this journey."},
    "recipe": {"type": ["string", "null"], "description": "The recipe it was installed from, if any."},
    "status": {"enum": [status.value for status in JourneyStatus]},
    "draft": DEFINITION, "draft_revision": {"type": "integer", "description": "The draft's revision (see .../draft)."},
    "live_version_id": {"type": ["integer", "null"]},
    "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"},
}}
VERSION: dict[str, Any] = {"type": "object", "properties": {
    "id": {"type": "integer"}, "version": {"type": "integer"}, "definition": DEFINITION,
    "draft_revision": {"type": ["integer", "null"], "description": "The draft revision it was published from."},
    "created_at": {"type": "string", "format": "date-time"}}}
WARNINGS = {"warnings": {"type": "array", "items": {"type": "string"}, "description": (
    "Other live journeys entered by the same event as this live one: a contact would get the messages of each.")}}
WARNED_JOURNEY = {"type": "object", "properties": JOURNEY["properties"] | WARNINGS}
ERRORS: dict[str, Any] = {"type": "object", "properties": {
    "error": {"type": "string"}, "message": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "field": {"type": "string", "description": "Path of the bad field, e.g. steps.0.wait.hours"},
        "message": {"type": "string"},
        "step_id": {"type": "string", "description": "Publishing: the step the field belongs to, if any."}}}}}}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    common = {"401": _answer("Bad or missing API key.", ERRORS)}
    return {"operationId": op_id, "tags": ["journeys"], "summary": summary, "responses": responses | common,
            **extra}


INVALID = _answer("The definition has invalid fields; `errors` names each path.", ERRORS)
NOT_FOUND = _answer("No such journey in this workspace.", ERRORS)
CONFLICT = _answer("The journey's status does not allow this (e.g. resuming an archived journey).", ERRORS)
IMPORTED = {"type": "object", "properties": WARNED_JOURNEY["properties"] | {"created": {"type": "boolean"}}}
JSON_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
    "name": {"type": "string"}, "definition": DEFINITION, "publish": {"type": "boolean"}}}}}}


EXISTS = _answer("The journey exists already (`journey_id` names it): a recipe installed before, or the journey "
                 "a file came from is archived. Ask for a copy instead.", {"type": "object", "properties": {
                     **ERRORS["properties"], "journey_id": {"type": "integer"}}})


def _status(action: str, text: str) -> dict[str, Any]:
    return {"parameters": [JOURNEY_ID], "post": _op(
        f"{action}Journey", text, {"200": _answer("The journey, and `warnings`.", WARNED_JOURNEY), "404": NOT_FOUND,
                                   "409": CONFLICT})}


RECIPE = {"type": "object", "properties": {
    "name": {"type": "string", "description": "What to install it by, e.g. abandoned_cart."},
    "journey_name": {"type": "string"}, "description": {"type": "string"},
    "options": {"type": "object", "description": "Each option with its `default`, or `required: true`.",
                "additionalProperties": {"type": "object"}}}}
TEMPLATE_USED = {"type": "object", "properties": {
    "channel": {"type": "string"}, "template": {"type": "string"},
    "path": {"type": "string", "description": "Where the template ships, e.g. templates/email/abandoned_cart/"}}}
INSTALLED = {"type": "object", "properties": JOURNEY["properties"] | WARNINGS | {
    "templates": {"type": "array", "items": TEMPLATE_USED}}}
RECIPE_PATHS: dict[str, Any] = {
    "/api/v1/recipes": {"get": _op(
        "listRecipes", "The trigger library: ready journeys to install", {"200": _answer("Every recipe.", {
            "type": "object", "properties": {"recipes": {"type": "array", "items": RECIPE}}})})},
    "/api/v1/recipes/{name}/install": {
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "post": _op(
            "installRecipe", "Install a recipe as a journey (published at once with publish: true); its templates "
            "ship with Rapport",
            {"201": _answer("The journey, the templates it sends, and `warnings`.", INSTALLED),
             "400": _answer("The body is not a JSON object.", ERRORS),
             "404": _answer("No such recipe.", ERRORS), "409": EXISTS,
             "422": _answer("Bad options; `errors` names each (options.<name>).", ERRORS)},
            requestBody={"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {
                    "publish": {"type": "boolean"},
                    "copy": {"type": "boolean", "description": "Install a second copy if it is installed already."},
                    "options": {"type": "object", "description": "The recipe's options (see the listing)."}}}}}})},
}


JOURNEY_PATHS: dict[str, Any] = {
    "/api/v1/journeys": {
        "get": _op("listJourneys", "List journeys", {"200": _answer("All journeys of the workspace.", {
            "type": "object", "properties": {"journeys": {"type": "array", "items": JOURNEY}}})}),
        "post": _op("createJourney", "Create a journey (a draft; published at once with publish: true)",
                    {"201": _answer("Created, with `warnings`.", WARNED_JOURNEY), "422": INVALID},
                    requestBody=JSON_BODY),
    },
    "/api/v1/journeys/validate": {"post": _op(
        "validateJourney", "Validate a definition without saving it",
        {"200": _answer("`valid`, and the errors with their paths.", {"type": "object", "properties": {
            "valid": {"type": "boolean"}, "errors": ERRORS["properties"]["errors"]}})}, requestBody=JSON_BODY)},
    "/api/v1/journeys/import": {"post": _op(
        "importJourney", "Import a YAML file (`name`, `uuid`, `definition`): updates the journey it was exported "
        "from (a new draft; ?publish=true publishes it as a new version), or creates one (no uuid, a uuid unknown "
        "here, or ?copy=true)",
        {"200": _answer("Updated; `created` is false.", IMPORTED), "201": _answer("Created.", IMPORTED),
         "409": EXISTS, "422": INVALID},
        parameters=[{"name": "publish", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "copy", "in": "query", "schema": {"type": "boolean"}}],
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
        {"201": _answer("The new version, and `warnings`.", {"type": "object", "properties": VERSION["properties"]
                                                             | WARNINGS}),
         "404": NOT_FOUND,
         "409": _answer("The journey's status does not allow it (archived), or (`stale_draft`) the draft changed "
                        "since `base_revision`: `current_revision` says where it is.", {
                            "type": "object", "properties": ERRORS["properties"] | {
                                "current_revision": {"type": "integer"}}}),
         "422": _answer("The draft has problems: `errors` lists each by path, with `step_id` where the field "
                        "belongs to a step; or `base_revision` is not a whole number.", ERRORS)},
        requestBody={"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {
            "base_revision": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "description": (
                "The draft revision the publisher reviewed: a draft changed since is refused (409).")}}}}}})},
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
JOURNEY_PATHS |= RECIPE_PATHS

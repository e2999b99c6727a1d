"""OpenAPI paths of the templates API (webapp/api/templates.py)."""

from __future__ import annotations

from typing import Any

from engine.channels import CHANNELS
from engine.delivery.template_parts import MAX_BUTTONS, MAX_PART
from engine.delivery.templates import NAME_LENGTH, NAME_PATTERN

TEMPLATE_ADDRESS = [
    {"name": "channel", "in": "path", "required": True, "schema": {"enum": list(CHANNELS)}},
    {"name": "name", "in": "path", "required": True,
     "schema": {"type": "string", "pattern": NAME_PATTERN, "maxLength": NAME_LENGTH},
     "description": "As a send step names it, e.g. abandoned_cart."},
]
TIME = {"type": "string", "format": "date-time"}
LINE_ERRORS: dict[str, Any] = {"type": "object", "required": ["error", "message"], "properties": {
    "error": {"type": "string"}, "message": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"], "properties": {
        "field": {"type": "string", "description": "The part: subject, body_mjml, body_text, buttons.0.url, "
                                                   "provider_template.parameters.1, or a request field."},
        "message": {"type": "string"},
        "line": {"type": ["integer", "null"], "description": "The line of that part the error is on (Jinja syntax, "
                                                             "MJML, a variable the render was not given)."}}}}}}
BUTTON = {"type": "object", "required": ["text", "url"], "properties": {
    "text": {"type": "string"}, "url": {"type": "string"}}}
PARTS: dict[str, Any] = {
    "description": "Jinja source (sandboxed, strict: a variable the message is not given is an error). Email: "
                   "`subject`, `body_mjml`, `body_text`. SMS: `body_text`. Telegram and Viber: `body_text` and up "
                   f"to {MAX_BUTTONS} link `buttons`. WhatsApp: `body_text` and optionally `provider_template`, the "
                   "approved template sent outside the 24 hours after the contact last wrote (then `body_text` may "
                   f"be empty). Each part holds at most {MAX_PART} characters.",
    "type": "object", "properties": {
        "subject": {"type": "string"}, "body_mjml": {"type": "string"}, "body_text": {"type": "string"},
        "buttons": {"type": "array", "items": BUTTON, "maxItems": MAX_BUTTONS},
        "provider_template": {"type": ["object", "null"], "required": ["name"], "properties": {
            "name": {"type": "string"}, "language": {"type": "string", "default": "en"},
            "parameters": {"type": "array", "items": {"type": "string"}}}}}}
SUMMARY: dict[str, Any] = {"type": "object", "properties": {
    "channel": {"enum": list(CHANNELS)}, "name": {"type": "string"},
    "source": {"enum": ["workspace", "seed", "none"], "description": (
        "What messages render from: workspace, a version of its own; seed, the folder shipped in templates/; "
        "none, nothing yet (a draft not published).")},
    "published_version": {"type": ["integer", "null"]}, "has_draft": {"type": "boolean"},
    "draft_revision": {"type": "integer", "description": "Send it back with the next draft save."},
    "updated_at": {"type": ["string", "null"], "format": "date-time"}}}
VERSION: dict[str, Any] = {"type": "object", "properties": {
    "version": {"type": "integer"},
    "digest": {"type": "string", "description": "What messages rendered from this version name as template_version."},
    "parts": PARTS, "created_by": {"type": "string"}, "created_at": TIME}}
DETAIL = {"type": "object", "properties": SUMMARY["properties"] | {
    "draft": PARTS | {"description": "What the editor opens: the saved draft, else the live version, else the seed."},
    "seed": PARTS | {"type": ["object", "null"], "description": "The folder shipped in templates/, if any."},
    "versions": {"type": "array", "items": VERSION, "description": "Newest first."}}}
PREVIEW = {"type": "object", "properties": {
    "channel": {"type": "string"}, "contact": {"type": "string"},
    "version": {"type": "string", "description": "The digest these parts have (and would be published under)."},
    "subject": {"type": ["string", "null"]}, "html": {"type": ["string", "null"]}, "text": {"type": "string"},
    "buttons": {"type": "array", "items": BUTTON}, "provider_template": {"type": ["object", "null"]},
    "sms": {"type": ["object", "null"], "description": "What the SMS costs: segments, encoding, characters."}}}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


INVALID = _answer("The template (or the request) has errors; each names its field and, for Jinja and MJML, its line.",
                  LINE_ERRORS)
NOT_FOUND = _answer("No such template (nor seed) in this workspace, or no such version.", LINE_ERRORS)


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"operationId": op_id, "tags": ["templates"], "summary": summary,
            "responses": responses | {"401": _answer("Bad or missing API key.", LINE_ERRORS)}, **extra}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


TEMPLATE_PATHS: dict[str, Any] = {
    "/api/v1/templates": {"get": _op("listTemplates", "Every template the workspace can send: its own and the seeds",
                                     {"200": _answer("By channel and name.", {"type": "object", "properties": {
                                         "templates": {"type": "array", "items": SUMMARY}}})})},
    "/api/v1/templates/{channel}/{name}": {"parameters": TEMPLATE_ADDRESS, "get": _op(
        "getTemplate", "A template with its draft, its seed and its versions",
        {"200": _answer("The template.", DETAIL), "404": NOT_FOUND, "422": INVALID})},
    "/api/v1/templates/{channel}/{name}/draft": {"parameters": TEMPLATE_ADDRESS, "put": _op(
        "saveTemplateDraft", "Save the draft (checked first: a stored draft always compiles)",
        {"200": _answer("Saved.", {"type": "object", "properties": {
            "channel": {"type": "string"}, "name": {"type": "string"}, "draft": PARTS,
            "draft_revision": {"type": "integer"}}}),
         "409": _answer("`revision` is not the stored draft_revision: someone saved since (`revision` in the answer "
                        "is the current one).", LINE_ERRORS), "422": INVALID},
        requestBody=_body(PARTS | {"properties": PARTS["properties"] | {"revision": {
            "type": "integer", "description": "The draft_revision the editor read; omit to save regardless."}}}))},
    "/api/v1/templates/{channel}/{name}/publish": {"parameters": TEMPLATE_ADDRESS, "post": _op(
        "publishTemplate", "Publish the draft as a new version, or make an earlier version live again",
        {"201": _answer("A new version, now live.", VERSION | {"properties": VERSION["properties"] | {
            "created": {"type": "boolean"}}}),
         "200": _answer("An existing version (the same text, or the one named) is live again.", VERSION),
         "404": NOT_FOUND, "422": INVALID},
        requestBody=_body({"type": "object", "properties": {"version": {
            "type": "integer", "minimum": 1, "description": "Publish this existing version instead of the draft."}}},
            required=False))},
    "/api/v1/templates/{channel}/{name}/preview": {"parameters": TEMPLATE_ADDRESS, "post": _op(
        "previewTemplate", "Render a draft for a contact and a sample event, as a send would (tracking taken out, "
        "links that change nothing)",
        {"200": _answer("The rendered message.", PREVIEW), "404": NOT_FOUND, "422": INVALID},
        requestBody=_body({"type": "object", "properties": {
            "contact": {"type": "string", "description": "A contact's external_id; a sample person if absent."},
            "event": {"type": "object", "description": "The sample event's properties (`event.*` in templates)."},
            "event_type": {"type": "string"}, "draft": PARTS | {"description": "Unsaved parts to render instead "
                                                                               "of the stored draft."}}},
            required=False))},
}

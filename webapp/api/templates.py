"""Templates API under /api/v1/templates: a workspace's message templates, their drafts and versions.

A template is addressed by channel and name (`/api/v1/templates/email/abandoned_cart`), as a
send step names it. The list holds every template the workspace can send: its own, and the
seeds shipped in templates/ it has not replaced. `PUT .../draft` saves a draft (checked:
Jinja and MJML errors come back as 422 with each error's field and line), `POST .../publish`
makes it the version messages render from, `POST .../preview` renders a draft (saved, or
sent in the request) for a contact and a sample event as a send would, tracking taken out.
The rules are engine/delivery/template_versions.py's and template_previews.py's.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from engine.delivery import template_previews, template_versions
from engine.delivery.template_parts import parts_from_row, parts_json
from engine.delivery.template_previews import Preview
from engine.delivery.template_versions import TemplateSummary
from engine.errors import FieldErrors, InvalidTemplate, StaleTemplateDraft, TemplateError
from engine.store.models import MessageTemplateVersion
from webapp import context
from webapp.api.auth import authenticate
from webapp.api.errors import BadJson, error, register_api_errors
from webapp.api.json_body import json_body

bp = Blueprint("templates_api", __name__, url_prefix="/api/v1/templates")
register_api_errors(bp)
API_AUTHOR = "API key"  # who saved or published, as versions record it: the API names no person


@bp.errorhandler(InvalidTemplate)
def _invalid(exc: InvalidTemplate) -> Any:
    return error(422, "invalid_template", "the template has errors", errors=exc.errors)


@bp.errorhandler(TemplateError)
def _unrenderable(exc: TemplateError) -> Any:
    return error(422, "invalid_template", str(exc), errors=[{"field": "template", "message": str(exc), "line": None}])


@bp.errorhandler(FieldErrors)
def _bad_request(exc: FieldErrors) -> Any:
    return error(422, "invalid_request", "the request has invalid fields", errors=exc.errors)


@bp.errorhandler(StaleTemplateDraft)
def _stale(exc: StaleTemplateDraft) -> Any:
    return error(409, "stale_draft", str(exc), revision=exc.revision)


def summary_json(summary: TemplateSummary) -> dict[str, Any]:
    return {"channel": summary.channel, "name": summary.name, "source": summary.source,
            "published_version": summary.published_version, "has_draft": summary.has_draft,
            "draft_revision": summary.draft_revision,
            "updated_at": summary.updated_at.isoformat() if summary.updated_at else None}


def version_json(version: MessageTemplateVersion) -> dict[str, Any]:
    parts = parts_from_row(version)
    return {"version": version.version, "digest": version.digest, "parts": parts_json(parts),
            "created_by": version.created_by, "created_at": version.created_at.isoformat()}


def preview_json(preview: Preview) -> dict[str, Any]:
    return {"channel": preview.channel, "version": preview.version, "contact": preview.contact,
            "subject": preview.subject, "html": preview.html, "text": preview.text,
            "buttons": [{"text": b.text, "url": b.url} for b in preview.buttons],
            "provider_template": preview.provider_template,
            "sms": None if preview.sms is None else {"segments": preview.sms.segments, "encoding": preview.sms.encoding,
                                                     "characters": preview.sms.characters}}


def _object(*, optional: bool = False) -> dict[str, Any]:
    """The JSON object sent; `optional`: an empty body is {}."""
    data = json_body() if not optional or request.get_data(cache=True) else {}
    if not isinstance(data, dict):
        raise BadJson("expected a JSON object")
    return data


@bp.get("")
def list_templates() -> Any:
    caller = authenticate()
    with context.sessions()() as session:
        found = template_versions.list_templates(session, caller.workspace_id,
                                                 compiler=context.stored_templates().compiler)
        return jsonify(templates=[summary_json(t) for t in found])


@bp.get("/<channel>/<name>")
def show(channel: str, name: str) -> Any:
    caller = authenticate()
    with context.sessions()() as session:
        detail = template_versions.get_template(session, caller.workspace_id, channel, name,
                                                compiler=context.stored_templates().compiler)
        return jsonify(summary_json(detail.summary) | {
            "draft": None if detail.draft is None else parts_json(detail.draft),
            "seed": None if detail.seed is None else parts_json(detail.seed),
            "versions": [version_json(v) for v in detail.versions]})


@bp.put("/<channel>/<name>/draft")
def save_draft(channel: str, name: str) -> Any:
    """The body is the draft's parts, plus `revision`: the draft_revision the editor read (optional; a
    stale one is refused with 409 instead of overwriting another's save)."""
    caller = authenticate()
    body = _object()
    revision = body.pop("revision", None)
    if revision is not None and (not isinstance(revision, int) or isinstance(revision, bool) or revision < 0):
        raise FieldErrors([{"field": "revision", "message": "expected the draft_revision you read (a whole number)"}])
    with context.sessions().begin() as session:
        template = template_versions.save_draft(session, caller.workspace_id, channel, name, body,
                                                compiler=context.stored_templates().compiler, by=API_AUTHOR,
                                                now=context.now(), revision=revision)
        return jsonify(channel=channel, name=name, draft=template.draft, draft_revision=template.draft_revision)


@bp.post("/<channel>/<name>/publish")
def publish(channel: str, name: str) -> Any:
    """Publish the draft as a new version (201), or, with {"version": n}, make version n live again (200)."""
    caller = authenticate()
    body = _object(optional=True)
    version = body.get("version")
    unknown = sorted(set(body) - {"version"})
    errors = [{"field": key, "message": "not a field of a publish request"} for key in unknown]
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        errors.append({"field": "version", "message": "expected a version number (1, 2, ...)"})
    if errors:
        raise FieldErrors(errors)
    with context.sessions().begin() as session:
        published = template_versions.publish(session, caller.workspace_id, channel, name,
                                              compiler=context.stored_templates().compiler, by=API_AUTHOR,
                                              now=context.now(), version=version)
        answer = version_json(published.version) | {"created": published.created}
    context.stored_templates().forget(caller.workspace_id)  # committed: this process renders it from now on
    return jsonify(answer), 201 if published.created else 200


@bp.post("/<channel>/<name>/preview")
def preview(channel: str, name: str) -> Any:
    caller = authenticate()
    body = _object(optional=True)
    settings = context.settings()
    with context.sessions()() as session:
        shown = template_previews.preview_template(
            session, caller.workspace_id, channel, name, body, compiler=context.stored_templates().compiler,
            base_url=settings.base_url, mail_from=settings.mail_from, now=context.now())
    return jsonify(preview_json(shown))

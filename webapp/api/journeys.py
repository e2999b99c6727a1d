"""Journeys API under /api/v1/journeys: the marketer UI is built on exactly this.

Drafts are edited freely; publishing freezes the draft into a new immutable version
that new enrollments use, while running contacts finish on the version they entered.
Answers that make a journey live carry `warnings` (another live journey is entered by
the same event). The trigger library's recipes are listed and installed under
/api/v1/recipes (`recipes_bp`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from engine.errors import DefinitionError, JourneyConflict, StaleDraft
from engine.journeys import drafts, lifecycle
from engine.journeys import files as journey_files
from engine.journeys import versions as journeys
from engine.journeys.stats import journey_stats
from engine.store.models import Journey, JourneyVersion
from triggers import install
from triggers.library import RECIPES
from webapp import context
from webapp.api import journey_drafts
from webapp.api.auth import authenticate
from webapp.api.errors import BadJson, error, register_api_errors
from webapp.api.json_body import json_body

bp = Blueprint("journeys_api", __name__, url_prefix="/api/v1/journeys")
recipes_bp = Blueprint("recipes_api", __name__, url_prefix="/api/v1/recipes")


def _invalid(exc: DefinitionError) -> Any:
    return error(422, "invalid_journey", "the journey definition has invalid fields", errors=exc.errors)


def _conflict(exc: journeys.JourneyStateError) -> Any:
    return error(409, "journey_state", str(exc))


def _exists(exc: JourneyConflict) -> Any:
    return error(409, "journey_exists", str(exc), journey_id=exc.journey_id)


for _bp in (bp, recipes_bp):
    register_api_errors(_bp)
    _bp.register_error_handler(DefinitionError, _invalid)
    _bp.register_error_handler(journeys.JourneyStateError, _conflict)
    _bp.register_error_handler(JourneyConflict, _exists)
    _bp.register_error_handler(StaleDraft, journey_drafts.stale)


def journey_json(journey: Journey) -> dict[str, Any]:
    return {
        "id": journey.id, "uuid": journey.uuid, "recipe": journey.recipe, "name": journey.name,
        "status": journey.status, "draft": journey.draft, "draft_revision": journey.draft_revision,
        "live_version_id": journey.live_version_id, "created_at": journey.created_at.isoformat(),
        "updated_at": journey.updated_at.isoformat(),
    }


def version_json(version: JourneyVersion) -> dict[str, Any]:
    return {"id": version.id, "version": version.version, "definition": version.definition,
            "draft_revision": version.draft_revision, "created_at": version.created_at.isoformat()}


def _body() -> dict[str, Any]:
    data = json_body()
    if not isinstance(data, dict):
        raise BadJson("expected a JSON object")
    return data


@bp.get("")
def list_journeys() -> Any:
    caller = authenticate()
    with context.sessions()() as session:
        return jsonify(journeys=[journey_json(j) for j in journeys.list_journeys(session, caller.workspace_id)])


@bp.post("")
def create() -> Any:
    caller = authenticate()
    body = _body()
    if not isinstance(body.get("name"), str):
        raise DefinitionError([{"field": "name", "message": "a journey needs a name"}])
    with context.sessions().begin() as session:
        journey = journeys.create_journey(session, caller.workspace_id, body["name"], body.get("definition"),
                                          templates=context.templates(), now=context.now(),
                                          publish=bool(body.get("publish", False)))
        return jsonify(journey_json(journey) | {"warnings": journeys.trigger_overlaps(session, journey)}), 201


@bp.post("/validate")
def validate() -> Any:
    caller = authenticate()
    try:
        journeys.validate_definition(_body().get("definition"), templates=context.templates(),
                                     workspace_id=caller.workspace_id)
    except DefinitionError as exc:
        return jsonify(valid=False, errors=exc.errors)
    return jsonify(valid=True, errors=[])


@bp.get("/<int:journey_id>")
def show(journey_id: int) -> Any:
    caller = authenticate()
    with context.sessions()() as session:
        return jsonify(journey_json(journeys.get_journey(session, caller.workspace_id, journey_id)))


@bp.put("/<int:journey_id>")
def edit(journey_id: int) -> Any:
    caller = authenticate()
    body = _body()
    with context.sessions().begin() as session:
        journey = journeys.update_draft(session, caller.workspace_id, journey_id, templates=context.templates(),
                                        now=context.now(), definition=body.get("definition"), name=body.get("name"))
        return jsonify(journey_json(journey))


@bp.post("/<int:journey_id>/publish")
def publish(journey_id: int) -> Any:
    """Publish the draft; a draft with problems answers 422 listing each (with its step). An optional
    {"base_revision": n} refuses (409) a draft changed since the publisher reviewed it."""
    caller = authenticate()
    body = _body() if request.get_data() else {}
    base = journey_drafts.base_revision(body) if "base_revision" in body else None
    with context.sessions().begin() as session:
        version = drafts.publish_draft(session, caller.workspace_id, journey_id, templates=context.templates(),
                                       now=context.now(), base_revision=base)
        journey = journeys.get_journey(session, caller.workspace_id, journey_id)
        return jsonify(version_json(version) | {"warnings": journeys.trigger_overlaps(session, journey)}), 201


@bp.post("/<int:journey_id>/pause", defaults={"action": "pause"})
@bp.post("/<int:journey_id>/resume", defaults={"action": "resume"})
@bp.post("/<int:journey_id>/archive", defaults={"action": "archive"})
def change_status(journey_id: int, action: str) -> Any:
    caller = authenticate()
    with context.sessions().begin() as session:
        journey = lifecycle.change_status(session, caller.workspace_id, journey_id, action, now=context.now())
        return jsonify(journey_json(journey) | {"warnings": journeys.trigger_overlaps(session, journey)})


@bp.get("/<int:journey_id>/versions")
def list_versions(journey_id: int) -> Any:
    caller = authenticate()
    with context.sessions()() as session:
        return jsonify(versions=[version_json(v) for v in journeys.versions(session, caller.workspace_id, journey_id)])


@bp.get("/<int:journey_id>/stats")
def stats(journey_id: int) -> Any:
    caller = authenticate()
    with context.sessions()() as session:
        return jsonify(journey_stats(session, caller.workspace_id, journey_id))


@bp.get("/<int:journey_id>/export")
def export(journey_id: int) -> Any:
    """The journey's draft as a YAML file (journeys as code)."""
    caller = authenticate()
    with context.sessions()() as session:
        journey = journeys.get_journey(session, caller.workspace_id, journey_id)
        text = journey_files.dump(journey.name, journey.draft or {}, journey.uuid)
    filename = f"journey-{journey_id}.yaml"
    return Response(text, mimetype="application/yaml",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.post("/import")
def import_() -> Any:
    """Update the journey a YAML file was exported from (200), or create one (201): a file without
    a uuid, a uuid unknown here, or ?copy=true. ?publish=true publishes it as a new version."""
    caller = authenticate()
    loaded = journey_files.load(request.get_data(as_text=True), templates=context.templates(),
                                workspace_id=caller.workspace_id)
    with context.sessions().begin() as session:
        saved = journeys.import_journey(session, caller.workspace_id, loaded.name, loaded.definition,
                                        templates=context.templates(), uuid=loaded.uuid, now=context.now(),
                                        publish=_flag("publish"), copy=_flag("copy"))
        return jsonify(journey_json(saved.journey) | {"created": saved.created, "warnings": saved.warnings}), (
            201 if saved.created else 200)


def _flag(name: str) -> bool:
    value = request.args.get(name, "false")
    if value not in ("true", "false"):
        raise DefinitionError([{"field": name, "message": "expected true or false"}])
    return value == "true"


@recipes_bp.get("")
def list_recipes() -> Any:
    """The trigger library: name (to install by), the journey's name, a line, and the options."""
    authenticate()
    return jsonify(recipes=[install.recipe_summary(slug, recipe) for slug, recipe in RECIPES.items()])


@recipes_bp.post("/<name>/install")
def install_recipe(name: str) -> Any:
    """Install a recipe as a journey: {"publish": bool, "copy": bool, "options": {...}}, all optional.
    Installed already: 409 naming the journey, unless copy asks for a second one."""
    caller = authenticate()
    body = _body() if request.get_data() else {}
    errors = [{"field": key, "message": "expected true or false"} for key in ("publish", "copy")
              if not isinstance(body.get(key, False), bool)]
    if not isinstance(body.get("options", {}), dict):
        errors.append({"field": "options", "message": "expected an object of the recipe's options"})
    if errors:
        raise DefinitionError(errors)
    with context.sessions().begin() as session:
        saved = install.install_recipe(session, caller.workspace_id, name, options=body.get("options"),
                                       templates=context.templates(), now=context.now(),
                                       publish=body.get("publish", False), copy=body.get("copy", False))
        journey = saved.journey
        used = install.templates_used(journey.draft or {}, templates=context.templates(),
                                      workspace_id=caller.workspace_id)
        return jsonify(journey_json(journey) | {"templates": used, "warnings": saved.warnings}), 201

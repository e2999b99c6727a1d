"""Installing a recipe of the trigger library into a workspace, for the CLI and the journeys API.

A recipe becomes an ordinary journey named after it, remembering the recipe it came
from so that a second install is answered with the journey already there (a copy only
when asked for). The templates a recipe sends ship with Rapport in templates/ and are
shared by every workspace: installing checks that each exists (as any journey save does)
and reports which ones the journey uses, so the user knows what to edit.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.channels import CHANNELS
from engine.delivery.templates import Templates
from engine.errors import DefinitionError, JourneyConflict, NotFound
from engine.journeys.definition import SendStep, parse_definition
from engine.journeys.versions import Saved, create_journey, trigger_overlaps
from engine.store.models import Journey, JourneyStatus
from triggers.library import RECIPES, Recipe

REQUIRED = object()  # an option without a default


def recipe_options(recipe: Recipe) -> dict[str, Any]:
    """The options a recipe takes, with their defaults; REQUIRED marks those without one."""
    return {name: REQUIRED if p.default is inspect.Parameter.empty else p.default
            for name, p in inspect.signature(recipe.build).parameters.items()}


def recipe_summary(slug: str, recipe: Recipe) -> dict[str, Any]:
    """What a listing shows: the slug to install by, the journey's name, a line, and the options."""
    options = {name: {"required": True} if default is REQUIRED else {"default": _plain(default)}
               for name, default in recipe_options(recipe).items()}
    return {"name": slug, "journey_name": recipe.name, "description": recipe.description, "options": options}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def build_definition(slug: str, options: dict[str, Any]) -> dict[str, Any]:
    """The recipe's journey definition for these options; bad options are field errors."""
    recipe = get(slug)
    known = recipe_options(recipe)
    errors = [{"field": f"options.{name}", "message": f"unknown option; {slug} takes {', '.join(known) or 'none'}"}
              for name in options if name not in known]
    errors += [{"field": f"options.{name}", "message": "required"}
               for name, default in known.items() if default is REQUIRED and name not in options]
    if errors:
        raise DefinitionError(errors)
    try:
        return recipe.build(**options)
    except Exception as exc:  # noqa: BLE001 - a recipe is a pure function: whatever it raises, the options were bad
        raise DefinitionError([{"field": "options", "message": f"{type(exc).__name__}: {exc}"
                                if not isinstance(exc, ValueError) else str(exc)}]) from None


def get(slug: str) -> Recipe:
    recipe = RECIPES.get(slug)
    if recipe is None:
        raise NotFound(f"no recipe {slug!r}; known: {', '.join(sorted(RECIPES))}")
    return recipe


def installed(session: Session, workspace_id: str, slug: str) -> Journey | None:
    """The journey this recipe was installed as, if one is not archived."""
    return session.scalar(select(Journey).where(Journey.workspace_id == workspace_id, Journey.recipe == slug,
                                                Journey.status != JourneyStatus.ARCHIVED.value)
                          .order_by(Journey.id).limit(1))


def install_recipe(session: Session, workspace_id: str, slug: str, *, templates: Templates, now: datetime,
                   options: dict[str, Any] | None = None, publish: bool = False, copy: bool = False) -> Saved:
    """Create the recipe's journey (published on request). Installed already: JourneyConflict naming
    that journey, unless `copy` asks for a second one."""
    recipe = get(slug)
    definition = build_definition(slug, options or {})
    existing = installed(session, workspace_id, slug)
    if existing is not None and not copy:
        raise JourneyConflict(
            f"recipe {slug} is already installed as journey {existing.id} ({existing.name!r}, {existing.status}); "
            "install a copy to have a second one", journey_id=existing.id)
    name = recipe.name if existing is None else f"{recipe.name} (copy)"
    journey = create_journey(session, workspace_id, name, definition, templates=templates, now=now, publish=publish,
                             recipe=slug)
    return Saved(journey, True, trigger_overlaps(session, journey))


def templates_used(definition: dict[str, Any], *, templates: Templates, workspace_id: str) -> list[dict[str, str]]:
    """Each template the journey sends and the channel it is for, as shipped in templates/."""
    used: list[dict[str, str]] = []
    for step in parse_definition(definition).all_steps():
        if not isinstance(step, SendStep):
            continue
        channels = step.channels or [c for c in CHANNELS if templates.exists(workspace_id, c, step.template)]
        for channel in channels:
            entry = {"channel": channel, "template": step.template,
                     "path": f"templates/{channel}/{step.template}/"}
            if entry not in used:
                used.append(entry)
    return used

"""Journeys: drafts, immutable published versions, and the live set used by evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.errors import DefinitionError, NotFound
from engine.journeys import JourneyDefinition, SendStep, parse_definition
from engine.models import Journey, JourneyVersion
from templates.rendering import template_exists


@dataclass(frozen=True)
class LiveVersion:
    journey_id: int
    version_id: int
    name: str
    definition: JourneyDefinition


def validate_definition(data: Any) -> JourneyDefinition:
    definition = parse_definition(data)
    missing = [
        {"field": f"steps[id={step.id}].template", "message": f"no template named {step.template!r}"}
        for step in definition.all_steps()
        if isinstance(step, SendStep) and not template_exists(step.template)
    ]
    if missing:
        raise DefinitionError(missing)
    return definition


def create_journey(
    session: Session, workspace_id: str, name: str, definition: Any, *, now: datetime, publish: bool = True
) -> Journey:
    validate_definition(definition)
    journey = Journey(
        workspace_id=workspace_id, name=name, status="draft", draft=definition, created_at=now, updated_at=now
    )
    session.add(journey)
    session.flush()
    if publish:
        publish_journey(session, workspace_id, journey.id, now=now)
    return journey


def publish_journey(session: Session, workspace_id: str, journey_id: int, *, now: datetime) -> JourneyVersion:
    journey = session.scalar(
        select(Journey).where(Journey.workspace_id == workspace_id, Journey.id == journey_id).with_for_update()
    )
    if journey is None or journey.draft is None:
        raise NotFound(f"journey {journey_id} has no draft to publish")
    definition = validate_definition(journey.draft)
    number = (
        session.scalar(select(func.max(JourneyVersion.version)).where(JourneyVersion.journey_id == journey.id))
        or 0
    ) + 1
    version = JourneyVersion(
        workspace_id=workspace_id,
        journey_id=journey.id,
        version=number,
        trigger_event=definition.trigger.event,
        definition=definition.model_dump(mode="json"),
        created_at=now,
    )
    session.add(version)
    session.flush()
    journey.live_version_id = version.id
    journey.status = "live"
    journey.updated_at = now
    return version


def live_versions(session: Session, workspace_ids: set[str]) -> dict[str, list[LiveVersion]]:
    """Every live journey version of these workspaces, in one query."""
    rows = session.execute(
        select(Journey.workspace_id, Journey.id, Journey.name, JourneyVersion.id, JourneyVersion.definition)
        .join(JourneyVersion, JourneyVersion.id == Journey.live_version_id)
        .where(Journey.workspace_id.in_(workspace_ids), Journey.status == "live")
    )
    result: dict[str, list[LiveVersion]] = {}
    for workspace_id, journey_id, name, version_id, data in rows:
        result.setdefault(workspace_id, []).append(
            LiveVersion(journey_id, version_id, name, _parse_cached(version_id, data))
        )
    return result


_DEFINITIONS: dict[int, JourneyDefinition] = {}


def _parse_cached(version_id: int, data: Any) -> JourneyDefinition:
    """Versions never change, so each is parsed once per process."""
    definition = _DEFINITIONS.get(version_id)
    if definition is None:
        definition = _DEFINITIONS[version_id] = parse_definition(data)
    return definition


def version_definition(session: Session, version_id: int) -> JourneyDefinition:
    definition = _DEFINITIONS.get(version_id)
    if definition is None:
        data = session.scalar(select(JourneyVersion.definition).where(JourneyVersion.id == version_id))
        if data is None:
            raise NotFound(f"journey version {version_id}")
        definition = _parse_cached(version_id, data)
    return definition

"""Journeys: drafts, immutable published versions, and the live set used by evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.delivery.templates import Templates
from engine.errors import DefinitionError, JourneyConflict, NotFound
from engine.journeys.definition import JourneyDefinition, SendStep, parse_definition
from engine.journeys.revisions import record_edit
from engine.store.models import Journey, JourneyStatus, JourneyVersion


class JourneyStateError(ValueError):
    """The journey's status does not allow that (e.g. resuming an archived journey)."""


@dataclass(frozen=True)
class LiveVersion:
    journey_id: int
    version_id: int
    name: str
    definition: JourneyDefinition


def validate_definition(data: Any, *, templates: Templates, workspace_id: str) -> JourneyDefinition:
    """The definition, parsed; every send step must name a template that each of its channels has
    in this workspace."""
    definition = parse_definition(data)
    missing = [
        {"field": f"steps[id={step.id}].template",
         "message": f"no template named {step.template!r}" if channel == "email"
         else f"no {channel} template named {step.template!r} (templates/{channel}/{step.template}/)"}
        for step in definition.all_steps() if isinstance(step, SendStep)
        for channel in step.channels
        if not templates.exists(workspace_id, channel, step.template)
    ]
    if missing:
        raise DefinitionError(missing)
    return definition


def create_journey(
    session: Session, workspace_id: str, name: str, definition: Any, *, templates: Templates, now: datetime,
    publish: bool = True, uuid: str | None = None, recipe: str | None = None,
) -> Journey:
    """A new journey; `uuid` keeps the one an imported file carries, `recipe` names where it came from."""
    name = name.strip()
    if not name:
        raise DefinitionError([{"field": "name", "message": "a journey needs a name"}])
    validate_definition(definition, templates=templates, workspace_id=workspace_id)
    journey = Journey(
        workspace_id=workspace_id, name=name, status=JourneyStatus.DRAFT.value, draft=None, draft_revision=0,
        created_at=now, updated_at=now, recipe=recipe,
    )
    if uuid is not None:
        journey.uuid = uuid
    session.add(journey)
    session.flush()
    record_edit(session, journey, definition, base_revision=0, now=now)  # the draft's first revision
    if publish:
        publish_journey(session, workspace_id, journey.id, templates=templates, now=now)
    return journey


def publish_journey(session: Session, workspace_id: str, journey_id: int, *, templates: Templates,
                    now: datetime) -> JourneyVersion:
    journey = session.scalar(
        select(Journey).where(Journey.workspace_id == workspace_id, Journey.id == journey_id).with_for_update()
    )
    if journey is None or journey.draft is None:
        raise NotFound(f"journey {journey_id} has no draft to publish")
    if journey.status == JourneyStatus.ARCHIVED:
        raise JourneyStateError("an archived journey cannot be published")
    definition = validate_definition(journey.draft, templates=templates, workspace_id=workspace_id)
    number = (
        session.scalar(select(func.max(JourneyVersion.version)).where(JourneyVersion.journey_id == journey.id))
        or 0
    ) + 1
    version = JourneyVersion(
        workspace_id=workspace_id,
        journey_id=journey.id,
        version=number,
        trigger_event=definition.entry_event,
        definition=definition_json(definition),
        draft_revision=journey.draft_revision,
        created_at=now,
    )
    session.add(version)
    session.flush()
    journey.live_version_id = version.id
    if journey.status == JourneyStatus.DRAFT:
        journey.status = JourneyStatus.LIVE.value  # a paused journey stays paused with its new version
    journey.updated_at = now
    return version


@dataclass(frozen=True)
class Saved:
    """What an import or an install did: the journey, whether it is new, and what to warn about."""

    journey: Journey
    created: bool
    warnings: list[str]


def import_journey(session: Session, workspace_id: str, name: str, definition: Any, *, templates: Templates,
                   now: datetime, uuid: str | None = None, publish: bool = False, copy: bool = False) -> Saved:
    """Update the journey a file came from (found by its uuid in this workspace) with a new draft,
    published as a new version on request; create one if there is none, or if `copy` is asked."""
    existing = None if copy or uuid is None else session.scalar(
        select(Journey).where(Journey.workspace_id == workspace_id, Journey.uuid == uuid).with_for_update())
    if existing is None:
        journey = create_journey(session, workspace_id, name, definition, templates=templates, now=now,
                                 publish=publish, uuid=None if copy else uuid)
        return Saved(journey, True, trigger_overlaps(session, journey))
    if existing.status == JourneyStatus.ARCHIVED:
        raise JourneyConflict(f"journey {existing.id} ({existing.name!r}), which this file came from, is archived; "
                              "import a copy to make a new journey from it", journey_id=existing.id)
    update_draft(session, workspace_id, existing.id, templates=templates, now=now, definition=definition,
                 name=name.strip() or None)
    warnings = []
    if publish and not _draft_is_live(session, existing):
        publish_journey(session, workspace_id, existing.id, templates=templates, now=now)
    if publish and existing.status == JourneyStatus.PAUSED:
        warnings.append(f"journey {existing.id} is paused: its new version runs once it is resumed")
    return Saved(existing, False, warnings + trigger_overlaps(session, existing))


def _draft_is_live(session: Session, journey: Journey) -> bool:
    """Publishing an unchanged draft again would only add an identical version. (The draft was
    validated when it was saved, just before.)"""
    if journey.live_version_id is None or journey.draft is None:
        return False
    live = session.scalar(select(JourneyVersion.definition).where(JourneyVersion.id == journey.live_version_id))
    return live == definition_json(parse_definition(journey.draft))


def trigger_overlaps(session: Session, journey: Journey) -> list[str]:
    """Warnings for each other live journey of the workspace entered by an event this live journey is
    entered by too: a contact would enter both and get both journeys' messages (two cart reminders)."""
    if journey.status != JourneyStatus.LIVE or journey.live_version_id is None:
        return []
    mine = session.scalar(select(JourneyVersion.trigger_event).where(JourneyVersion.id == journey.live_version_id))
    events = set((mine or "").split(","))
    rows = session.execute(
        select(Journey.id, Journey.name, JourneyVersion.trigger_event)
        .join(JourneyVersion, JourneyVersion.id == Journey.live_version_id)
        .where(Journey.workspace_id == journey.workspace_id, Journey.status == JourneyStatus.LIVE.value,
               Journey.id != journey.id)
        .order_by(Journey.id)
    )
    warnings = []
    for other_id, other_name, other_events in rows:
        shared = events & set(other_events.split(","))
        if shared:
            warnings.append(f"journey {other_id} ({other_name!r}) is also live on {', '.join(sorted(shared))}: "
                            "a contact enters both and gets the messages of each")
    return warnings


def definition_json(definition: JourneyDefinition) -> dict[str, Any]:
    """The canonical JSON form: every field spelled out, aliases as written (e.g. "not")."""
    return definition.model_dump(mode="json", by_alias=True)


def get_journey(session: Session, workspace_id: str, journey_id: int, *, lock: bool = False) -> Journey:
    query = select(Journey).where(Journey.workspace_id == workspace_id, Journey.id == journey_id)
    journey = session.scalar(query.with_for_update() if lock else query)
    if journey is None:
        raise NotFound(f"no journey {journey_id}")
    return journey


def list_journeys(session: Session, workspace_id: str) -> list[Journey]:
    return list(session.scalars(select(Journey).where(Journey.workspace_id == workspace_id).order_by(Journey.id)))


def live_version_summaries(session: Session, workspace_id: str) -> dict[int, tuple[int, str]]:
    """Each journey's published version number and entry events, by journey id (for listings)."""
    rows = session.execute(
        select(Journey.id, JourneyVersion.version, JourneyVersion.trigger_event)
        .join(JourneyVersion, JourneyVersion.id == Journey.live_version_id)
        .where(Journey.workspace_id == workspace_id)
    )
    return {journey_id: (number, events) for journey_id, number, events in rows}


def update_draft(session: Session, workspace_id: str, journey_id: int, *, templates: Templates, now: datetime,
                 definition: Any | None = None, name: str | None = None) -> Journey:
    """Edit the draft (a new revision, unless nothing changed); what runs is unchanged until it is published.
    The definition must be valid here (the API's PUT, YAML import); engine/journeys/drafts.py saves
    drafts that are not, against a base revision."""
    journey = get_journey(session, workspace_id, journey_id, lock=True)
    if journey.status == JourneyStatus.ARCHIVED:
        raise JourneyStateError("an archived journey cannot be edited")
    if definition is not None:
        validate_definition(definition, templates=templates, workspace_id=workspace_id)
        if definition != journey.draft:  # the row is locked: this edit is based on what is there now
            record_edit(session, journey, definition, base_revision=None, now=now)
    if name is not None:
        journey.name = name
    journey.updated_at = now
    return journey


def versions(session: Session, workspace_id: str, journey_id: int) -> list[JourneyVersion]:
    get_journey(session, workspace_id, journey_id)
    return list(session.scalars(select(JourneyVersion).where(JourneyVersion.journey_id == journey_id)
                                .order_by(JourneyVersion.version)))


def live_versions(session: Session, workspace_ids: set[str]) -> dict[str, list[LiveVersion]]:
    """Every live journey version of these workspaces, in one query."""
    rows = session.execute(
        select(Journey.workspace_id, Journey.id, Journey.name, JourneyVersion.id, JourneyVersion.definition)
        .join(JourneyVersion, JourneyVersion.id == Journey.live_version_id)
        .where(Journey.workspace_id.in_(workspace_ids), Journey.status == JourneyStatus.LIVE.value)
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

"""Runs: enroll contacts, end runs whose goal is met, and walk runs through their steps.

Every function here may be called twice for the same input (a job retried, two
workers holding the same ids) and the result is the same as calling it once:
enrollment is unique per (journey version, contact, key), runs are locked while they
move, and a message is unique per (run, step).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, assert_never

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.db import defer, dialect_insert
from engine.interpreter import Completed, Exited, PlannedSend, Waiting, advance
from engine.journeys import JourneyDefinition
from engine.models import (
    LIVE_RUN_STATUSES,
    Contact,
    Event,
    Message,
    MessageStatus,
    Run,
    RunStatus,
    Suppression,
    Workspace,
)
from engine.policies import email_skip_reason
from engine.services.journal import record, record_run
from engine.services.journeys import LiveVersion, live_versions, version_definition


def correlation_key(properties: dict[str, Any], path: str | None) -> str | None:
    """The value at `path` (dotted) in the event's properties, as text; "" if no path."""
    if path is None:
        return ""
    value: Any = properties
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def evaluate_events(session: Session, event_ids: list[int], *, now: datetime) -> None:
    """Apply events to journeys: end runs whose goal they meet, then enroll."""
    events = list(
        session.scalars(
            select(Event)
            .where(Event.id.in_(event_ids), Event.evaluated_at.is_(None))
            .order_by(Event.occurred_at, Event.id)
            .with_for_update(skip_locked=True)
        )
    )
    if not events:
        return
    journeys = live_versions(session, {e.workspace_id for e in events})
    runs_by_contact: dict[int, list[Run]] = defaultdict(list)
    for run in session.scalars(
        select(Run)
        .where(Run.contact_id.in_({e.contact_id for e in events}), Run.status.in_(LIVE_RUN_STATUSES))
        .order_by(Run.id)
        .with_for_update()
    ):
        runs_by_contact[run.contact_id].append(run)

    for event in events:
        for run in runs_by_contact[event.contact_id]:
            if run.status in LIVE_RUN_STATUSES:
                _end_if_goal(session, run, event, now=now)
        for live in journeys.get(event.workspace_id, []):
            enrolled = _enroll_if_triggered(session, live, event, now=now)
            if enrolled is not None:
                runs_by_contact[event.contact_id].append(enrolled)
        event.evaluated_at = now


def _end_if_goal(session: Session, run: Run, event: Event, *, now: datetime) -> None:
    definition = version_definition(session, run.journey_version_id)
    goal = definition.goal_for(event.type)
    if goal is None or correlation_key(event.properties, definition.trigger.key) != run.key:
        return
    _end_run(session, run, RunStatus.EXITED, f"goal reached: {goal.label}", now=now)
    record_run(session, run, "goal", at=now, detail=f"{event.type} {event.external_id}")


def _enroll_if_triggered(session: Session, live: LiveVersion, event: Event, *, now: datetime) -> Run | None:
    trigger = live.definition.trigger
    if trigger.event != event.type:
        return None
    key = correlation_key(event.properties, trigger.key)
    if key is None:
        record(session, workspace_id=event.workspace_id, contact_id=event.contact_id, kind="not_enrolled",
               at=now, detail=f"{live.name}: event {event.external_id} has no {trigger.key!r} property")
        return None
    values = {
        "workspace_id": event.workspace_id,
        "journey_id": live.journey_id,
        "journey_version_id": live.version_id,
        "contact_id": event.contact_id,
        "key": key,
        "trigger_event_id": event.id,
        "status": RunStatus.ACTIVE.value,
        "step_id": live.definition.first_step_id,
        "step_entered_at": now,
        "created_at": now,
    }
    stmt = dialect_insert(session, Run).values(values).on_conflict_do_nothing(
        index_elements=["journey_version_id", "contact_id", "key"]
    )
    run_id = session.scalar(stmt.returning(Run.id))
    if run_id is None:
        # Already enrolled for this key: later trigger events refresh what the
        # messages show (the cart's latest items), without a second run.
        session.execute(
            update(Run)
            .where(Run.journey_version_id == live.version_id, Run.contact_id == event.contact_id,
                   Run.key == key, Run.status.in_(LIVE_RUN_STATUSES))
            .values(trigger_event_id=event.id)
        )
        return None
    run = session.get_one(Run, run_id)
    record_run(session, run, "enrolled", at=now,
               detail=f"{live.name} (key {key!r}) by {event.type} {event.external_id}")
    _walk(session, run, live.definition, now=now)
    return run


def advance_runs(session: Session, run_ids: list[int], *, now: datetime) -> None:
    """Move runs whose timer is due. Runs not due, or already moved, are left alone."""
    runs = session.scalars(
        select(Run)
        .where(Run.id.in_(run_ids), Run.status == RunStatus.WAITING.value, Run.next_at <= now)
        .order_by(Run.id)
        .with_for_update(skip_locked=True)
    )
    for run in runs:
        _walk(session, run, version_definition(session, run.journey_version_id), now=now)


def _walk(session: Session, run: Run, definition: JourneyDefinition, *, now: datetime) -> None:
    assert run.step_id is not None
    outcome = advance(definition, run.step_id, run.step_entered_at, now=now)
    for send in outcome.sends:
        _make_message(session, run, send, now=now)
    stop = outcome.stop
    match stop:
        case Waiting(step_id=step_id, entered_at=entered_at, until=until):
            if (run.step_id, run.next_at) != (step_id, until):
                record_run(session, run, "waiting", at=now, step_id=step_id, detail=f"until {until.isoformat()}")
            run.status, run.step_id, run.step_entered_at = RunStatus.WAITING.value, step_id, entered_at
            run.next_at, run.enqueued_at = until, None
        case Completed():
            _end_run(session, run, RunStatus.COMPLETED, None, now=now)
            record_run(session, run, "completed", at=now)
        case Exited(step_id=step_id, reason=reason):
            run.step_id = step_id
            _end_run(session, run, RunStatus.EXITED, reason, now=now)
        case _:
            assert_never(stop)


def _end_run(session: Session, run: Run, status: RunStatus, reason: str | None, *, now: datetime) -> None:
    run.status, run.exit_reason, run.ended_at = status.value, reason, now
    run.next_at = run.enqueued_at = None
    if status is RunStatus.EXITED:
        record_run(session, run, "exited", at=now, detail=reason)


def _make_message(session: Session, run: Run, send: PlannedSend, *, now: datetime) -> None:
    contact = session.get_one(Contact, run.contact_id)
    workspace = session.get_one(Workspace, run.workspace_id)
    event = session.get(Event, run.trigger_event_id) if run.trigger_event_id else None
    suppressed = contact.email is not None and session.scalar(
        select(Suppression.id).where(
            Suppression.workspace_id == run.workspace_id,
            Suppression.channel == "email",
            Suppression.address == contact.email,
        )
    ) is not None
    skip = email_skip_reason(contact.email, contact.consent, suppressed=suppressed)
    context = {
        "contact": {
            "external_id": contact.external_id, "email": contact.email, "first_name": contact.first_name,
            "last_name": contact.last_name, "locale": contact.locale, "attributes": contact.attributes,
        },
        "event": event.properties if event else {},
        "workspace": {"id": workspace.id, "name": workspace.name},
    }
    values = {
        "workspace_id": run.workspace_id, "contact_id": run.contact_id, "run_id": run.id,
        "journey_id": run.journey_id, "step_id": send.step_id, "channel": send.channel,
        "template": send.template, "to_address": contact.email, "context": context,
        "status": (MessageStatus.SKIPPED if skip else MessageStatus.SCHEDULED).value,
        "skip_reason": skip, "attempts": 0, "scheduled_at": now, "created_at": now,
        "enqueued_at": None if skip else now,
    }
    stmt = dialect_insert(session, Message).values(values).on_conflict_do_nothing(index_elements=["run_id", "step_id"])
    message_id = session.scalar(stmt.returning(Message.id))
    if message_id is None:
        return  # this step already made its message
    record(session, workspace_id=run.workspace_id, contact_id=run.contact_id, run_id=run.id,
           step_id=send.step_id, message_id=message_id, kind="skipped" if skip else "message_scheduled",
           at=now, detail=skip or f"{send.channel}: {send.template}")
    if not skip:
        defer(session, "dispatch_messages", [message_id])

"""Runs: enroll contacts, end runs whose goal is met, wake runs waiting for an event,
and walk runs through their steps.

Every function here may be called twice for the same input (a job retried, two
workers holding the same ids) and the result is the same as calling it once:
enrollment is unique per (journey version, contact, key), runs are locked while they
move, and each message or call is unique per (run, step).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, assert_never
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.conditions import describe, holds
from engine.db import dialect_insert
from engine.interpreter import (
    Branched,
    Completed,
    Exited,
    PlannedSend,
    PlannedUpdate,
    PlannedWebhook,
    Waiting,
    advance,
)
from engine.journeys import TIME_TRIGGERS, EveryDays, JourneyDefinition, SegmentTrigger, WaitForEventStep
from engine.models import LIVE_RUN_STATUSES, Contact, Event, Journey, Run, RunStatus, Workspace
from engine.services import effects
from engine.services.facts import gather_facts, lazy
from engine.services.journal import record, record_run
from engine.services.journeys import LiveVersion, live_versions, version_definition

REPEAT_MARK = "|#"  # stored key = "<correlation key>|#<n>" for the n-th repeat under an every_days rule


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


def base_key(stored: str) -> str:
    return stored.split(REPEAT_MARK, 1)[0]


def evaluate_events(session: Session, event_ids: list[int], *, now: datetime) -> None:
    """Apply events to journeys: end runs whose goal they meet, wake waiting runs, enroll."""
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
            if run.status in LIVE_RUN_STATUSES:
                _wake_if_awaited(session, run, event, now=now)
        for live in journeys.get(event.workspace_id, []):
            enrolled = _enroll_if_triggered(session, live, event, now=now)
            if enrolled is not None:
                runs_by_contact[event.contact_id].append(enrolled)
        event.evaluated_at = now


def _end_if_goal(session: Session, run: Run, event: Event, *, now: datetime) -> None:
    definition = version_definition(session, run.journey_version_id)
    goal = definition.goal_for(event.type)
    if goal is None or not _same_key(definition, event, run):
        return
    _end_run(session, run, RunStatus.EXITED, f"goal reached: {goal.label}", now=now)
    record_run(session, run, "goal", at=now, detail=f"{event.type} {event.external_id}")


def _same_key(definition: JourneyDefinition, event: Event, run: Run) -> bool:
    if not definition.is_keyed:
        return True
    return correlation_key(event.properties, definition.key_path) == base_key(run.key)


def _wake_if_awaited(session: Session, run: Run, event: Event, *, now: datetime) -> None:
    """A run waiting for this event (same key unless told otherwise) takes its yes branch now."""
    definition = version_definition(session, run.journey_version_id)
    if run.step_id is None or not definition.has_step(run.step_id):
        return
    step = definition.step(run.step_id)
    if not isinstance(step, WaitForEventStep) or step.event != event.type or event.received_at < run.step_entered_at:
        return
    if step.same_key and not _same_key(definition, event, run):
        return
    received = dict(run.state.get("received", {}))
    received[step.id] = event.external_id
    run.state = {**run.state, "received": received}
    if session.scalar(select(Journey.status).where(Journey.id == run.journey_id)) == "live":
        _walk(session, run, definition, now=now)
    else:  # paused: the yes branch is taken as soon as the journey resumes
        run.next_at, run.enqueued_at = now, None


def _enroll_if_triggered(session: Session, live: LiveVersion, event: Event, *, now: datetime) -> Run | None:
    definition = live.definition
    trigger = definition.trigger
    if not definition.enters_on(event.type):
        return None
    if isinstance(trigger, TIME_TRIGGERS) and event.properties.get("journey_id") != live.journey_id:
        return None  # a time scan's entry event is for one journey only
    quiet = isinstance(trigger, SegmentTrigger)  # checked on every event: only entries are news

    def not_enrolled(why: str) -> None:
        if not quiet:
            record(session, workspace_id=event.workspace_id, contact_id=event.contact_id, kind="not_enrolled",
                   at=now, detail=f"{live.name}: {why}")

    key = correlation_key(event.properties, definition.key_path)
    if key is None:
        not_enrolled(f"event {event.external_id} has no {definition.key_path!r} property")
        return None
    contact = session.get_one(Contact, event.contact_id)
    entry_filter = definition.entry_filter
    if entry_filter is not None:
        facts = gather_facts(session, contact, event.properties, now=now)
        if not holds(entry_filter, facts):
            not_enrolled(f"entry filter not met: {describe(entry_filter)}")
            return None
    stored_key = _key_under_reentry_rule(session, definition, live.journey_id, event.contact_id, key, now=now)
    if stored_key is None:
        not_enrolled(f"re-entry rule {_rule_text(definition)}")
        return None
    values = {
        "workspace_id": event.workspace_id, "journey_id": live.journey_id, "journey_version_id": live.version_id,
        "contact_id": event.contact_id, "key": stored_key, "trigger_event_id": event.id,
        "status": RunStatus.ACTIVE.value, "step_id": definition.first_step_id, "step_entered_at": now,
        "created_at": now, "state": {},
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
                   Run.key == stored_key, Run.status.in_(LIVE_RUN_STATUSES))
            .values(trigger_event_id=event.id)
        )
        return None
    run = session.get_one(Run, run_id)
    record_run(session, run, "enrolled", at=now,
               detail=f"{live.name} (key {key!r}) by {event.type} {event.external_id}")
    _walk(session, run, definition, now=now)
    return run


def _rule_text(definition: JourneyDefinition) -> str:
    rule = definition.reentry
    return f"at most once per {rule.every_days} days" if isinstance(rule, EveryDays) else rule.replace("_", " ")


def _key_under_reentry_rule(session: Session, definition: JourneyDefinition, journey_id: int, contact_id: int,
                            key: str, *, now: datetime) -> str | None:
    """The key to store for a new run, or None when the re-entry rule forbids one.

    once_per_key: the (version, contact, key) uniqueness does it. once_ever: any earlier
    run of this journey (any version) forbids. every_days: the last run must be old
    enough, and the n-th run gets key "<key>|#n", still unique per version.
    """
    rule = definition.reentry
    if rule == "once_per_key":
        return key
    earlier = select(func.count(), func.max(Run.created_at)).where(
        Run.journey_id == journey_id, Run.contact_id == contact_id
    )
    count, last = session.execute(earlier).one()
    if rule == "once_ever":
        return key if count == 0 else None
    if last is not None and now - last < timedelta(days=rule.every_days):
        return None
    return key if count == 0 else f"{key}{REPEAT_MARK}{count}"


def exit_live_runs(session: Session, journey_id: int, reason: str, *, now: datetime) -> int:
    runs = list(session.scalars(select(Run).where(Run.journey_id == journey_id, Run.status.in_(LIVE_RUN_STATUSES))
                                .order_by(Run.id).with_for_update()))
    for run in runs:
        _end_run(session, run, RunStatus.EXITED, reason, now=now)
    return len(runs)


def advance_runs(session: Session, run_ids: list[int], *, now: datetime) -> None:
    """Move runs whose timer is due. Runs not due, already moved, or paused are left alone."""
    runs = session.scalars(
        select(Run)
        .join(Journey, Journey.id == Run.journey_id)
        .where(Run.id.in_(run_ids), Run.status == RunStatus.WAITING.value, Run.next_at <= now,
               Journey.status == "live")
        .order_by(Run.id)
        .with_for_update(skip_locked=True)
    )
    for run in runs:
        _walk(session, run, version_definition(session, run.journey_version_id), now=now)


def _zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _walk(session: Session, run: Run, definition: JourneyDefinition, *, now: datetime) -> None:
    assert run.step_id is not None
    contact = session.get_one(Contact, run.contact_id)
    workspace = session.get_one(Workspace, run.workspace_id)
    trigger = session.get(Event, run.trigger_event_id) if run.trigger_event_id else None
    facts = lazy(lambda: gather_facts(session, contact, trigger.properties if trigger else {}, now=now))
    outcome = advance(definition, run.step_id, run.step_entered_at, now=now, run_id=run.id,
                      identity=f"{run.contact_id}:{run.key}",
                      timezone=_zone(contact.timezone, workspace.timezone), state=run.state, facts=facts)
    journey_name: str | None = None
    for effect in outcome.effects:
        match effect:
            case PlannedSend():
                effects.make_message(session, run, contact, effect, now=now)
            case PlannedUpdate():
                effects.update_contact(session, run, contact, effect, now=now)
            case PlannedWebhook():
                journey_name = journey_name or session.scalar(select(Journey.name).where(Journey.id == run.journey_id))
                effects.make_webhook_call(session, run, contact, effect, journey_name=journey_name or "", now=now)
            case Branched(step_id=step_id, label=label, reason=reason):
                record_run(session, run, "branch", at=now, step_id=step_id, detail=f"{label}: {reason}")
            case _:
                assert_never(effect)
    if outcome.state != run.state:
        run.state = outcome.state
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

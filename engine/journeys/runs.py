"""Runs: enroll contacts, end runs whose goal is met, wake runs waiting for an event,
and walk runs through their steps.

Every function here may be called twice for the same input (a job retried, two
workers holding the same ids) and the result is the same as calling it once:
enrollment is unique per (journey version, contact, key), runs are locked while they
move, and each message or call is unique per (run, step).
"""

from __future__ import annotations

import typing
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import Any, assert_never

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from engine.contacts.journal import JournalKind
from engine.delivery.templates import Templates
from engine.journeys import effects
from engine.journeys.definition import JourneyDefinition, SegmentTrigger
from engine.journeys.enrollment import (
    AlreadyEntered,
    Enter,
    NotEntered,
    NotEnteredBecause,
    PastRuns,
    awaited_step,
    decide_entry,
    goal_reached,
    may_enter,
    reentry_rule_text,
    waits_for_an_event,
    with_received,
)
from engine.journeys.entry_effects import entry_effects
from engine.journeys.interpreter import (
    Branched,
    Completed,
    Exited,
    Outcome,
    PlannedSend,
    PlannedUpdate,
    PlannedWebhook,
    Waiting,
    advance,
)
from engine.journeys.versions import LiveVersion, live_versions, version_definition
from engine.reasons import Reason
from engine.segments.conditions import Condition, describe, holds
from engine.segments.facts import gather_facts, lazy
from engine.store.dialect import insert_rows, one_of
from engine.store.models import LIVE_RUN_STATUSES, Contact, Event, Journey, JourneyStatus, Run, RunStatus, Workspace
from engine.timezones import contact_zone


def evaluate_events(session: Session, event_ids: list[int], *, templates: Templates, now: datetime) -> None:
    """Apply events to journeys: end runs whose goal they meet, wake waiting runs, enroll.

    Each contact's events are applied in order (occurred_at, id), one journey after the
    other, as if one at a time. Contacts do not affect each other, so the batch goes in
    rounds (a round holds one event of each of its contacts: their first, then their
    second...), and the runs a round makes are inserted with one statement. What the
    batch reads is loaded once (its contacts, the keys their runs hold, their re-entry
    history). So the statements per event do not grow with the number of journeys.
    """
    events = list(
        session.scalars(
            select(Event)
            .where(one_of(Event.id, event_ids), Event.evaluated_at.is_(None))
            .order_by(Event.occurred_at, Event.id)
            .with_for_update(skip_locked=True)
        )
    )
    if not events:
        return
    journeys = live_versions(session, {e.workspace_id for e in events})
    contact_ids = sorted({e.contact_id for e in events})
    runs_by_contact: dict[int, list[Run]] = defaultdict(list)
    for run in session.scalars(
        select(Run)
        .where(one_of(Run.contact_id, contact_ids), Run.status.in_(LIVE_RUN_STATUSES))
        .order_by(Run.id)
        .with_for_update()
    ):
        runs_by_contact[run.contact_id].append(run)
    rounds: list[list[Event]] = []
    seen: dict[int, int] = defaultdict(int)
    for event in events:
        nth = seen[event.contact_id]
        seen[event.contact_id] += 1
        if nth == len(rounds):
            rounds.append([])
        rounds[nth].append(event)

    # Nothing read below depends on the changes made on the way, so they are written
    # once at the end (one INSERT of journal lines, grouped UPDATEs) instead of before
    # every query.
    with session.no_autoflush:
        # Of the live runs, only those waiting for an event may be walked here (woken): their
        # trigger events are loaded with the batch, any other is fetched if a walk needs it.
        wakeable = [run for runs in runs_by_contact.values() for run in runs if _awaits_event(session, run)]
        batch = _load_batch(session, templates, contact_ids=contact_ids, events=events, runs=wakeable)
        enrollment = _Enrollment.load(session, journeys, contact_ids, runs_by_contact)
        with effects.walking(session, batch):
            for round_ in rounds:
                for event in round_:
                    for run in runs_by_contact[event.contact_id]:
                        if run.status in LIVE_RUN_STATUSES:
                            _end_if_goal(session, run, event, batch, now=now)
                        if run.status in LIVE_RUN_STATUSES:
                            _wake_if_awaited(session, run, event, batch, now=now)
                enrollment.enroll(session, journeys, round_, batch, now=now)
    # Every event gets the same stamp: one UPDATE, not one per event at the flush.
    for event in events:
        set_committed_value(event, "evaluated_at", now)
    session.execute(update(Event).where(one_of(Event.id, [e.id for e in events])).values(evaluated_at=now)
                    .execution_options(synchronize_session=False))


def _load_batch(session: Session, templates: Templates, *, contact_ids: list[int], runs: list[Run],
                events: Sequence[Event] = ()) -> effects.Batch:
    """The contacts (with their suppressions), workspaces and trigger events a batch walks with."""
    batch = effects.Batch(events={e.id: e for e in events}, templates=templates)
    if contact_ids:
        contacts = session.scalars(select(Contact).where(one_of(Contact.id, contact_ids)))
        batch.contacts = {c.id: c for c in contacts}
        workspace_ids = sorted({c.workspace_id for c in batch.contacts.values()})
        batch.workspaces = {w.id: w for w in session.scalars(select(Workspace).where(Workspace.id.in_(workspace_ids)))}
        batch.load_suppressions(session, list(batch.contacts.values()))
    wanted = sorted({r.trigger_event_id for r in runs if r.trigger_event_id is not None} - set(batch.events))
    if wanted:
        batch.events.update((e.id, e) for e in session.scalars(select(Event).where(one_of(Event.id, wanted))))
    return batch


def _awaits_event(session: Session, run: Run) -> bool:
    return waits_for_an_event(version_definition(session, run.journey_version_id), run.step_id)


def _end_if_goal(session: Session, run: Run, event: Event, batch: effects.Batch, *, now: datetime) -> None:
    definition = version_definition(session, run.journey_version_id)
    goal = goal_reached(definition, event.type, event.properties, run.key, run_id=run.id)
    if goal is None:
        return
    _end_run(session, run, RunStatus.EXITED, f"goal reached: {goal.label}", batch, now=now,
             code=Reason.GOAL_REACHED, goal=goal.label)
    batch.note_run(session, run, JournalKind.GOAL, at=now, detail=f"{event.type} {event.external_id}", goal=goal.label)


def _wake_if_awaited(session: Session, run: Run, event: Event, batch: effects.Batch, *, now: datetime) -> None:
    """A run waiting for this event (same key unless told otherwise) takes its yes branch now."""
    definition = version_definition(session, run.journey_version_id)
    step = awaited_step(definition, run.step_id, run.step_entered_at, event.type, event.properties, run.key,
                        at=event.received_at, run_id=run.id)
    if step is None:
        return
    run.state = with_received(run.state, step, event.external_id)
    if batch.status_of(session, run.journey_id) == JourneyStatus.LIVE:
        _walk(session, run, definition, batch, now=now)
    else:  # paused: the yes branch is taken as soon as the journey resumes
        run.next_at, run.enqueued_at = now, None


@dataclass(frozen=True)
class _Decision:
    """What one journey does with one event, in the order the journeys are gone through."""

    live: LiveVersion
    kind: str  # "skip" (not enrolled: `text`, `reason` say why) | "refresh" (already enrolled for the key) | "enroll"
    text: str = ""
    key: str = ""  # the correlation key, and the key stored on the run
    stored_key: str = ""
    reason: Reason | None = None


def _not_entered(live: LiveVersion, event: Event, reason: NotEnteredBecause) -> _Decision | None:
    """The journal's "not enrolled" line for a refused entry (none for a segment not matched:
    a segment is checked on every event of the contact's, so not matching it is no news)."""
    definition = live.definition
    if reason is Reason.NO_KEY:
        return _Decision(live, "skip", f"event {event.external_id} has no {definition.key_path!r} property",
                         reason=reason)
    if isinstance(definition.trigger, SegmentTrigger):
        return None
    if reason is Reason.ENTRY_FILTER and definition.entry_filter is not None:
        return _Decision(live, "skip", f"entry filter not met: {describe(definition.entry_filter)}", reason=reason)
    return _Decision(live, "skip", f"re-entry rule {reentry_rule_text(definition.reentry)}", reason=reason)


@dataclass
class _Enrollment:
    """The batch's contacts' standing with the live journeys, loaded once and kept current.

    `taken`: every (version, contact, stored key) that has a run, with the run's status
    when loaded (enrollment is unique per version, contact and key, whatever the status).
    `past`: for journeys whose re-entry rule looks at earlier runs, per (journey, contact),
    how many runs of any version and when the last one was made.
    """

    taken: dict[tuple[int, int, str], str]
    past: dict[tuple[int, int], PastRuns]
    runs_by_contact: dict[int, list[Run]]
    entered_by: dict[tuple[str, str], list[LiveVersion]] = field(default_factory=dict)  # (workspace, type)
    _later_reads: dict[tuple[str, str], dict[int, frozenset[str]]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, journeys: dict[str, list[LiveVersion]], contact_ids: list[int],
             runs_by_contact: dict[int, list[Run]]) -> _Enrollment:
        lives = [live for lives in journeys.values() for live in lives]
        taken: dict[tuple[int, int, str], str] = {}
        past: dict[tuple[int, int], PastRuns] = {}
        if lives and contact_ids:
            for version_id, contact_id, key, status in session.execute(
                select(Run.journey_version_id, Run.contact_id, Run.key, Run.status).where(
                    one_of(Run.contact_id, contact_ids),
                    Run.journey_version_id.in_(sorted(v.version_id for v in lives)))
            ):
                taken[(version_id, contact_id, key)] = status
            ruled = sorted({v.journey_id for v in lives if v.definition.reentry != "once_per_key"})
            if ruled:
                for journey_id, contact_id, count, last in session.execute(
                    select(Run.journey_id, Run.contact_id, func.count(), func.max(Run.created_at))
                    .where(Run.journey_id.in_(ruled), one_of(Run.contact_id, contact_ids))
                    .group_by(Run.journey_id, Run.contact_id)
                ):
                    past[(journey_id, contact_id)] = PastRuns(count, last)
        return cls(taken, past, runs_by_contact)

    def enroll(self, session: Session, journeys: dict[str, list[LiveVersion]], round_: list[Event],
               batch: effects.Batch, *, now: datetime) -> None:
        """Enroll each event's contact (one event per contact) in the journeys the event triggers:
        decide journey by journey, insert the new runs in one statement, then record and walk
        each in order.

        A walk may change the contact (an update step before the first wait), which a later
        journey's entry filter may read: that event's decisions after such a journey wait
        for its walk (the next statement).
        """
        pending = [(event, iter(self._entering(journeys, event))) for event in round_]
        self._later_reads.clear()
        while pending:
            step: list[tuple[Event, list[_Decision]]] = []
            left = []
            for event, lives in pending:
                decisions: list[_Decision] = []
                for live in lives:
                    decision = self._decide(session, live, event, batch, now=now)
                    if decision is None:
                        continue
                    decisions.append(decision)
                    if decision.kind == "enroll" and self._changes_what_later_ones_read(event, live):
                        left.append((event, lives))  # the rest after this walk
                        break
                step.append((event, decisions))
            self._apply(session, step, batch, now=now)
            pending = left

    def _changes_what_later_ones_read(self, event: Event, live: LiveVersion) -> bool:
        """Can entering `live` change a contact attribute that a journey after it (for this event)
        reads on entry? Then those wait for its walk."""
        changes = entry_effects(live).changes
        if not changes:
            return False
        key = (event.workspace_id, event.type)
        reads = self._later_reads.get(key)
        if reads is None:  # per journey of the list: the attributes the journeys after it read
            entering = self.entered_by[key]
            reads, seen = {}, frozenset[str]()
            for later in reversed(entering):
                reads[later.version_id] = seen
                seen = seen | entry_effects(later).reads
            self._later_reads[key] = reads
        read_later = reads[live.version_id]
        return "*" in read_later or not changes.isdisjoint(read_later)

    def _entering(self, journeys: dict[str, list[LiveVersion]], event: Event) -> list[LiveVersion]:
        """The journeys this type of event may enter, in their order."""
        entering = self.entered_by.get((event.workspace_id, event.type))
        if entering is None:
            lives = journeys.get(event.workspace_id, [])
            entering = self.entered_by[(event.workspace_id, event.type)] = [
                live for live in lives if live.definition.enters_on(event.type)]
        return entering

    def _decide(self, session: Session, live: LiveVersion, event: Event, batch: effects.Batch, *,
                now: datetime) -> _Decision | None:
        definition = live.definition
        if not may_enter(definition, live.journey_id, event.type, event.properties):
            return None
        contact_id = event.contact_id

        def filter_holds(condition: Condition) -> bool:
            return holds(condition, gather_facts(session, batch.contact(session, contact_id), event.properties,
                                                 now=now))

        past = self.past.get((live.journey_id, contact_id), PastRuns())
        entry = decide_entry(definition, event.properties, past=past, filter_holds=filter_holds,
                             is_taken=lambda stored_key: (live.version_id, contact_id, stored_key) in self.taken,
                             now=now)
        match entry:
            case NotEntered(reason=reason):
                return _not_entered(live, event, reason)
            case AlreadyEntered(key=key, stored_key=stored_key):
                return _Decision(live, "refresh", key=key, stored_key=stored_key)
            case Enter(key=key, stored_key=stored_key):
                self.taken[(live.version_id, contact_id, stored_key)] = RunStatus.ACTIVE.value
                if definition.reentry != "once_per_key":
                    self.past[(live.journey_id, contact_id)] = past.with_one_more(now)
                return _Decision(live, "enroll", key=key, stored_key=stored_key)
            case _:
                assert_never(entry)

    def _apply(self, session: Session, step: list[tuple[Event, list[_Decision]]], batch: effects.Batch, *,
               now: datetime) -> None:
        """Insert the new runs of the decisions with one statement, then record each decision in order.

        Walking is pure until its effects are applied, so each new run's first walk is
        planned before the insert. A walk that only branches and stops (the common case:
        enter, wait) is settled on the row before it is inserted, so the run is written
        once, as it ends up; one that sends, calls or changes the contact is applied to
        the inserted run, as before. Either way the journal reads as one walk after the other.
        """
        planned: dict[tuple[int, int], tuple[Outcome, list[dict[str, Any]] | None]] = {}
        rows = []
        for event, decisions in step:
            for decision in decisions:
                if decision.kind != "enroll":
                    continue
                live = decision.live
                # The row to be, walked as a Run would be (an ORM instance costs more to build than the walk).
                draft = typing.cast(Run, SimpleNamespace(
                    id=None, workspace_id=event.workspace_id, journey_id=live.journey_id,
                    journey_version_id=live.version_id, contact_id=event.contact_id, key=decision.stored_key,
                    trigger_event_id=event.id, status=RunStatus.ACTIVE.value, step_id=live.definition.first_step_id,
                    step_entered_at=now, next_at=None, enqueued_at=None, exit_reason=None, state={}, created_at=now,
                    ended_at=None))
                outcome = _plan(session, draft, live.definition, batch, now=now)
                lines = None
                if all(isinstance(effect, Branched) for effect in outcome.effects):
                    with batch.capturing() as lines:  # the run has no id yet: its lines wait for it
                        _settle(session, draft, outcome, batch, now=now)
                planned[(live.version_id, event.contact_id)] = (outcome, lines)
                rows.append({name: getattr(draft, name) for name in RUN_COLUMNS})
        created = {(run.journey_version_id, run.contact_id): run for run in _insert_runs(session, rows)} if rows else {}
        for event, decisions in step:
            for decision in decisions:
                live = decision.live
                if decision.kind == "skip":
                    batch.note(session, workspace_id=event.workspace_id, contact_id=event.contact_id,
                               kind=JournalKind.NOT_ENROLLED, at=now, detail=f"{live.name}: {decision.text}",
                               reason=decision.reason)
                    continue
                run = created.get((live.version_id, event.contact_id)) if decision.kind == "enroll" else None
                if run is None:
                    # Already enrolled for this key: later trigger events refresh what the
                    # messages show (the cart's latest items), without a second run.
                    self._refresh(session, live, event, decision.stored_key)
                    continue
                self.runs_by_contact[event.contact_id].append(run)
                batch.note_run(session, run, JournalKind.ENROLLED, at=now, step_id=live.definition.first_step_id,
                               detail=f"{live.name} (key {decision.key!r}) by {event.type} {event.external_id}")
                outcome, lines = planned[(live.version_id, event.contact_id)]
                if lines is None:
                    _settle(session, run, outcome, batch, now=now)
                else:
                    batch.add_lines(lines, run_id=run.id)

    def _refresh(self, session: Session, live: LiveVersion, event: Event, stored_key: str) -> None:
        """Point the live run holding this key at the new trigger event (an ended run keeps its own)."""
        for run in self.runs_by_contact[event.contact_id]:
            if (run.journey_version_id, run.key) == (live.version_id, stored_key):
                if run.status in LIVE_RUN_STATUSES:
                    run.trigger_event_id = event.id
                return  # a run this batch holds (locked): the one to refresh, if live
        if self.taken.get((live.version_id, event.contact_id, stored_key)) not in LIVE_RUN_STATUSES:
            return  # it ended before this batch began: nothing to refresh
        # Live, but made by another transaction after this batch locked its runs.
        session.flush()
        session.execute(
            update(Run)
            .where(Run.journey_version_id == live.version_id, Run.contact_id == event.contact_id,
                   Run.key == stored_key, Run.status.in_(LIVE_RUN_STATUSES))
            .values(trigger_event_id=event.id)
        )


def _insert_runs(session: Session, rows: list[dict[str, Any]]) -> list[Run]:
    """Insert runs with one statement, skipping (version, contact, key) already taken; the new ones."""
    insert = insert_rows(session, RUNS, rows)
    return list(session.scalars(_new_runs(insert.statement), insert.parameters))


RUNS = typing.cast(Table, Run.__table__)
RUN_KEY = ["journey_version_id", "contact_id", "key"]
RUN_COLUMNS = ("workspace_id", "journey_id", "journey_version_id", "contact_id", "key", "trigger_event_id", "status",
               "step_id", "step_entered_at", "next_at", "enqueued_at", "exit_reason", "state", "created_at",
               "ended_at")


@cache
def _new_runs(insert: Any) -> Any:
    """The runs INSERT (insert_rows), skipping a (version, contact, key) taken already; the new runs."""
    return select(Run).from_statement(insert.on_conflict_do_nothing(index_elements=RUN_KEY).returning(*RUNS.c))


def exit_live_runs(session: Session, journey_id: int, reason: str, *, now: datetime, code: Reason) -> int:
    """End the journey's live runs, saying why (`reason`, and as a `code`)."""
    runs = list(session.scalars(select(Run).where(Run.journey_id == journey_id, Run.status.in_(LIVE_RUN_STATUSES))
                                .order_by(Run.id).with_for_update()))
    for run in runs:
        _end_run(session, run, RunStatus.EXITED, reason, now=now, code=code)
    return len(runs)


def advance_runs(session: Session, run_ids: list[int], *, templates: Templates, now: datetime) -> None:
    """Move runs whose timer is due. Runs not due, already moved, or paused are left alone.

    Only the runs are locked (FOR UPDATE OF runs): locking their journeys' rows too made a
    second worker skip every run of a journey the first was advancing (SKIP LOCKED), so
    its job did nothing and those timers waited for the sweep to hand them out again.
    """
    runs = list(session.scalars(
        select(Run)
        .join(Journey, Journey.id == Run.journey_id)
        .where(one_of(Run.id, run_ids), Run.status == RunStatus.WAITING.value, Run.next_at <= now,
               Journey.status == JourneyStatus.LIVE.value)
        .order_by(Run.id)
        .with_for_update(skip_locked=True, of=Run)
    ))
    if not runs:
        return
    # As in evaluate_events: what the walks read is loaded for the whole batch, and what
    # they change is written once at the end.
    with session.no_autoflush:
        batch = _load_batch(session, templates, contact_ids=sorted({r.contact_id for r in runs}), runs=runs)
        with effects.walking(session, batch):
            for run in runs:
                _walk(session, run, version_definition(session, run.journey_version_id), batch, now=now)


def _walk(session: Session, run: Run, definition: JourneyDefinition, batch: effects.Batch, *, now: datetime) -> None:
    _settle(session, run, _plan(session, run, definition, batch, now=now), batch, now=now)


def _plan(session: Session, run: Run, definition: JourneyDefinition, batch: effects.Batch, *,
          now: datetime) -> Outcome:
    """Where the run's walk from its step leads, and what it does on the way (nothing applied yet)."""
    assert run.step_id is not None
    contact = batch.contact(session, run.contact_id)
    workspace = batch.workspace(session, run.workspace_id)
    trigger = batch.event(session, run.trigger_event_id)
    facts = lazy(lambda: gather_facts(session, contact, trigger.properties if trigger else {}, now=now))
    return advance(definition, run.step_id, run.step_entered_at, now=now, run_id=run.id or 0,
                   identity=f"{run.contact_id}:{run.key}",
                   timezone=contact_zone(contact.timezone, workspace.timezone), state=run.state, facts=facts)


def _settle(session: Session, run: Run, outcome: Outcome, batch: effects.Batch, *, now: datetime) -> None:
    """Apply a planned walk: its effects, the run's new state, and where it stops."""
    contact = batch.contact(session, run.contact_id)
    for effect in outcome.effects:
        match effect:
            case PlannedSend():
                effects.make_message(session, run, contact, effect, batch=batch, now=now)
            case PlannedUpdate():
                effects.update_contact(session, run, contact, effect, batch=batch, now=now)
            case PlannedWebhook():
                effects.make_webhook_call(session, run, contact, effect,
                                          journey_name=batch.name_of(session, run.journey_id) or "", batch=batch,
                                          now=now)
            case Branched(step_id=step_id, label=label, reason=reason, arm=arm):
                batch.note_run(session, run, JournalKind.BRANCH, at=now, step_id=step_id, detail=f"{label}: {reason}",
                               label=label, arm=arm)
            case _:
                assert_never(effect)
    if outcome.state != run.state:
        run.state = outcome.state
    stop = outcome.stop
    match stop:
        case Waiting(step_id=step_id, entered_at=entered_at, until=until):
            if (run.step_id, run.next_at) != (step_id, until):
                batch.note_run(session, run, JournalKind.WAITING, at=now, step_id=step_id,
                               detail=f"until {until.isoformat()}")
            run.status, run.step_id, run.step_entered_at = RunStatus.WAITING.value, step_id, entered_at
            run.next_at, run.enqueued_at = until, None
        case Completed():
            _end_run(session, run, RunStatus.COMPLETED, None, batch, now=now)
            batch.note_run(session, run, JournalKind.COMPLETED, at=now)
        case Exited(step_id=step_id, reason=reason):
            run.step_id = step_id
            _end_run(session, run, RunStatus.EXITED, reason, batch, now=now, code=Reason.EXIT_STEP)
        case _:
            assert_never(stop)


def _end_run(session: Session, run: Run, status: RunStatus, reason: str | None, batch: effects.Batch | None = None,
             *, now: datetime, code: Reason | None = None, goal: str | None = None) -> None:
    """End the run; one that exited early says why, in words (`reason`) and as a `code`."""
    run.status, run.exit_reason, run.ended_at = status.value, reason, now
    run.next_at = run.enqueued_at = None
    if status is RunStatus.EXITED:
        (batch or effects.Batch()).note_run(session, run, JournalKind.EXITED, at=now, detail=reason, reason=code,
                                            goal=goal)

"""Backtest: replay a period's stored events through a journey without sending anything.

The replay uses the same pure interpreter, conditions and policies as real runs and
mirrors the runs service's order of work for each event (goals, then awaited events,
then entry), with timers firing exactly when due. What it cannot know is replaced by
today's values: a contact's attributes, consent and metrics are read as they are now,
not as they were then. A test runs a journey for real over a set of events and checks
that the simulation of the same events reports the same.
"""

from __future__ import annotations

import heapq
import itertools
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, assert_never

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.delivery import routing
from engine.delivery.templates import Templates
from engine.journeys.definition import TIME_TRIGGERS, JourneyDefinition, SplitStep
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
    with_received,
)
from engine.journeys.interpreter import Branched, Completed, Exited, PlannedSend, PlannedWebhook, Waiting, advance
from engine.reasons import Reason
from engine.segments.conditions import Facts, holds
from engine.segments.facts import contact_metrics
from engine.store.models import Contact, Event, Suppression, Workspace
from engine.timezones import contact_zone


@dataclass
class SimRun:
    contact_id: int
    key: str
    step_id: str
    entered_at: datetime
    started_at: datetime
    properties: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    status: str = "active"
    next_at: datetime | None = None
    path: list[str] = field(default_factory=list)
    ended_at: datetime | None = None
    exit_reason: str | None = None


@dataclass
class Report:
    start: datetime
    end: datetime
    events_replayed: int = 0
    enrollments: int = 0
    not_enrolled: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    exits: Counter[str] = field(default_factory=Counter)
    still_waiting: int = 0
    messages: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # day -> channel
    skipped: Counter[str] = field(default_factory=Counter)
    webhooks: int = 0
    holdouts: Counter[str] = field(default_factory=Counter)  # "split:arm" -> runs held out
    arms: Counter[str] = field(default_factory=Counter)
    paths: dict[tuple[str, ...], list[float]] = field(default_factory=lambda: defaultdict(list))

    def as_json(self) -> dict[str, Any]:
        by_slowness = sorted(self.paths.items(), key=lambda item: (-statistics.median(item[1]), -len(item[1])))
        slowest = [
            {"path": " > ".join(path), "runs": len(durations),
             "median_hours": round(statistics.median(durations) / 3600, 2),
             "max_hours": round(max(durations) / 3600, 2)}
            for path, durations in by_slowness[:5]
        ]
        return {
            "period": {"from": self.start.isoformat(), "to": self.end.isoformat()},
            "events_replayed": self.events_replayed,
            "enrollments": self.enrollments,
            "not_enrolled": dict(self.not_enrolled),
            "completed": self.completed,
            "exits": dict(self.exits),
            "still_waiting": self.still_waiting,
            "messages_per_day": {day: dict(c) for day, c in sorted(self.messages.items())},
            "messages_total": sum(sum(c.values()) for c in self.messages.values()),
            "skipped": dict(self.skipped),
            "webhooks": self.webhooks,
            "split_arms": dict(self.arms),
            "holdout_sizes": dict(self.holdouts),
            "slowest_paths": slowest,
        }


class Simulation:
    def __init__(self, session: Session, workspace_id: str, definition: JourneyDefinition, templates: Templates,
                 start: datetime, end: datetime):
        if isinstance(definition.trigger, TIME_TRIGGERS):
            raise ValueError("the backtest replays events: it needs a journey that starts on an event")
        self.session, self.workspace_id, self.definition = session, workspace_id, definition
        self.templates = templates
        self.report = Report(start, end)
        self.runs: dict[int, list[SimRun]] = defaultdict(list)
        self.timers: list[tuple[datetime, int, SimRun]] = []
        self.order = itertools.count()
        self.contacts: dict[int, Contact] = {}
        self.history: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
        self.sent_by_contact: dict[int, list[tuple[str, datetime]]] = {}
        self.workspace_timezone = session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id))

    def run(self) -> Report:
        events = self.session.scalars(
            select(Event).where(Event.workspace_id == self.workspace_id, Event.occurred_at >= self.report.start,
                                Event.occurred_at < self.report.end).order_by(Event.occurred_at, Event.id)
            .execution_options(yield_per=1000)
        )
        for event in events:
            self._fire_timers_until(event.occurred_at)
            self.report.events_replayed += 1
            self.history[event.contact_id].append((event.occurred_at, event.type))
            self._apply(event)
        self._fire_timers_until(self.report.end)
        self.report.still_waiting = sum(1 for runs in self.runs.values() for r in runs if r.status == "waiting")
        return self.report

    # --- events -------------------------------------------------------------------
    def _apply(self, event: Event) -> None:
        definition, now = self.definition, event.occurred_at
        for run in self.runs[event.contact_id]:
            if run.status not in ("active", "waiting"):
                continue
            goal = goal_reached(definition, event.type, event.properties, run.key)
            if goal is not None:
                self._end(run, "exited", f"goal reached: {goal.label}", now)
                continue
            step = awaited_step(definition, run.step_id, run.entered_at, event.type, event.properties, run.key,
                                at=now)
            if step is not None:
                run.state = with_received(run.state, step, event.external_id)
                self._walk(run, now)
        if may_enter(definition, None, event.type, event.properties):
            self._enroll(event, now)

    def _enroll(self, event: Event, now: datetime) -> None:
        definition = self.definition
        earlier = self.runs[event.contact_id]
        entry = decide_entry(
            definition, event.properties,
            past=PastRuns(len(earlier), max((r.started_at for r in earlier), default=None)),
            filter_holds=lambda condition: holds(condition, self._facts(self._contact(event.contact_id),
                                                                        event.properties, now)),
            is_taken=lambda stored_key: any(r.key == stored_key for r in earlier), now=now)
        match entry:
            case NotEntered(reason=reason):
                self.report.not_enrolled[self._not_enrolled_text(reason)] += 1
            case AlreadyEntered(stored_key=stored_key):  # as the real engine: no second run
                for existing in earlier:  # a live one sees the newer event
                    if existing.key == stored_key and existing.status in ("active", "waiting"):
                        existing.properties = dict(event.properties)
            case Enter(stored_key=stored_key):
                run = SimRun(event.contact_id, stored_key, definition.first_step_id, now, now, dict(event.properties))
                earlier.append(run)
                self.report.enrollments += 1
                self._walk(run, now)
            case _:
                assert_never(entry)

    def _not_enrolled_text(self, reason: NotEnteredBecause) -> str:
        if reason is Reason.NO_KEY:
            return f"no {self.definition.key_path!r} property"
        if reason is Reason.ENTRY_FILTER:
            return "entry filter not met"
        return f"re-entry rule {reentry_rule_text(self.definition.reentry)}"

    # --- timers -------------------------------------------------------------------
    def _fire_timers_until(self, moment: datetime) -> None:
        while self.timers and self.timers[0][0] <= moment:
            due, _, run = heapq.heappop(self.timers)
            if run.status == "waiting" and run.next_at == due:
                self._walk(run, due)

    # --- walking ------------------------------------------------------------------
    def _walk(self, run: SimRun, now: datetime) -> None:
        contact = self._contact(run.contact_id)
        outcome = advance(self.definition, run.step_id, run.entered_at, now=now, identity=f"{run.contact_id}:{run.key}",
                          timezone=contact_zone(contact.timezone, self.workspace_timezone), state=run.state,
                          facts=lambda: self._facts(contact, run.properties, now))
        run.state = outcome.state
        run.path.extend(step for step in outcome.passed if not run.path or run.path[-1] != step)
        for effect in outcome.effects:
            if isinstance(effect, PlannedSend):
                self._send(contact, effect, now)
            elif isinstance(effect, PlannedWebhook):
                self.report.webhooks += 1
            elif isinstance(effect, Branched):
                self._count_branch(effect)
        match outcome.stop:
            case Waiting(step_id=step_id, entered_at=entered_at, until=until):
                run.status, run.step_id, run.entered_at, run.next_at = "waiting", step_id, entered_at, until
                if step_id not in run.path:
                    run.path.append(step_id)
                heapq.heappush(self.timers, (until, next(self.order), run))
            case Completed():
                self._end(run, "completed", None, now)
            case Exited(step_id=step_id, reason=reason):
                run.step_id = step_id
                self._end(run, "exited", reason, now)

    def _count_branch(self, effect: Branched) -> None:
        step = self.definition.step(effect.step_id)
        if isinstance(step, SplitStep):
            self.report.arms[f"{step.id}:{effect.label}"] += 1
            if any(arm.name == effect.label and arm.holdout for arm in step.arms):
                self.report.holdouts[f"{step.id}:{effect.label}"] += 1

    def _send(self, contact: Contact, send: PlannedSend, now: datetime) -> None:
        """Route as a real send would (channels, consent, suppression, topics, quiet hours, caps
        counted within the simulation); the channel paused state of today is not replayed."""
        workspace = self.session.get_one(Workspace, self.workspace_id)
        recipient = routing.recipient_of(contact)
        sent = self.sent_by_contact.setdefault(contact.id, [])
        plan = routing.plan_send(
            candidates=routing.candidates_for(send.channel, send.fallback, recipient, None), recipient=recipient,
            transactional=send.transactional, topic=send.topic, when_capped=send.when_capped,
            template=send.template, templates=self.templates, workspace=workspace,
            zone=contact_zone(contact.timezone, workspace.timezone),
            suppressed=lambda channel, address: self.session.scalar(select(Suppression.id).where(
                Suppression.workspace_id == self.workspace_id, Suppression.channel == channel,
                Suppression.address == address)) is not None,
            paused=set(), recent=lambda: sent, now=now)
        if plan.skip_reason:
            self.report.skipped[plan.skip_reason] += 1
            return
        assert plan.channel is not None
        if not send.transactional:
            sent.append((plan.channel, plan.send_at))
        self.report.messages[plan.send_at.date().isoformat()][plan.channel] += 1

    def _end(self, run: SimRun, status: str, reason: str | None, now: datetime) -> None:
        run.status, run.exit_reason, run.ended_at, run.next_at = status, reason, now, None
        if status == "completed":
            self.report.completed += 1
        else:
            self.report.exits[reason or "exited"] += 1
        self.report.paths[tuple(run.path)].append((now - run.started_at).total_seconds())

    # --- what conditions see -------------------------------------------------------
    def _contact(self, contact_id: int) -> Contact:
        if contact_id not in self.contacts:
            self.contacts[contact_id] = self.session.get_one(Contact, contact_id)
        return self.contacts[contact_id]

    def _facts(self, contact: Contact, properties: dict[str, Any], now: datetime) -> Facts:
        history = self.history[contact.id]

        def count_events(event_type: str, since: datetime | None) -> int:
            return sum(1 for at, kind in history if kind == event_type and at <= now and (since is None or at >= since))

        return Facts(attributes=dict(contact.attributes or {}), metrics=contact_metrics(contact, now=now),
                     properties=properties, count_events=count_events, now=now)


def simulate(session: Session, workspace_id: str, definition: JourneyDefinition, *, templates: Templates,
             start: datetime, end: datetime) -> dict[str, Any]:
    """Replay [start, end) through `definition`; nothing is written or sent. `templates`: what a send's
    channels must have a template in, as for a real send."""
    return Simulation(session, workspace_id, definition, templates, start, end).run().as_json()

"""Apply what a walk decided: messages into the outbox, contact changes, webhook calls.

Each effect is keyed by (run, step): a walk repeated after a crash or by a second
worker finds the message already there and does nothing.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Unpack

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from engine.contacts.journal import JournalKind, LineFields, journal_row, record, record_run, run_row
from engine.delivery import routing
from engine.delivery.message_context import render_context
from engine.delivery.policies import address_for
from engine.delivery.templates import Templates
from engine.journeys.interpreter import PlannedSend, PlannedUpdate, PlannedWebhook
from engine.reasons import Reason
from engine.store.db import JobName, defer
from engine.store.dialect import insert_rows, insert_rows_in_order, one_of, upsert
from engine.store.models import (
    Contact,
    Event,
    JournalEntry,
    Journey,
    JourneyStatus,
    Message,
    MessageStatus,
    Run,
    Suppression,
    Workspace,
)
from engine.timezones import contact_zone


@dataclass
class Batch:
    """One batch of walks (engine.journeys.runs): what it reads, loaded once, and the journal
    lines it writes, written at once at the end.

    The session's identity map holds unmodified objects weakly: a workspace fetched with
    session.get for one run is gone by the next, and fetching it per run is a query per
    run. What is not here yet is fetched (and kept) on first use. Journal lines are kept
    as rows in the order they are recorded and inserted with one statement (`write_journal`):
    as ORM objects they cost more to build and flush than everything else a walk does.
    """

    contacts: dict[int, Contact] = field(default_factory=dict)
    workspaces: dict[str, Workspace] = field(default_factory=dict)
    events: dict[int, Event] = field(default_factory=dict)
    # (workspace id, channel, address) with a suppression, for the ones in `checked`
    suppressed: set[tuple[str, str, str]] = field(default_factory=set)
    checked: set[tuple[str, str, str]] = field(default_factory=set)
    paused: dict[str, set[str]] = field(default_factory=dict)  # workspace -> channels paused
    recent: dict[int, list[tuple[str, datetime]]] = field(default_factory=dict)  # contact -> marketing sends
    journey_status: dict[int, JourneyStatus | None] = field(default_factory=dict)
    journey_name: dict[int, str | None] = field(default_factory=dict)
    journal: list[dict[str, Any]] | None = None  # None: record each line at once (no batch)
    messages: list[_PendingMessage] = field(default_factory=list)  # inserted by write_messages
    # What a send step's channels must have a template in; every walk's batch has them
    # (runs._load_batch), one made only to record a line needs none.
    templates: Templates | None = None

    def contact(self, session: Session, contact_id: int) -> Contact:
        contact = self.contacts.get(contact_id)
        if contact is None:
            contact = self.contacts[contact_id] = session.get_one(Contact, contact_id)
        return contact

    def workspace(self, session: Session, workspace_id: str) -> Workspace:
        workspace = self.workspaces.get(workspace_id)
        if workspace is None:
            workspace = self.workspaces[workspace_id] = session.get_one(Workspace, workspace_id)
        return workspace

    def event(self, session: Session, event_id: int | None) -> Event | None:
        if event_id is None:
            return None
        event = self.events.get(event_id)
        if event is None:
            event = session.get(Event, event_id)
            if event is not None:
                self.events[event_id] = event
        return event

    def status_of(self, session: Session, journey_id: int) -> JourneyStatus | None:
        if journey_id not in self.journey_status:
            found = session.scalar(select(Journey.status).where(Journey.id == journey_id))
            self.journey_status[journey_id] = JourneyStatus(found) if found is not None else None
        return self.journey_status[journey_id]

    def name_of(self, session: Session, journey_id: int) -> str | None:
        if journey_id not in self.journey_name:
            self.journey_name[journey_id] = session.scalar(select(Journey.name).where(Journey.id == journey_id))
        return self.journey_name[journey_id]

    def is_suppressed(self, session: Session, workspace_id: str, channel: str, address: str) -> bool:
        key = (workspace_id, channel, address)
        if key not in self.checked:
            self.checked.add(key)
            if routing.is_suppressed(session, workspace_id, channel, address):
                self.suppressed.add(key)
        return key in self.suppressed

    def load_suppressions(self, session: Session, contacts: list[Contact]) -> None:
        """Check every email address of `contacts` against the suppression list in one query."""
        wanted = {(c.workspace_id, "email", c.email) for c in contacts if c.email is not None} - self.checked
        if not wanted:
            return
        self.suppressed.update((workspace_id, "email", address) for workspace_id, address in session.execute(
            select(Suppression.workspace_id, Suppression.address).where(
                Suppression.channel == "email",
                Suppression.workspace_id.in_(sorted({w for w, _, _ in wanted})),
                one_of(Suppression.address, sorted({a for _, _, a in wanted})),
            )
        ))
        self.checked |= wanted

    def paused_channels(self, session: Session, workspace_id: str) -> set[str]:
        if workspace_id not in self.paused:
            self.paused[workspace_id] = routing.paused_channels(session, workspace_id)
        return self.paused[workspace_id]

    def recent_sends(self, session: Session, contact: Contact, workspace: Workspace, *,
                     now: datetime) -> list[tuple[str, datetime]]:
        """The contact's marketing sends in the longest cap period, plus those made in this batch."""
        if contact.id not in self.recent:
            window = routing.cap_window(workspace)
            self.recent[contact.id] = [] if window is None else routing.recent_marketing(
                session, contact.id, since=now - window)
        return self.recent[contact.id]

    def note(self, session: Session, *, workspace_id: str, contact_id: int, kind: JournalKind, at: datetime,
             **fields: Unpack[LineFields]) -> None:
        """A journal line (as engine.contacts.journal.record), kept for write_journal in a batch."""
        if self.journal is None:
            record(session, workspace_id=workspace_id, contact_id=contact_id, kind=kind, at=at, **fields)
            return
        self.journal.append(journal_row(workspace_id=workspace_id, contact_id=contact_id, kind=kind, at=at,
                                        **fields))

    def note_run(self, session: Session, run: Run, kind: JournalKind, *, at: datetime,
                 **fields: Unpack[LineFields]) -> None:
        """A line about a run (as journal.record_run); its step defaults to the one the run stands on."""
        if self.journal is None:
            record_run(session, run, kind, at=at, **fields)
            return
        self.journal.append(run_row(run, kind, at=at, **fields))

    @contextmanager
    def capturing(self) -> Iterator[list[dict[str, Any]]]:
        """Keep the lines recorded inside apart (for a run not inserted yet; see add_lines)."""
        kept, captured = self.journal, list[dict[str, Any]]()
        self.journal = captured
        try:
            yield captured
        finally:
            self.journal = kept

    def add_lines(self, lines: list[dict[str, Any]], *, run_id: int) -> None:
        """Record captured lines about a run, now that it has an id."""
        assert self.journal is not None, "lines are captured only while walking a batch"
        self.journal.extend({**line, "run_id": run_id} for line in lines)

    def write_messages(self, session: Session) -> None:
        """Insert the batch's messages with one statement, in the order they were made, and hand
        out the new ones to send. One that its (run, step) had made already is left out, with
        its journal line, as a message inserted at once would have been."""
        pending, self.messages = self.messages, []
        if not pending:
            return
        made: dict[tuple[int, str], int] = {}
        assert all(set(p.row) <= set(MESSAGE_COLUMNS) for p in pending), "a message column is missing here"
        rows = [{name: p.row.get(name) for name in MESSAGE_COLUMNS} for p in pending]
        insert = insert_rows(session, MESSAGES, rows)
        for message_id, run_id, step_id in session.execute(_new_messages(insert.statement), insert.parameters):
            made[(run_id, step_id)] = message_id
        to_send = []
        for p in pending:
            message_id = made.pop((p.row["run_id"], p.row["step_id"]), None)  # a repeat in the batch: not made
            if message_id is None:
                p.line["message_id"] = _DROPPED
                continue
            p.line["message_id"] = message_id
            if p.send:
                to_send.append(message_id)
        defer(session, JobName.DISPATCH_MESSAGES, to_send)

    def write_journal(self, session: Session) -> None:
        """Insert the kept journal lines, in the order they were recorded, with one statement."""
        rows, self.journal = self.journal, ([] if self.journal is not None else None)
        rows = [row for row in rows or [] if row["message_id"] is not _DROPPED]
        if not rows:
            return
        insert_rows_in_order(session, JOURNAL, rows)


@dataclass
class _PendingMessage:
    row: dict[str, Any]  # as inserted; its context a snapshot of when it was made
    line: dict[str, Any]  # its journal line, in its place in Batch.journal
    send: bool


MESSAGE_COLUMNS = ("workspace_id", "contact_id", "run_id", "journey_id", "step_id", "channel", "template",
                   "to_address", "context", "status", "skip_reason", "attempts", "scheduled_at", "enqueued_at",
                   "created_at", "arm", "transactional", "fallback", "meta")
_DROPPED = object()  # the message_id of a journal line about a message that was not made after all


MESSAGES = typing.cast(Table, Message.__table__)
JOURNAL = typing.cast(Table, JournalEntry.__table__)


@cache
def _new_messages(insert: Any) -> Any:
    """The messages INSERT (insert_rows), skipping a (run, step) that made its message already; the new ones."""
    return insert.on_conflict_do_nothing(index_elements=["run_id", "step_id"]).returning(
        MESSAGES.c.id, MESSAGES.c.run_id, MESSAGES.c.step_id)


@contextmanager
def walking(session: Session, batch: Batch) -> Iterator[Batch]:
    """Walk `batch`: the effects given it keep their messages and journal lines in it, written at the end."""
    if batch.journal is None:
        batch.journal = []
    yield batch
    batch.write_messages(session)
    batch.write_journal(session)


def message_context(session: Session, run: Run, contact: Contact, *, batch: Batch) -> dict[str, Any]:
    workspace = batch.workspace(session, run.workspace_id)
    event = batch.event(session, run.trigger_event_id)
    return render_context(session, contact, workspace, event_type=event.type if event else None,
                          event=event.properties if event else {})


def _insert_message(session: Session, run: Run, step_id: str, values: dict[str, Any], *, batch: Batch,
                    now: datetime, skip: str | None, detail: str, reason: Reason | None = None,
                    send_at: datetime | None = None) -> int | None:
    """Insert the step's message (skipped, due now, or deferred to `send_at`) unless it exists;
    `reason`: why it was skipped, deferred or held."""
    deferred = send_at is not None and send_at > now
    row = {
        "workspace_id": run.workspace_id, "contact_id": run.contact_id, "run_id": run.id,
        "journey_id": run.journey_id, "step_id": step_id, "attempts": 0, "scheduled_at": send_at or now,
        "created_at": now, "skip_reason": skip, "enqueued_at": None if skip or deferred else now,
        "status": (MessageStatus.SKIPPED if skip else MessageStatus.SCHEDULED).value,
        "transactional": False, "fallback": {}, "meta": {}, **values,
    }
    kind = JournalKind.SKIPPED if skip else JournalKind.MESSAGE_DEFERRED if deferred else JournalKind.MESSAGE_SCHEDULED
    line = run_row(run, kind, at=now, step_id=step_id, detail=skip or detail, reason=reason, arm=values.get("arm"))
    if batch.journal is not None and run.id is not None:  # walking a batch: inserted with the others
        row["context"] = json.loads(json.dumps(row["context"]))  # as it is now, as an INSERT now would store it
        batch.journal.append(line)
        batch.messages.append(_PendingMessage(row, line, send=not skip and not deferred))
        return None
    stmt = upsert(session, Message).values(row).on_conflict_do_nothing(index_elements=["run_id", "step_id"])
    message_id: int | None = session.scalar(stmt.returning(Message.id))
    if message_id is None:
        return None  # this step already made its message
    batch.note_run(session, run, kind, at=now, step_id=step_id, message_id=message_id, detail=skip or detail,
                   reason=reason, arm=values.get("arm"))
    if not skip and not deferred:
        defer(session, JobName.DISPATCH_MESSAGES, [message_id])
    return message_id


def make_message(session: Session, run: Run, contact: Contact, send: PlannedSend, *, batch: Batch,
                 now: datetime) -> None:
    assert batch.templates is not None, "a send step is made in a walk, and a walk's batch has the templates"
    workspace = batch.workspace(session, run.workspace_id)
    context = message_context(session, run, contact, batch=batch)
    recipient = routing.recipient_of(contact)
    candidates = routing.candidates_for(send.channel, send.fallback, recipient, context["event"])
    plan = routing.plan_send(
        candidates=candidates, recipient=recipient, transactional=send.transactional, topic=send.topic,
        when_capped=send.when_capped, template=send.template, templates=batch.templates, workspace=workspace,
        zone=contact_zone(contact.timezone, workspace.timezone),
        # Transactional mail (order updates) needs no marketing consent, but never goes to a
        # suppressed (bounced, complained) address.
        suppressed=lambda channel, address: batch.is_suppressed(session, run.workspace_id, channel, address),
        paused=batch.paused_channels(session, run.workspace_id),
        recent=lambda: batch.recent_sends(session, contact, workspace, now=now), now=now,
    )
    if plan.channel is not None and not send.transactional and contact.id in batch.recent:
        batch.recent[contact.id].append((plan.channel, plan.send_at))  # counts for the next send in this batch
    values = {
        "channel": plan.channel or (candidates[0] if candidates else send.channel), "template": send.template,
        "to_address": plan.address or (address_for(candidates[0], recipient) if candidates else None),
        "arm": send.arm, "context": context, "transactional": send.transactional,
        "fallback": {"channels": list(plan.remaining)} if plan.remaining else {},
    }
    detail = plan.detail + (f" (arm {send.arm})" if send.arm else "")
    _insert_message(session, run, send.step_id, values, batch=batch, now=now, skip=plan.skip_reason, detail=detail,
                    reason=plan.reason, send_at=plan.send_at)


def make_webhook_call(session: Session, run: Run, contact: Contact, call: PlannedWebhook, *,
                      journey_name: str, batch: Batch, now: datetime) -> None:
    context = message_context(session, run, contact, batch=batch)
    body = {"journey": journey_name, "step": call.step_id, "run_id": run.id, "contact": context["contact"],
            "event": context["event"], "data": call.payload}
    values = {"channel": "webhook", "template": "webhook", "to_address": call.url, "context": body}
    _insert_message(session, run, call.step_id, values, batch=batch, now=now, skip=None, detail=f"POST {call.url}")


def update_contact(session: Session, run: Run, contact: Contact, update: PlannedUpdate, *, batch: Batch,
                   now: datetime) -> None:
    change = update.change
    attributes = dict(contact.attributes or {})
    attributes.update(change.set)
    for name in change.unset:
        attributes.pop(name, None)
    if change.add_tags or change.remove_tags:
        tags = set(attributes.get("tags") or [])
        tags |= set(change.add_tags)
        tags -= set(change.remove_tags)
        attributes["tags"] = sorted(tags)
    contact.attributes = attributes  # a new dict, so the JSON column is written
    contact.updated_at = now
    parts = [f"set {k}={v!r}" for k, v in change.set.items()] + [f"unset {k}" for k in change.unset]
    parts += [f"tag +{t}" for t in change.add_tags] + [f"tag -{t}" for t in change.remove_tags]
    batch.note_run(session, run, JournalKind.CONTACT_UPDATED, at=now, step_id=update.step_id, detail=", ".join(parts))

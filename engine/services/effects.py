"""Apply what a walk decided: messages into the outbox, contact changes, webhook calls.

Each effect is keyed by (run, step): a walk repeated after a crash or by a second
worker finds the message already there and does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db import defer, dialect_insert
from engine.interpreter import PlannedSend, PlannedUpdate, PlannedWebhook
from engine.models import Contact, Event, Message, MessageStatus, Run, Suppression, Workspace
from engine.policies import email_skip_reason
from engine.services.journal import record


@dataclass
class Lookups:
    """Rows a batch of walks reads, loaded once per batch (engine.services.runs) and held here.

    The session's identity map holds unmodified objects weakly: a workspace fetched with
    session.get for one run is gone by the next, and fetching it per run is a query per
    run. Whatever is not here yet is fetched (and kept) on first use.
    """

    contacts: dict[int, Contact] = field(default_factory=dict)
    workspaces: dict[str, Workspace] = field(default_factory=dict)
    events: dict[int, Event] = field(default_factory=dict)
    # (workspace id, address) pairs with an email suppression, for the addresses in `checked`
    suppressed: set[tuple[str, str]] = field(default_factory=set)
    checked: set[tuple[str, str]] = field(default_factory=set)

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

    def is_suppressed(self, session: Session, workspace_id: str, address: str) -> bool:
        if (workspace_id, address) not in self.checked:
            self.checked.add((workspace_id, address))
            found = session.scalar(select(Suppression.id).where(
                Suppression.workspace_id == workspace_id, Suppression.channel == "email",
                Suppression.address == address))
            if found is not None:
                self.suppressed.add((workspace_id, address))
        return (workspace_id, address) in self.suppressed

    def load_suppressions(self, session: Session, contacts: list[Contact]) -> None:
        """Check every address of `contacts` against the suppression list in one query."""
        wanted = {(c.workspace_id, c.email) for c in contacts if c.email is not None} - self.checked
        if not wanted:
            return
        self.suppressed.update(session.execute(
            select(Suppression.workspace_id, Suppression.address).where(
                Suppression.channel == "email",
                Suppression.workspace_id.in_(sorted({w for w, _ in wanted})),
                Suppression.address.in_(sorted({a for _, a in wanted})),
            )
        ).tuples())
        self.checked |= wanted


_LOOKUPS = "rapport.lookups"


def lookups(session: Session) -> Lookups:
    """The lookups of the batch being walked in this session, or fresh ones (a query per row)."""
    found = session.info.get(_LOOKUPS)
    return found if isinstance(found, Lookups) else Lookups()


@contextmanager
def batch_lookups(session: Session, batch: Lookups) -> Iterator[Lookups]:
    """Let the effects of the walks inside read from `batch`."""
    session.info[_LOOKUPS] = batch
    try:
        yield batch
    finally:
        session.info.pop(_LOOKUPS, None)


def message_context(session: Session, run: Run, contact: Contact) -> dict[str, Any]:
    found = lookups(session)
    workspace = found.workspace(session, run.workspace_id)
    event = found.event(session, run.trigger_event_id)
    return {
        "contact": {
            "external_id": contact.external_id, "email": contact.email, "first_name": contact.first_name,
            "last_name": contact.last_name, "locale": contact.locale, "attributes": contact.attributes,
            "loyalty_tier": contact.loyalty_tier,
        },
        "event": event.properties if event else {},
        "workspace": {"id": workspace.id, "name": workspace.name},
    }


def _insert_message(session: Session, run: Run, step_id: str, values: dict[str, Any], *, now: datetime,
                    skip: str | None, detail: str) -> int | None:
    row = {
        "workspace_id": run.workspace_id, "contact_id": run.contact_id, "run_id": run.id,
        "journey_id": run.journey_id, "step_id": step_id, "attempts": 0, "scheduled_at": now,
        "created_at": now, "skip_reason": skip, "enqueued_at": None if skip else now,
        "status": (MessageStatus.SKIPPED if skip else MessageStatus.SCHEDULED).value, **values,
    }
    stmt = dialect_insert(session, Message).values(row).on_conflict_do_nothing(index_elements=["run_id", "step_id"])
    message_id: int | None = session.scalar(stmt.returning(Message.id))
    if message_id is None:
        return None  # this step already made its message
    record(session, workspace_id=run.workspace_id, contact_id=run.contact_id, run_id=run.id, step_id=step_id,
           message_id=message_id, kind="skipped" if skip else "message_scheduled", at=now, detail=skip or detail)
    if not skip:
        defer(session, "dispatch_messages", [message_id])
    return message_id


def make_message(session: Session, run: Run, contact: Contact, send: PlannedSend, *, now: datetime) -> None:
    suppressed = contact.email is not None and lookups(session).is_suppressed(session, run.workspace_id,
                                                                               contact.email)
    # Transactional mail (order updates) needs no marketing consent, but never goes to a
    # suppressed (bounced, complained) address.
    consent = {} if send.transactional else contact.consent
    skip = email_skip_reason(contact.email, consent, suppressed=suppressed)
    values = {
        "channel": send.channel, "template": send.template, "to_address": contact.email, "arm": send.arm,
        "context": message_context(session, run, contact),
    }
    _insert_message(session, run, send.step_id, values, now=now, skip=skip,
                    detail=f"{send.channel}: {send.template}" + (f" (arm {send.arm})" if send.arm else ""))


def make_webhook_call(session: Session, run: Run, contact: Contact, call: PlannedWebhook, *,
                      journey_name: str, now: datetime) -> None:
    context = message_context(session, run, contact)
    body = {"journey": journey_name, "step": call.step_id, "run_id": run.id, "contact": context["contact"],
            "event": context["event"], "data": call.payload}
    values = {"channel": "webhook", "template": "webhook", "to_address": call.url, "context": body}
    _insert_message(session, run, call.step_id, values, now=now, skip=None, detail=f"POST {call.url}")


def update_contact(session: Session, run: Run, contact: Contact, update: PlannedUpdate, *, now: datetime) -> None:
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
    record(session, workspace_id=run.workspace_id, contact_id=run.contact_id, run_id=run.id,
           step_id=update.step_id, kind="contact_updated", at=now, detail=", ".join(parts))

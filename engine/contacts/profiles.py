"""Contacts: profile, timeline (why everything happened), and erasure."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from engine.channels import CHANNELS
from engine.errors import NotFound
from engine.store.models import Contact, Erasure, Event, JournalEntry, Journey, Message, OutboxCapture, Run


def get_contact(session: Session, workspace_id: str, external_id: str) -> Contact:
    contact = session.scalar(
        select(Contact).where(Contact.workspace_id == workspace_id, Contact.external_id == external_id)
    )
    if contact is None:
        raise NotFound(f"no contact with external_id {external_id!r}")
    return contact


def profile(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "external_id": contact.external_id,
        "email": contact.email,
        "phone": contact.phone,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "timezone": contact.timezone,
        "locale": contact.locale,
        "birthday": contact.birthday,
        "attributes": contact.attributes,
        "messenger_ids": contact.messenger_ids,
        "consent": {channel: contact.consent.get(channel, "unknown")
                    for channel in CHANNELS},
        # When, how and by whom each channel's state was set (engine.contacts.consent); channels set
        # before these records were kept, or never set, are absent.
        "consent_records": dict(contact.consent_records or {}),
        "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
        "metrics": metrics_of(contact),
    }


CENTS = Decimal("0.01")


def metrics_of(contact: Contact) -> dict[str, Any]:
    """Money as decimal strings ("1234.50"), exact in JSON; no orders means no average."""
    orders = contact.orders_count or 0
    spent = Decimal(contact.total_spent or 0).quantize(CENTS)
    average = (spent / orders).quantize(CENTS, ROUND_HALF_UP) if orders else None

    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "orders_count": orders,
        "total_spent": str(spent),
        "average_order_value": str(average) if average is not None else None,
        "lifetime_value": str(spent),  # historic: what they have spent so far
        "first_order_at": moment(contact.first_order_at),
        "last_order_at": moment(contact.last_order_at),
        "last_activity_at": moment(contact.last_activity_at),
        "loyalty_tier": contact.loyalty_tier,
    }


def timeline(session: Session, workspace_id: str, external_id: str, *, limit: int = 500) -> list[dict[str, Any]]:
    """Events, journey decisions and messages of one contact, oldest first.

    Entries of the same instant (a fake clock, or one walk writing enrolled and waiting)
    keep the order they were written in: events before the decisions they caused, then
    by id, which both databases hand out in insertion order (SQLite AUTOINCREMENT, a
    PostgreSQL sequence; the batched journal INSERT keeps its rows' order).
    """
    contact = get_contact(session, workspace_id, external_id)
    items: list[tuple[datetime, int, int, dict[str, Any]]] = []
    for event in session.scalars(
        select(Event).where(Event.contact_id == contact.id).order_by(Event.occurred_at.desc()).limit(limit)
    ):
        items.append((event.occurred_at, 0, event.id, {
            "kind": "event", "at": event.occurred_at.isoformat(), "type": event.type,
            "event_id": event.external_id, "properties": event.properties,
        }))
    journeys = dict(session.execute(select(Journey.id, Journey.name).where(Journey.workspace_id == workspace_id)).all())
    runs = {r.id: r for r in session.scalars(select(Run).where(Run.contact_id == contact.id))}
    for entry in session.scalars(
        select(JournalEntry).where(JournalEntry.contact_id == contact.id).order_by(JournalEntry.id.desc()).limit(limit)
    ):
        run = runs.get(entry.run_id) if entry.run_id else None
        items.append((entry.at, 1, entry.id, {
            "kind": entry.kind, "at": entry.at.isoformat(), "run_id": entry.run_id,
            "journey": journeys.get(run.journey_id) if run else None, "step": entry.step_id,
            "message_id": entry.message_id, "detail": entry.detail,
            "label": entry.label, "reason": entry.reason, "arm": entry.arm, "goal": entry.goal,
        }))
    items.sort(key=lambda item: item[:3])
    return [item for *_, item in items]


def runs_of(session: Session, contact: Contact) -> list[dict[str, Any]]:
    journeys = dict(session.execute(select(Journey.id, Journey.name).where(
        Journey.workspace_id == contact.workspace_id)).all())
    return [
        {"id": run.id, "journey": journeys.get(run.journey_id), "key": run.key, "status": run.status,
         "step": run.step_id, "next_at": run.next_at.isoformat() if run.next_at else None,
         "exit_reason": run.exit_reason, "created_at": run.created_at.isoformat()}
        for run in session.scalars(select(Run).where(Run.contact_id == contact.id).order_by(Run.id))
    ]


def messages_of(session: Session, contact: Contact) -> list[dict[str, Any]]:
    return [
        {"id": m.id, "channel": m.channel, "template": m.template, "status": m.status, "to": m.to_address,
         "subject": m.subject, "skip_reason": m.skip_reason, "error": m.error, "step": m.step_id,
         "transactional": m.transactional, "arm": m.arm, "details": m.meta or {},
         **{name: (at.isoformat() if at else None) for name, at in (
             ("scheduled_at", m.scheduled_at), ("sent_at", m.sent_at), ("delivered_at", m.delivered_at),
             ("opened_at", m.opened_at), ("clicked_at", m.clicked_at))}}
        for m in session.scalars(select(Message).where(Message.contact_id == contact.id).order_by(Message.id))
    ]


def reviews_of(session: Session, contact: Contact) -> list[dict[str, Any]]:
    """The contact's ratings per order, newest first, with any comments they left."""
    reviews: dict[str, dict[str, Any]] = {}
    for event in session.scalars(
        select(Event).where(Event.contact_id == contact.id, Event.type.in_(["review_submitted", "review_comment"]))
        .order_by(Event.occurred_at.desc())
    ):
        order_id = str(event.properties.get("order_id", ""))
        review = reviews.setdefault(order_id, {"order_id": order_id, "score": None, "comments": [], "at": None})
        if event.type == "review_submitted" and review["score"] is None:
            review["score"], review["at"] = event.properties.get("score"), event.occurred_at.isoformat()
        elif event.type == "review_comment" and event.properties.get("comment"):
            review["comments"].append(event.properties["comment"])
    return list(reviews.values())


def subject_digest(secret_key: str, workspace_id: str, external_id: str) -> str:
    return hmac.new(secret_key.encode(), f"{workspace_id}:{external_id}".encode(), hashlib.sha256).hexdigest()


def erase_contact(session: Session, workspace_id: str, external_id: str, *, secret_key: str,
                  now: datetime) -> dict[str, int]:
    """Delete a contact and everything that holds their data; keep a data-free record."""
    contact = get_contact(session, workspace_id, external_id)
    counts: dict[str, int] = {}
    for name, model in (("events", Event), ("messages", Message), ("runs", Run)):
        count = select(func.count()).select_from(model).where(model.contact_id == contact.id)
        counts[name] = session.scalar(count) or 0
    message_ids = select(Message.id).where(Message.contact_id == contact.id).scalar_subquery()
    session.execute(delete(OutboxCapture).where(OutboxCapture.workspace_id == workspace_id,
                                                OutboxCapture.message_id.in_(message_ids)))
    for table in (JournalEntry, Message, Run, Event):
        session.execute(delete(table).where(table.contact_id == contact.id))
    session.delete(contact)
    session.add(Erasure(workspace_id=workspace_id, erased_at=now, counts=counts,
                        subject_digest=subject_digest(secret_key, workspace_id, external_id)))
    return counts

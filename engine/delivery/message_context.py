"""What a template is given to render one message: the contact, the event that started it, the workspace.

One home for it, because two paths render templates and must agree: a journey's send step
(engine/journeys/effects.py) stores this on the message it writes, and a template preview
(engine/delivery/template_previews.py) builds the same for a chosen contact and a sample
event, so what a marketer previews is what the contact will get. The outgoing message adds
its signed links at send time (engine/delivery/outgoing.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.store.models import Contact, Event, Workspace

# Bots answering a message ("status?") are given the contact's last order.
REPLY_EVENT = "message_received"
ORDER_STATUS = {"order_placed": "placed", "order_paid": "paid", "order_fulfilled": "shipped",
                "order_shipped": "shipped", "order_delivered": "delivered", "order_cancelled": "cancelled",
                "order_refunded": "refunded"}


def render_context(session: Session, contact: Contact, workspace: Workspace, *, event_type: str | None,
                    event: dict[str, Any]) -> dict[str, Any]:
    """`event`: the properties of the event the journey was entered by ({} for none)."""
    return {
        "contact": contact_fields(contact),
        "event": event,
        "workspace": {"id": workspace.id, "name": workspace.name},
        # Other sends do not pay for the query.
        **({"last_order": last_order(session, contact.id)} if event_type == REPLY_EVENT else {}),
    }


def contact_fields(contact: Contact) -> dict[str, Any]:
    """What a template sees of its contact: `contact.first_name` and the rest."""
    return {
        "external_id": contact.external_id, "email": contact.email, "first_name": contact.first_name,
        "last_name": contact.last_name, "locale": contact.locale, "attributes": contact.attributes,
        "loyalty_tier": contact.loyalty_tier,
    }


def last_order(session: Session, contact_id: int) -> dict[str, Any] | None:
    """The contact's latest order event, as {order_id, status, total, currency, occurred_at}."""
    found = session.execute(
        select(Event.type, Event.properties, Event.occurred_at).where(
            Event.contact_id == contact_id, Event.type.in_(list(ORDER_STATUS)))
        .order_by(Event.occurred_at.desc(), Event.id.desc()).limit(1)).first()
    if found is None:
        return None
    kind, properties, at = found
    return {"order_id": properties.get("order_id"), "status": ORDER_STATUS[kind], "total": properties.get("total"),
            "currency": properties.get("currency"), "occurred_at": at.isoformat()}

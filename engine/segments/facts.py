"""What conditions may ask about a contact: attributes, metrics, the trigger event, history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.segments.conditions import Facts
from engine.store.models import Contact, Event


def contact_metrics(contact: Contact, *, now: datetime) -> dict[str, Any]:
    orders = contact.orders_count or 0
    spent = float(contact.total_spent or 0)

    def days_since(moment: datetime | None) -> float | None:
        return None if moment is None else (now - moment).total_seconds() / 86400

    return {
        "orders_count": orders,
        "total_spent": spent,
        "average_order_value": round(spent / orders, 2) if orders else 0.0,
        "loyalty_tier": contact.loyalty_tier,
        "days_since_last_order": days_since(contact.last_order_at),
        "days_since_last_activity": days_since(contact.last_activity_at),
    }


def gather_facts(session: Session, contact: Contact, properties: dict[str, Any], *, now: datetime) -> Facts:
    def count_events(event_type: str, since: datetime | None) -> int:
        query = select(func.count()).select_from(Event).where(
            Event.contact_id == contact.id, Event.type == event_type, Event.occurred_at <= now
        )
        if since is not None:
            query = query.where(Event.occurred_at >= since)
        return session.scalar(query) or 0

    return Facts(
        attributes=dict(contact.attributes or {}),
        metrics=contact_metrics(contact, now=now),
        properties=properties,
        count_events=count_events,
        now=now,
    )


def lazy(make: Callable[[], Facts]) -> Callable[[], Facts]:
    """Gather facts once, on first use: most walks never ask."""
    cache: list[Facts] = []

    def get() -> Facts:
        if not cache:
            cache.append(make())
        return cache[0]

    return get

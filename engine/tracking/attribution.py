"""Revenue attribution: an order is credited to the message that last drew the contact in.

For each `order_placed`, the message whose click came last within the click window
before the order (default 5 days) gets the order, its revenue and currency, with the
message's journey, step, split arm and channel; without such a click, the message
opened last within the open window (default 1 day), as an "open" touch. Windows are
per workspace: settings["attribution"] = {"click_days": 5, "open_days": 1}.

Touches are the receipts of opens and clicks (engine/tracking/receipts.py), which keep
every first open of a message and every first click of each of its links, whether
they moved the message's status or came late.

Set-based: one query reads the batch's orders (revenue computed in SQL the way
metrics computes it), one reads the touches of all their contacts, and one statement
inserts the attributions. Idempotent: `attributions.order_event_id` is unique (a
re-evaluated order is not attributed twice), and an order_placed repeating an order
id that is attributed already (a shop's webhook sent twice under two ids) is skipped.
"""

from __future__ import annotations

import typing
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, and_, exists, func, select
from sqlalchemy.orm import Session

from engine.contacts.metrics import ORDER_PLACED, order_amount, order_key  # the order total as metrics counts it
from engine.store.dialect import upsert
from engine.store.models import Attribution, Event, Message, MessageReceipt, Workspace

DEFAULT_CLICK_DAYS = 5.0
DEFAULT_OPEN_DAYS = 1.0
MAX_WINDOW_DAYS = 90.0

events = typing.cast(Table, Event.__table__)


@dataclass(frozen=True)
class Windows:
    click: timedelta
    open: timedelta


def attribution_windows(settings: dict[str, Any] | None) -> Windows:
    """The workspace's windows; a missing or unusable value falls back to its default."""
    chosen = (settings or {}).get("attribution")
    chosen = chosen if isinstance(chosen, dict) else {}

    def days(name: str, default: float) -> timedelta:
        value = chosen.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_WINDOW_DAYS:
            return timedelta(days=float(value))
        return timedelta(days=default)

    return Windows(days("click_days", DEFAULT_CLICK_DAYS), days("open_days", DEFAULT_OPEN_DAYS))


@dataclass(frozen=True)
class _Order:
    event_id: int
    workspace_id: str
    contact_id: int
    occurred_at: datetime
    revenue: Decimal
    currency: str | None


@dataclass(frozen=True)
class _Touch:
    at: datetime
    touch: str  # click | open
    message_id: int
    journey_id: int | None
    step_id: str | None
    arm: str | None
    channel: str


def attribute_orders(session: Session, event_ids: list[int], *, now: datetime) -> int:
    """Attribute the `order_placed` events among `event_ids`; return how many were attributed now."""
    orders = _orders(session, event_ids)
    if not orders:
        return 0
    windows = {workspace_id: attribution_windows(settings) for workspace_id, settings in session.execute(
        select(Workspace.id, Workspace.settings).where(Workspace.id.in_({o.workspace_id for o in orders})))}
    longest = max(max(w.click, w.open) for w in windows.values())
    touches = _touches(session, orders, since=min(o.occurred_at for o in orders) - longest)
    rows = []
    for order in orders:
        touch = _last_touch(touches.get(order.contact_id, []), order, windows[order.workspace_id])
        if touch is not None:
            rows.append({
                "workspace_id": order.workspace_id, "order_event_id": order.event_id, "message_id": touch.message_id,
                "contact_id": order.contact_id, "journey_id": touch.journey_id, "step_id": touch.step_id,
                "arm": touch.arm, "channel": touch.channel, "touch": touch.touch, "revenue": order.revenue,
                "currency": order.currency, "attributed_at": now,
            })
    if not rows:
        return 0
    stmt = upsert(session, Attribution).on_conflict_do_nothing(index_elements=["order_event_id"])
    return len(list(session.scalars(stmt.returning(Attribution.id), rows)))


def _orders(session: Session, event_ids: list[int]) -> list[_Order]:
    """The batch's orders, first of each order id only, not attributed before under another event."""
    if not event_ids:
        return []
    prior = events.alias("prior")
    attributed_before = exists().where(
        prior.c.contact_id == events.c.contact_id, prior.c.type == ORDER_PLACED, prior.c.id != events.c.id,
        order_key(prior) == order_key(events),
        exists().where(Attribution.order_event_id == prior.c.id))
    currency = func.upper(func.substr(events.c.properties["currency"].as_string(), 1, 3))
    rows = session.execute(
        select(events.c.id, events.c.workspace_id, events.c.contact_id, events.c.occurred_at,
               order_amount(events), currency, order_key(events))
        .where(events.c.id.in_(event_ids), events.c.type == ORDER_PLACED, ~attributed_before)
        .order_by(events.c.occurred_at, events.c.id))
    orders, seen = [], set()
    for event_id, workspace_id, contact_id, occurred_at, amount, code, key in rows:
        if key is not None and (contact_id, key) in seen:  # the same order twice in one batch
            continue
        seen.add((contact_id, key))
        orders.append(_Order(event_id, workspace_id, contact_id, occurred_at, Decimal(str(amount or 0)),
                             code if code and len(code) == 3 and code.isalpha() else None))
    return orders


def _touches(session: Session, orders: list[_Order], *, since: datetime) -> dict[int, list[_Touch]]:
    """Opens and clicks of the orders' contacts since `since`, by contact: one query for the batch."""
    until = max(o.occurred_at for o in orders)
    found: dict[int, list[_Touch]] = defaultdict(list)
    for contact_id, at, status, message_id, journey_id, step_id, arm, channel in session.execute(
        select(Message.contact_id, MessageReceipt.occurred_at, MessageReceipt.status, Message.id, Message.journey_id,
               Message.step_id, Message.arm, Message.channel)
        .join(MessageReceipt, MessageReceipt.message_id == Message.id)
        .where(Message.contact_id.in_({o.contact_id for o in orders}),
               Message.workspace_id.in_({o.workspace_id for o in orders}),
               MessageReceipt.status.in_(("opened", "clicked")),
               and_(MessageReceipt.occurred_at >= since, MessageReceipt.occurred_at <= until))
    ):
        touch = "click" if status == "clicked" else "open"
        found[contact_id].append(_Touch(at, touch, message_id, journey_id, step_id, arm, channel))
    return found


def _last_touch(touches: list[_Touch], order: _Order, windows: Windows) -> _Touch | None:
    """The latest click in the click window, else the latest open in the open window."""
    for kind, window in (("click", windows.click), ("open", windows.open)):
        eligible = [t for t in touches if t.touch == kind and order.occurred_at - window <= t.at <= order.occurred_at]
        if eligible:
            return max(eligible, key=lambda t: (t.at, t.message_id))
    return None

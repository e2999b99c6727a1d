"""Contact metrics, kept current from events in SQL; loyalty tiers follow total spent.

Each batch of events moves each contact it touches with one grouped UPDATE ... FROM
... RETURNING (PostgreSQL, and SQLite >= 3.35): the batch is aggregated per contact in
SQL, so the cost does not grow with a query per event. Only order events ask about the
contact's earlier events (once per order, through the (contact_id, occurred_at) index).

What the metrics mean, as a function of the set of events applied so far (so the
order events arrive in does not change the result, except that of two order_placed
for one order with different totals, the first applied is the one counted):
- `last_activity_at`: the latest `occurred_at` of any event except the ones Rapport
  makes itself (`loyalty_tier_changed`).
- `orders_count`, `total_spent`: orders placed and not cancelled or refunded. An
  `order_placed` counts once per `properties.order_id` (a repeat of the same order is
  not a second order); one without an order id always counts. Its `properties.total`
  is added (a number, or a plain decimal string such as "59.90"; anything else, or a
  negative or absurd amount, adds 0 but the order still counts). `order_cancelled` or
  `order_refunded` naming a counted order takes that order out, once; naming an order
  not seen yet, it keeps the order from counting when it arrives. A refund is taken
  as the whole order: partial refunds need their own event type, which this ignores.
- `first_order_at`, `last_order_at`: the earliest and latest `order_placed`, cancelled
  or not (when the contact last ordered, not what they kept).
- Average order value and historic lifetime value are derived: total_spent / orders_count
  and total_spent (engine.contacts.profiles.profile).

Exactly once: `apply_events` claims only events whose `evaluated_at IS NULL`, locking
them (FOR UPDATE SKIP LOCKED), and returns the ids it claimed; the caller
(workers.jobs.evaluate_events) then hands exactly those ids to
engine.journeys.runs.evaluate_events in the same transaction, which stamps
`evaluated_at` on each of them. The metrics change and the stamp commit together or
not at all, and while the transaction runs no other worker can claim those rows, so an
event is counted exactly once however often its job runs. This holds as long as
runs.evaluate_events stamps every unevaluated event it is given (tests guard it).

Loyalty: the returned totals are placed in the workspace's tiers (engine.contacts.loyalty); a
contact whose tier changes gets it stored (one UPDATE per tier reached) and a
`loyalty_tier_changed` event (from, to, direction, total_spent, orders_count) that is
evaluated like any event, so journeys can start on it. A contact's first placement in
the lowest tier is stored without an event. Tiers move only when a contact's metrics
do; after the tier settings change, `rebuild_metrics` re-places them (silently).

Pre-existing events (evaluated before these metrics existed) are counted by
`rebuild_metrics`, which recomputes contacts from their evaluated events.
"""

from __future__ import annotations

import logging
import typing
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Numeric,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from engine.contacts.loyalty import is_upgrade, tier_for, workspace_tiers
from engine.errors import FieldErrors
from engine.store.db import JobName, defer
from engine.store.dialect import json_type_in, one_of, upsert, without_jit
from engine.store.models import Contact, Event, Workspace

log = logging.getLogger(__name__)

ORDER_PLACED = "order_placed"
ORDER_REVERSALS = ("order_cancelled", "order_refunded")
LOYALTY_TIER_CHANGED = "loyalty_tier_changed"
NOT_ACTIVITY = (LOYALTY_TIER_CHANGED,)  # events Rapport makes itself
# A plain decimal amount below 10^10 (total_spent is NUMERIC(14, 2)); anything else adds 0.
AMOUNT_PATTERN = r"^[0-9]{1,10}(\.[0-9]+)?$"

events = typing.cast(Table, Event.__table__)
contacts = typing.cast(Table, Contact.__table__)


def apply_events(session: Session, event_ids: Sequence[int], *, now: datetime) -> list[int]:
    """Count the not yet evaluated events of `event_ids` into their contacts' metrics.

    Returns the ids claimed (locked, unevaluated); the caller must have them stamped
    `evaluated_at` in this same transaction (see the module docstring). Contacts whose
    loyalty tier changes get the new tier and a `loyalty_tier_changed` event, which is
    deferred for evaluation like any other.
    """
    claimed = list(session.scalars(_claim(), {"ids": list(event_ids)}))
    if claimed:
        # The planner prices the per-order subqueries as if every event ran them: the update passed
        # jit_above_cost and spent 44 ms compiling to run for 8 ms (500 events).
        without_jit(session)
        params = {"ids": claimed}
        session.execute(_lock_contacts(BATCH), params)
        changed = [tuple(row) for row in session.execute(_add_up(BATCH), params)]
        _move_tiers(session, changed, BATCH, params, now=now)
    return claimed


def rebuild_metrics(session: Session, contact_ids: Sequence[int], *, now: datetime) -> None:
    """Recompute contacts' metrics and tiers from all their evaluated events.

    For contacts whose events were evaluated before metrics existed (a backfill after
    upgrading), and to check the running totals. Tiers are set without
    `loyalty_tier_changed` events: a backfill must not start journeys for everyone.
    Runs in the caller's transaction, with the contacts locked as evaluation locks them.
    """
    without_jit(session)
    params = {"ids": list(contact_ids)}
    of_contacts = one_of(contacts.c.id, name="ids")
    session.execute(_lock_contacts(HISTORY), params)
    session.execute(update(contacts).where(of_contacts).values(
        orders_count=0, total_spent=0, first_order_at=None, last_order_at=None, last_activity_at=None), params)
    session.execute(_add_up(HISTORY), params)
    everyone = [tuple(row) for row in session.execute(select(
        contacts.c.id, contacts.c.workspace_id, contacts.c.orders_count, contacts.c.total_spent,
        contacts.c.loyalty_tier).where(of_contacts), params)]
    _move_tiers(session, everyone, HISTORY, params, now=now)


# Which events a statement adds up, given the parameter `ids`:
BATCH = "batch"  # events by id, not yet evaluated; the contacts' evaluated events are counted already
HISTORY = "history"  # every evaluated event of the contacts with these ids (a rebuild)


def _chosen(scope: str) -> ColumnElement[bool]:
    if scope == BATCH:  # claimed already; IS NULL again so that no slip can count an event twice
        return and_(one_of(events.c.id, name="ids"), events.c.evaluated_at.is_(None))
    return and_(one_of(events.c.contact_id, name="ids"), events.c.evaluated_at.is_not(None))


@cache
def _claim() -> Any:
    """The unevaluated events among :ids, locked; ones another worker holds are left to it."""
    return (select(events.c.id).where(one_of(events.c.id, name="ids"), events.c.evaluated_at.is_(None))
            .order_by(events.c.id).with_for_update(skip_locked=True))


@cache
def _lock_contacts(scope: str) -> Any:
    """Lock in id order, so two workers touching the same contacts queue instead of deadlocking."""
    touched = select(events.c.contact_id).where(_chosen(BATCH)) if scope == BATCH else None
    which = contacts.c.id.in_(touched) if touched is not None else one_of(contacts.c.id, name="ids")
    return select(contacts.c.id).where(which).order_by(contacts.c.id).with_for_update()


def order_key(table: Any) -> Any:
    """`properties.order_id` of an events table (or alias), NULL when missing or empty."""
    return func.nullif(table.c.properties["order_id"].as_string(), "")


def order_amount(table: Any) -> Any:
    """`properties.total` as money when it is a plain non-negative amount (number or text), else 0."""
    total = func.trim(table.c.properties["total"].as_string())
    usable = and_(json_type_in(table.c.properties, "total", ["number", "string"]), total.regexp_match(AMOUNT_PATTERN))
    return case((usable, func.round(cast(total, Numeric(14, 2)), 2)), else_=literal(0))


@cache
def _add_up(scope: str) -> Any:
    """UPDATE the contacts by what the scope's events add; RETURNING (id, workspace, orders, spent, tier).

    Built once per scope: building it costs more than running it.
    Shaped for PostgreSQL's planner: what earlier batches said about an order is asked
    once per order (the first event of its kind in the batch), as a scalar aggregate
    subquery, which PostgreSQL runs as an index lookup on the contact's events. As
    EXISTS it became a hashed subplan that scans every order event of the table.
    """
    this_order = order_key(events)
    kind = case((events.c.type.in_(ORDER_REVERSALS), "reversal"), else_=events.c.type)
    is_reversal = case((events.c.type.in_(ORDER_REVERSALS), 1), else_=0)
    batch = select(
        events.c.contact_id, events.c.type, events.c.occurred_at,
        this_order.label("order_key"),
        case((events.c.type == ORDER_PLACED, order_amount(events)), else_=literal(0)).label("amount"),
        # 1 for the first order_placed (or the first cancellation/refund) of an order in the batch
        func.row_number().over(partition_by=(events.c.contact_id, this_order, kind),
                               order_by=(events.c.occurred_at, events.c.id)).label("nth"),
        func.max(is_reversal).over(partition_by=(events.c.contact_id, this_order)).label("reversed_now"),
    ).where(_chosen(scope), events.c.type.not_in(NOT_ACTIVITY)).subquery("batch")

    prior = events.alias("prior")  # the contact's events about the same order, counted before
    about_order = and_(prior.c.contact_id == batch.c.contact_id, prior.c.evaluated_at.is_not(None),
                       prior.c.type.in_((ORDER_PLACED, *ORDER_REVERSALS)), order_key(prior) == batch.c.order_key)
    # 1: placed before, 2: cancelled or refunded before, 3: both, NULL: neither
    seen_before = select(
        func.max(case((prior.c.type == ORDER_PLACED, 1), else_=0))
        + 2 * func.max(case((prior.c.type.in_(ORDER_REVERSALS), 1), else_=0))
    ).where(about_order).scalar_subquery()
    asks = and_(batch.c.order_key.is_not(None), batch.c.nth == 1, batch.c.type.in_((ORDER_PLACED, *ORDER_REVERSALS)))
    # a rebuild has no "before": the whole history is the batch
    before = case((asks, seen_before), else_=null()) if scope == BATCH else cast(null(), Integer)
    with_history = select(batch, before.label("before")).subquery("with_history")

    e = with_history.c
    orders = case(
        (and_(e.type == ORDER_PLACED, e.order_key.is_(None)), 1),
        (and_(e.type == ORDER_PLACED, e.nth == 1, e.reversed_now == 0, func.coalesce(e.before, 0) == 0), 1),
        (and_(e.type.in_(ORDER_REVERSALS), e.nth == 1, e.before == 1), -1),
        else_=0,
    )
    per_event = select(with_history, orders.label("orders")).subquery("per_event")
    # What a reversal takes out: the amount of the order_placed that was counted (the first applied).
    counted_amount = (
        select(order_amount(prior))
        .where(prior.c.contact_id == per_event.c.contact_id, prior.c.type == ORDER_PLACED,
               prior.c.evaluated_at.is_not(None), order_key(prior) == per_event.c.order_key)
        .order_by(prior.c.evaluated_at, prior.c.occurred_at, prior.c.id)
        .limit(1)
        .scalar_subquery()
    )
    amount = case((per_event.c.orders == 1, per_event.c.amount),
                  (per_event.c.orders == -1, -counted_amount), else_=literal(0))
    placed_at = case((per_event.c.type == ORDER_PLACED, per_event.c.occurred_at), else_=null())
    delta = select(
        per_event.c.contact_id,
        func.max(per_event.c.occurred_at).label("active_at"),
        func.sum(per_event.c.orders).label("orders"),
        func.sum(amount).label("spent"),
        func.min(placed_at).label("first_order"),
        func.max(placed_at).label("last_order"),
    ).group_by(per_event.c.contact_id).subquery("delta")

    def later(current: Any, new: Any) -> Any:
        return case((and_(new.is_not(None), or_(current.is_(None), new > current)), new), else_=current)

    def sooner(current: Any, new: Any) -> Any:
        return case((and_(new.is_not(None), or_(current.is_(None), new < current)), new), else_=current)

    orders_count = contacts.c.orders_count + delta.c.orders
    spent = func.round(contacts.c.total_spent + delta.c.spent, 2)
    return (
        update(contacts)
        .where(contacts.c.id == delta.c.contact_id)
        .values(
            # Never below zero, even when a reversal names an order counted before
            # metrics existed (rebuild_metrics puts such contacts right).
            orders_count=case((orders_count < 0, 0), else_=orders_count),
            total_spent=case((spent < 0, 0), else_=spent),
            first_order_at=sooner(contacts.c.first_order_at, delta.c.first_order),
            last_order_at=later(contacts.c.last_order_at, delta.c.last_order),
            last_activity_at=later(contacts.c.last_activity_at, delta.c.active_at),
        )
        .returning(contacts.c.id, contacts.c.workspace_id, contacts.c.orders_count, contacts.c.total_spent,
                   contacts.c.loyalty_tier)
    )


@dataclass(frozen=True)
class TierChange:
    contact_id: int
    workspace_id: str
    before: str
    after: str
    direction: str  # up | down
    orders_count: int
    total_spent: Decimal


def _move_tiers(session: Session, rows: list[tuple[Any, ...]], scope: str, params: dict[str, Any], *,
                now: datetime) -> None:
    """Give each contact the tier its total spent reaches; announce changes as events."""
    if not rows:
        return
    settings: dict[str, dict[str, Any]] = {
        workspace_id: value for workspace_id, value in session.execute(
            select(Workspace.id, Workspace.settings).where(Workspace.id.in_(sorted({row[1] for row in rows}))))
    }
    moves: dict[str, list[int]] = defaultdict(list)
    changes: list[TierChange] = []
    for contact_id, workspace_id, orders_count, total_spent, stored in rows:
        try:
            tiers = workspace_tiers(settings.get(workspace_id))
        except FieldErrors as exc:  # validated when saved; never block evaluation over it
            log.warning("workspace %s: loyalty tiers left as they are: %s", workspace_id, exc)
            continue
        spent = Decimal(total_spent or 0)
        tier = tier_for(spent, tiers)
        if tier == stored:
            continue
        moves[tier].append(contact_id)
        before = stored or tiers[0].name  # every contact starts in the lowest tier: no news
        if tier != before:
            direction = "up" if is_upgrade(before, tier, tiers) else "down"
            changes.append(TierChange(contact_id, workspace_id, before, tier, direction, orders_count, spent))
    for tier, ids in moves.items():
        session.execute(update(contacts).where(contacts.c.id.in_(ids)).values(loyalty_tier=tier))
    if scope == BATCH and changes:
        _record_tier_changes(session, changes, _chosen(scope), params, now=now)


def _record_tier_changes(session: Session, changes: list[TierChange], chosen: ColumnElement[bool],
                         params: dict[str, Any], *, now: datetime) -> None:
    """Insert one `loyalty_tier_changed` event per change and defer its evaluation.

    The event's id names the latest event of the batch that moved the contact: a second
    insert of the same change does nothing (ON CONFLICT DO NOTHING), while a later
    move to the same tier (down after a refund, then up again) is a new event. It is
    dated when that event occurred, so the timeline shows it right after the order.
    """
    latest = {
        contact_id: (event_id, occurred_at)
        for contact_id, event_id, occurred_at in session.execute(
            select(events.c.contact_id, func.max(events.c.id), func.max(events.c.occurred_at))
            .where(chosen, events.c.contact_id.in_([c.contact_id for c in changes]))
            .group_by(events.c.contact_id),
            params,
        )
    }
    rows = []
    for change in changes:
        event_id, occurred_at = latest[change.contact_id]
        rows.append({
            "workspace_id": change.workspace_id,
            "external_id": f"loyalty:{change.contact_id}:{change.after}:{event_id}",
            "type": LOYALTY_TIER_CHANGED,
            "contact_id": change.contact_id,
            "occurred_at": occurred_at,
            "received_at": now,
            "properties": {"from": change.before, "to": change.after, "direction": change.direction,
                           "total_spent": float(change.total_spent), "orders_count": change.orders_count},
            "source": "rapport",
            "enqueued_at": now,
        })
    stmt = upsert(session, events).on_conflict_do_nothing(index_elements=["workspace_id", "external_id"])
    inserted = session.execute(stmt.returning(events.c.id), rows).scalars()  # one multi-row INSERT
    defer(session, JobName.EVALUATE_EVENTS, sorted(inserted))

"""Contact metrics kept from events through the real evaluation job, and loyalty tiers that follow them."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts import metrics
from engine.contacts.ingest import ingest_events
from engine.contacts.profiles import profile
from engine.journeys import runs
from engine.journeys.versions import create_journey
from engine.store.models import Contact, Event, Run, Workspace
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, drain
from workers.jobs import Jobs
from workers.runtime import Runtime

CUSTOMER = "cust-1"


def event(kind: str, at: datetime, properties: dict[str, Any] | None = None, *, customer: str = CUSTOMER,
          event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"{kind}-{at.timestamp()}-{sorted((properties or {}).items())}",
        "type": kind,
        "occurred_at": at.isoformat(),
        "contact": {"external_id": customer, "email": f"{customer}@example.com"},
        "properties": properties or {},
    }


def order(order_id: str | None, total: Any, at: datetime, **kwargs: Any) -> dict[str, Any]:
    properties = {"total": total, "currency": "EUR"} if total is not None else {"currency": "EUR"}
    if order_id is not None:
        properties["order_id"] = order_id
    return event("order_placed", at, properties, **kwargs)


def ingest(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, *payloads: dict[str, Any]) -> list[int]:
    with sessions.begin() as session:
        results = ingest_events(session, shop.id, list(payloads), now=clock())
    assert all(r.status == "accepted" for r in results), results
    return [r.id for r in results if r.id is not None]


def contact(sessions: sessionmaker[Session], shop: Shop, external_id: str = CUSTOMER) -> Contact:
    with sessions() as session:
        found = session.scalar(select(Contact).where(Contact.workspace_id == shop.id,
                                                     Contact.external_id == external_id))
    assert found is not None
    return found


def drain_twice(rt: Runtime) -> None:
    """Evaluate the events, then the loyalty_tier_changed events that evaluation recorded."""
    drain(rt)
    drain(rt)  # the scheduler relays the new event ids from the inbox, a worker evaluates them


def tier_events(sessions: sessionmaker[Session], shop: Shop) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).where(
            Event.workspace_id == shop.id, Event.type == "loyalty_tier_changed").order_by(Event.id)))


def test_orders_add_up_to_count_total_and_first_and_last_order(runtime: Runtime, sessions, shop, clock) -> None:
    """Three orders make orders_count 3, their totals total_spent, and set first/last order and activity."""
    start = clock()
    ingest(sessions, shop, clock, order("o-1", 19.99, start), order("o-2", "30.01", start + timedelta(days=3)))
    drain(runtime)
    clock.advance(days=10)
    ingest(sessions, shop, clock, order("o-3", 50, start + timedelta(days=9)),
           event("product_viewed", start + timedelta(days=10), {"sku": "beans"}))
    drain(runtime)

    c = contact(sessions, shop)
    assert (c.orders_count, c.total_spent) == (3, Decimal("100.00"))
    assert (c.first_order_at, c.last_order_at) == (start, start + timedelta(days=9))
    assert c.last_activity_at == start + timedelta(days=10)


def test_an_event_older_than_what_was_seen_does_not_move_times_back(runtime, sessions, shop, clock) -> None:
    """Late-arriving events still count, but first/last order and activity keep the extremes."""
    start = clock()
    ingest(sessions, shop, clock, order("o-1", 10, start))
    drain(runtime)
    ingest(sessions, shop, clock, order("o-0", 10, start - timedelta(days=30)))
    drain(runtime)
    c = contact(sessions, shop)
    assert c.orders_count == 2
    assert (c.first_order_at, c.last_order_at, c.last_activity_at) == (start - timedelta(days=30), start, start)


def test_evaluating_the_same_events_twice_counts_them_once(runtime, sessions, shop, clock) -> None:
    """Jobs may run twice: a second evaluation of the same ids changes no metric."""
    ids = ingest(sessions, shop, clock, order("o-1", 40, clock()), order(None, 60, clock()))
    Jobs(runtime).evaluate_events(ids)
    Jobs(runtime).evaluate_events(ids)
    drain(runtime)  # and the job the ingest queued, a third time
    c = contact(sessions, shop)
    assert (c.orders_count, c.total_spent) == (2, Decimal("100.00"))
    with sessions() as session:
        assert all(e.evaluated_at is not None for e in session.scalars(select(Event).where(Event.id.in_(ids))))


def test_two_workers_evaluating_the_same_events_at_once_count_them_once(sessions, shop, clock) -> None:
    """Run concurrently, the claim (evaluated_at IS NULL, locked) lets only one worker count each event."""
    ids = ingest(sessions, shop, clock, *(order(f"o-{n}", 10, clock()) for n in range(20)))
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            with sessions.begin() as session:
                runs.evaluate_events(session, metrics.apply_events(session, ids, now=clock()), templates=SEED_TEMPLATES,
                                     now=clock())
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    c = contact(sessions, shop)
    assert (c.orders_count, c.total_spent) == (20, Decimal("200.00"))


def test_a_cancelled_order_is_taken_out_once(runtime, sessions, shop, clock) -> None:
    """Cancelling, then refunding, the same order subtracts it once; other orders stay."""
    ingest(sessions, shop, clock, order("o-1", 100, clock()), order("o-2", 25.5, clock()))
    drain(runtime)
    clock.advance(hours=1)
    ingest(sessions, shop, clock, event("order_cancelled", clock(), {"order_id": "o-1"}))
    drain(runtime)
    ingest(sessions, shop, clock, event("order_cancelled", clock(), {"order_id": "o-1"}, event_id="again"),
           event("order_refunded", clock(), {"order_id": "o-1"}))
    drain(runtime)
    c = contact(sessions, shop)
    assert (c.orders_count, c.total_spent) == (1, Decimal("25.50"))


def test_cancelling_an_unknown_order_changes_nothing(runtime, sessions, shop, clock) -> None:
    """A cancellation without an order id, or for an order never placed, subtracts nothing."""
    ingest(sessions, shop, clock, order("o-1", 100, clock()))
    drain(runtime)
    ingest(sessions, shop, clock, event("order_cancelled", clock(), {}),
           event("order_refunded", clock(), {"order_id": "o-unknown"}))
    drain(runtime)
    c = contact(sessions, shop)
    assert (c.orders_count, c.total_spent) == (1, Decimal("100.00"))


@pytest.mark.parametrize("same_batch", [True, False])
def test_an_order_cancelled_before_it_was_counted_never_counts(runtime, sessions, shop, clock, same_batch) -> None:
    """Out of order: a cancellation seen first keeps its order out, in one batch or across two."""
    cancel = event("order_cancelled", clock(), {"order_id": "o-1"})
    placed = order("o-1", 100, clock() - timedelta(minutes=5))
    if same_batch:
        ingest(sessions, shop, clock, cancel, placed)
    else:
        ingest(sessions, shop, clock, cancel)
        drain(runtime)
        ingest(sessions, shop, clock, placed)
    drain(runtime)
    c = contact(sessions, shop)
    assert (c.orders_count, c.total_spent) == (0, Decimal("0.00"))
    assert c.last_order_at == clock() - timedelta(minutes=5)  # it was placed, though


def test_the_same_order_placed_twice_counts_once(runtime, sessions, shop, clock) -> None:
    """A repeat of order_placed for one order id (in one batch or later) is not a second order."""
    ingest(sessions, shop, clock, order("o-1", 80, clock(), event_id="a"), order("o-1", 80, clock(), event_id="b"))
    drain(runtime)
    ingest(sessions, shop, clock, order("o-1", 80, clock(), event_id="c"))
    drain(runtime)
    c = contact(sessions, shop)
    assert (c.orders_count, c.total_spent) == (1, Decimal("80.00"))


def test_an_order_without_a_usable_total_counts_with_nothing_spent(runtime, sessions, shop, clock) -> None:
    """Missing, negative, textual or absurd totals add 0 but the order still counts; "12.50" adds 12.50."""
    ingest(sessions, shop, clock, order("o-1", None, clock()), order("o-2", -5, clock()),
           order("o-3", "a lot", clock()), order("o-4", 1e15, clock()), order("o-5", True, clock()),
           order("o-6", " 12.50 ", clock()), order(None, 7.25, clock()), order(None, 0.75, clock()))
    drain(runtime)
    c = contact(sessions, shop)
    assert (c.orders_count, c.total_spent) == (8, Decimal("20.50"))


def test_metrics_are_kept_per_contact(runtime, sessions, shop, clock) -> None:
    """One batch with two contacts' orders counts each order for its own contact."""
    ingest(sessions, shop, clock, order("o-1", 10, clock(), customer="a"), order("o-2", 20, clock(), customer="b"),
           order("o-3", 30, clock(), customer="b"))
    drain(runtime)
    assert (contact(sessions, shop, "a").orders_count, contact(sessions, shop, "a").total_spent) == (1, Decimal(10))
    assert (contact(sessions, shop, "b").orders_count, contact(sessions, shop, "b").total_spent) == (2, Decimal(50))


def test_crossing_a_threshold_sets_the_tier_and_records_one_event(runtime, sessions, shop, clock) -> None:
    """At 200 spent the contact becomes a connoisseur: the tier is stored and one event says so, even run twice."""
    ids = ingest(sessions, shop, clock, order("o-1", 150, clock()))
    drain(runtime)
    assert contact(sessions, shop).loyalty_tier == "novice"
    assert tier_events(sessions, shop) == []  # starting in the lowest tier is no news

    clock.advance(days=1)
    ids = ingest(sessions, shop, clock, order("o-2", 50, clock()))
    Jobs(runtime).evaluate_events(ids)
    Jobs(runtime).evaluate_events(ids)
    drain_twice(runtime)

    assert contact(sessions, shop).loyalty_tier == "connoisseur"
    [changed] = tier_events(sessions, shop)
    assert changed.properties == {"from": "novice", "to": "connoisseur", "direction": "up",
                                  "total_spent": 200.0, "orders_count": 2}
    assert changed.contact_id == contact(sessions, shop).id and changed.occurred_at == clock()
    assert changed.evaluated_at is not None  # deferred and evaluated like any event
    assert contact(sessions, shop).last_activity_at == clock()


def test_a_refund_below_a_threshold_moves_the_tier_down_and_back_up_again(runtime, sessions, shop, clock) -> None:
    """Refunds lower the tier (direction "down"); reaching the tier again later is a new event."""
    ingest(sessions, shop, clock, order("o-1", 300, clock()), order("o-2", 800, clock()))
    drain(runtime)
    assert contact(sessions, shop).loyalty_tier == "star"
    ingest(sessions, shop, clock, event("order_refunded", clock(), {"order_id": "o-2"}))
    drain(runtime)
    assert contact(sessions, shop).loyalty_tier == "connoisseur"
    ingest(sessions, shop, clock, order("o-3", 700, clock()))
    drain(runtime)

    moves = [(e.properties["from"], e.properties["to"], e.properties["direction"]) for e in tier_events(sessions, shop)]
    assert moves == [("novice", "star", "up"), ("star", "connoisseur", "down"), ("connoisseur", "star", "up")]


def test_a_workspace_with_its_own_tiers_is_placed_in_them(runtime, sessions, shop, clock) -> None:
    """Workspace.settings["loyalty_tiers"] replaces the default tiers."""
    with sessions.begin() as session:
        session.execute(update(Workspace).where(Workspace.id == shop.id).values(settings={"loyalty_tiers": [
            {"name": "bronze", "min_spent": 0}, {"name": "gold", "min_spent": 50}]}))
    ingest(sessions, shop, clock, order("o-1", 60, clock()))
    drain(runtime)
    assert contact(sessions, shop).loyalty_tier == "gold"
    assert [e.properties["to"] for e in tier_events(sessions, shop)] == ["gold"]


def test_broken_tier_settings_leave_tiers_alone_but_still_count(runtime, sessions, shop, clock) -> None:
    """Invalid stored tiers never block evaluation: metrics move, the tier is left as it was."""
    with sessions.begin() as session:
        session.execute(update(Workspace).where(Workspace.id == shop.id).values(
            settings={"loyalty_tiers": [{"name": "x", "min_spent": 10}]}))
    ingest(sessions, shop, clock, order("o-1", 60, clock()))
    drain(runtime)
    c = contact(sessions, shop)
    assert (c.orders_count, c.loyalty_tier) == (1, None)


def test_a_journey_can_start_when_a_tier_is_reached(runtime, sessions, shop, clock) -> None:
    """A journey triggered by loyalty_tier_changed enrolls the contact once per tier reached."""
    with sessions.begin() as session:
        create_journey(session, shop.id, "Tier reached", {
            "trigger": {"event": "loyalty_tier_changed", "key": "to"},
            "steps": [{"type": "wait", "id": "pause", "hours": 1}],
        }, templates=SEED_TEMPLATES, now=clock())
    ingest(sessions, shop, clock, order("o-1", 1200, clock()))
    drain_twice(runtime)
    with sessions() as session:
        [run] = session.scalars(select(Run).where(Run.workspace_id == shop.id))
    assert (run.key, run.contact_id) == ("star", contact(sessions, shop).id)


def test_profile_shows_metrics_with_average_order_value(runtime, sessions, shop, clock) -> None:
    """profile() carries the metrics: money as exact strings, AOV = total / orders, LTV = total spent."""
    ingest(sessions, shop, clock, order("o-1", 10, clock()), order("o-2", 10, clock()), order("o-3", 13.33, clock()))
    drain(runtime)
    shown = profile(contact(sessions, shop))["metrics"]
    assert shown == {
        "orders_count": 3, "total_spent": "33.33", "average_order_value": "11.11", "lifetime_value": "33.33",
        "first_order_at": clock().isoformat(), "last_order_at": clock().isoformat(),
        "last_activity_at": clock().isoformat(), "loyalty_tier": "novice",
    }


def test_a_contact_without_orders_has_no_average(runtime, sessions, shop, clock) -> None:
    """Zero orders show an average of null, not a division error or a made-up 0."""
    ingest(sessions, shop, clock, event("product_viewed", clock(), {"sku": "beans"}))
    drain(runtime)
    shown = profile(contact(sessions, shop))["metrics"]
    assert (shown["orders_count"], shown["total_spent"], shown["average_order_value"]) == (0, "0.00", None)
    assert shown["last_activity_at"] == clock().isoformat() and shown["last_order_at"] is None


def test_rebuilding_from_stored_events_agrees_with_the_running_metrics(runtime, sessions, shop, clock) -> None:
    """rebuild_metrics (the backfill) recomputes from history what the batches added up, tiers included."""
    batches = [
        [order("o-1", 120, clock()), order("o-2", "80.40", clock()), order("o-2", 80.40, clock(), event_id="dup")],
        [event("order_cancelled", clock(), {"order_id": "o-1"}), order("o-3", 999, clock() + timedelta(days=2))],
        [event("order_refunded", clock(), {"order_id": "o-4"}), order("o-4", 5000, clock() - timedelta(days=1))],
        [order(None, 1.1, clock(), customer="other"), event("product_viewed", clock() + timedelta(days=3), {})],
    ]
    for batch in batches:
        ingest(sessions, shop, clock, *batch)
        drain(runtime)

    def snapshot() -> list[tuple[Any, ...]]:
        with sessions() as session:
            return [tuple(row) for row in session.execute(select(
                Contact.external_id, Contact.orders_count, Contact.total_spent, Contact.first_order_at,
                Contact.last_order_at, Contact.last_activity_at, Contact.loyalty_tier,
            ).where(Contact.workspace_id == shop.id).order_by(Contact.id))]

    running = snapshot()
    assert running[0][1:3] == (2, Decimal("1079.40"))
    with sessions.begin() as session:
        ids = list(session.scalars(select(Contact.id).where(Contact.workspace_id == shop.id)))
        session.execute(update(Contact).where(Contact.id.in_(ids)).values(
            orders_count=0, total_spent=0, first_order_at=None, last_order_at=None, loyalty_tier=None))
        metrics.rebuild_metrics(session, ids, now=clock())
    assert snapshot() == running

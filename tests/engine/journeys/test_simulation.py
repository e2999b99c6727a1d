"""The backtest replays stored events through a journey and agrees with what really ran."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.contacts.ingest import ingest_events
from engine.journeys.definition import parse_definition
from engine.journeys.simulation import simulate
from engine.journeys.versions import create_journey
from engine.store.models import Message, Run, Workspace
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, drain
from workers.runtime import Runtime
from workers.scheduler import run_once

NUMBERS = itertools.count(1)
DEFINITION: dict[str, Any] = {
    "trigger": {"event": "cart_updated", "key": "cart_id", "filter": {"property": "total", "op": "gte", "value": 10}},
    "goals": [{"event": "order_placed", "name": "order placed"}],
    "steps": [
        {"type": "wait", "id": "wait-1h", "hours": 1},
        {"type": "split", "id": "ab", "arms": [
            {"name": "remind", "weight": 70, "steps": [
                {"type": "send", "id": "reminder", "channel": "email", "template": "abandoned_cart"},
                {"type": "wait_for_event", "id": "await-order", "event": "order_placed", "timeout": {"hours": 24},
                 "no": [{"type": "condition", "id": "big-cart",
                         "condition": {"property": "total", "op": "gte", "value": 100},
                         "yes": [{"type": "send", "id": "second", "channel": "email", "template": "abandoned_cart"}]}]},
            ]},
            {"name": "control", "weight": 30, "holdout": True},
        ]},
    ],
}


def cart(customer: int, cart_id: str, total: float, consent: str = "opted_in") -> dict[str, Any]:
    return {"id": f"sim-{next(NUMBERS)}", "type": "cart_updated",
            "contact": {"external_id": f"c{customer}", "email": f"c{customer}@example.com",
                        "consent": {"email": consent}},
            "properties": {"cart_id": cart_id, "total": total, "currency": "EUR", "items": [],
                           "recovery_url": f"https://shop.example/{cart_id}"}}


def order(customer: int, cart_id: str) -> dict[str, Any]:
    return {"id": f"sim-{next(NUMBERS)}", "type": "order_placed", "contact": {"external_id": f"c{customer}"},
            "properties": {"cart_id": cart_id}}


@pytest.mark.parametrize("seed", [7])
def test_a_simulation_of_the_same_events_reports_what_the_real_run_did(
    runtime: Runtime, sessions, shop: Shop, clock: FakeClock, smtp_server, seed: int
) -> None:
    """Sixty contacts over two days: enrollments, exits, holdouts and messages agree exactly."""
    rng = random.Random(seed)
    start = clock.current
    with sessions.begin() as session:
        create_journey(session, shop.id, "Backtested", DEFINITION, templates=SEED_TEMPLATES, now=clock())
    timeline: list[tuple[timedelta, dict[str, Any]]] = []
    for n in range(60):
        at = timedelta(minutes=rng.randrange(0, 24 * 60))
        total = rng.choice([5, 40, 150])
        timeline.append((at, cart(n, f"cart-{n}", total, "opted_out" if n % 11 == 0 else "opted_in")))
        if rng.random() < 0.35:
            timeline.append((at + timedelta(minutes=rng.randrange(5, 40 * 60)), order(n, f"cart-{n}")))
    timeline.sort(key=lambda item: item[0])
    for at, payload in timeline:  # the real engine: each event at its time, timers fire as the clock passes
        while clock.current < start + at:
            clock.current = min(clock.current + timedelta(minutes=30), start + at)
            run_once(runtime)
            drain(runtime)
        payload["occurred_at"] = clock.current.isoformat()
        with sessions.begin() as session:
            ingest_events(session, shop.id, [payload], now=clock())
        drain(runtime)
    end = start + timedelta(days=3)
    while clock.current < end:
        clock.current = min(clock.current + timedelta(minutes=30), end)
        run_once(runtime)
        drain(runtime)

    with sessions() as session:
        report = simulate(session, shop.id, parse_definition(DEFINITION), templates=SEED_TEMPLATES, start=start,
                          end=end)
        runs = list(session.scalars(select(Run).where(Run.workspace_id == shop.id)))
        sent = session.scalar(select(func.count()).select_from(Message).where(
            Message.workspace_id == shop.id, Message.status == "sent")) or 0
        skipped = session.scalar(select(func.count()).select_from(Message).where(
            Message.workspace_id == shop.id, Message.status == "skipped")) or 0

    assert report["enrollments"] == len(runs) > 20
    assert report["not_enrolled"].get("entry filter not met", 0) == sum(1 for _, p in timeline
                                                                        if p["properties"].get("total") == 5)
    assert report["completed"] == sum(1 for r in runs if r.status == "completed")
    real_exits: dict[str, int] = {}
    for r in runs:
        if r.status == "exited":
            real_exits[r.exit_reason or ""] = real_exits.get(r.exit_reason or "", 0) + 1
    assert report["exits"] == real_exits
    assert report["messages_total"] == sent and sum(report["skipped"].values()) == skipped
    assert report["holdout_sizes"].get("ab:control", 0) == sum(
        1 for r in runs if r.state.get("arm") == "ab:control") > 0
    assert report["still_waiting"] == sum(1 for r in runs if r.status == "waiting")
    assert report["slowest_paths"] and report["slowest_paths"][0]["runs"] >= 1


def test_simulating_writes_and_sends_nothing(runtime: Runtime, sessions, shop: Shop, clock: FakeClock,
                                            smtp_server) -> None:
    """A backtest over stored events leaves runs, messages and the SMTP server untouched."""
    with sessions.begin() as session:
        ingest_events(session, shop.id, [cart(1, "cart-x", 50)], now=clock())
    with sessions() as session:
        report = simulate(session, shop.id, parse_definition(DEFINITION), templates=SEED_TEMPLATES,
                          start=clock.current - timedelta(hours=1),
                          end=clock.current + timedelta(days=2))
        assert report["enrollments"] == 1
        assert session.scalar(select(func.count()).select_from(Run).where(Run.workspace_id == shop.id)) == 0
    assert smtp_server.messages == []


def test_a_time_triggered_journey_is_refused_with_a_clear_message(sessions, shop: Shop, clock: FakeClock) -> None:
    """Backtests replay events; a birthday journey has none to replay."""
    definition = parse_definition({"trigger": {"date": "birthday"}, "steps": [{"type": "exit", "id": "x"}]})
    with sessions() as session, pytest.raises(ValueError, match="starts on an event"):
        simulate(session, shop.id, definition, templates=SEED_TEMPLATES, start=clock.current,
                 end=clock.current + timedelta(days=1))


def test_a_contact_without_a_zone_waits_for_ten_in_the_workspaces_zone_as_a_real_run_does(
        sessions, shop: Shop, clock: FakeClock) -> None:
    """A Tokyo shop's cart at 18:00 Tokyo time (09:00 UTC) waits until 10:00 Tokyo: sixteen hours, not one."""
    definition = parse_definition({"trigger": {"event": "cart_updated", "key": "cart_id"},
                                   "steps": [{"type": "wait_until", "id": "at-ten", "time": "10:00"}]})
    with sessions.begin() as session:
        session.get_one(Workspace, shop.id).timezone = "Asia/Tokyo"
        ingest_events(session, shop.id, [cart(1, "cart-tokyo", 50)], now=clock())
    with sessions() as session:
        report = simulate(session, shop.id, definition, templates=SEED_TEMPLATES,
                          start=clock.current - timedelta(hours=1), end=clock.current + timedelta(days=2))
    assert report["completed"] == 1
    assert report["slowest_paths"][0]["median_hours"] == 16.0

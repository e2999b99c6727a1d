"""The journey canvas's counts, read from the journal's columns (labels, reason codes), not its sentences."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.journeys.stats import journey_stats
from engine.journeys.versions import create_journey
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, SmtpServer, drain
from workers.runtime import Runtime

EVENT_NUMBERS = itertools.count(1)
# VIPs leave by an exit step whose words look like a goal's; the others are split and wait an
# hour for their order, the journey's goal.
DEFINITION = {
    "trigger": {"event": "cart_updated", "key": "cart_id"},
    "goals": [{"event": "order_placed"}],
    "steps": [
        {"type": "condition", "id": "is-vip", "condition": {"attribute": "vip", "value": True},
         "yes": [{"type": "exit", "id": "vip-exit", "reason": "goal reached: handed to a person"}],
         "no": [{"type": "split", "id": "ab", "arms": [
             {"name": "a", "weight": 1, "steps": [{"type": "wait", "id": "linger-a", "hours": 1}]},
             {"name": "b", "weight": 1, "steps": [{"type": "wait", "id": "linger-b", "hours": 1}]},
         ]}]},
    ],
}


def event(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, event_type: str, customer: str,
          **contact: Any) -> None:
    with sessions.begin() as session:
        [result] = ingest_events(session, shop.id, [{
            "id": f"evt-{next(EVENT_NUMBERS)}", "type": event_type, "occurred_at": clock().isoformat(),
            "contact": {"external_id": customer, "email": f"{customer}@example.com", **contact},
            "properties": {"cart_id": f"cart-{customer}", "order_id": f"o-{customer}"}}], now=clock())
    assert result.status == "accepted", result


def test_branches_are_counted_per_step_by_label_and_conversions_by_the_goal_reached(
    runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """Per step, each branch label taken; conversions count goal exits only, not an exit step's words."""
    with sessions.begin() as session:
        journey_id = create_journey(session, shop.id, "Carts", DEFINITION, templates=SEED_TEMPLATES, now=clock()).id
    event(sessions, shop, clock, "cart_updated", "vip", attributes={"vip": True})
    for n in range(6):
        event(sessions, shop, clock, "cart_updated", f"c{n}")
    drain(runtime)
    event(sessions, shop, clock, "order_placed", "c0")
    drain(runtime)
    with sessions() as session:
        stats = journey_stats(session, shop.id, journey_id)

    assert stats["steps"]["is-vip"]["branches"] == {"yes": 1, "no": 6}
    arms = stats["steps"]["ab"]["branches"]
    assert set(arms) <= {"a", "b"} and sum(arms.values()) == 6
    assert stats["exits"] == {"goal reached: handed to a person": 1, "goal reached: order placed": 1}
    assert stats["conversions"] == 1

"""For any sequence of shop events, the backtest reports what the runs service really did.

Hypothesis draws a journey shape (a keyed trigger with each re-entry rule, a wait for an
event with or without the same key, goals, a journey without a key) and a sequence of
carts, orders and unrelated events of three contacts, spaced so that waits, timeouts and
re-entry periods fall between them. The events are run for real (stored, evaluated by the
runs service, each due timer advanced at its due time, against the test database), then
simulated over the same period; enrollments, refusals, exits and messages must agree.

Bounded to a few seconds and reproducible: 20 derandomized examples (the same ones on
every run and in CI), each with all six shapes live at once in its own workspace.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts import metrics
from engine.contacts.ingest import ingest_events
from engine.journeys import runs
from engine.journeys.definition import parse_definition
from engine.journeys.simulation import simulate
from engine.journeys.versions import create_journey
from engine.store.db import make_sessionmaker
from engine.store.models import JournalEntry, Journey, Message, Run
from engine.workspaces.accounts import create_workspace
from tests.conftest import SEED_TEMPLATES, settle_workspace

NUMBERS = itertools.count(1)
START = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)
REMINDER = {"type": "send", "id": "reminder", "channel": "email", "template": "abandoned_cart"}


def keyed(reentry: Any) -> dict[str, Any]:
    return {"trigger": {"event": "cart_updated", "key": "cart_id",
                        "filter": {"property": "total", "op": "gte", "value": 10}},
            "reentry": reentry, "goals": [{"event": "order_placed", "name": "order placed"}],
            "steps": [{"type": "wait", "id": "wait-1h", "hours": 1},
                      {"type": "condition", "id": "big-cart", "yes": [REMINDER],
                       "condition": {"property": "total", "op": "gte", "value": 20}}]}


def awaiting(same_key: bool) -> dict[str, Any]:
    return {"trigger": {"event": "cart_updated", "key": "cart_id"},
            "steps": [REMINDER, {"type": "wait_for_event", "id": "await-order", "event": "order_placed",
                                 "timeout": {"hours": 12}, "same_key": same_key,
                                 "no": [{**REMINDER, "id": "second"}]}]}


SHAPES = {
    "keyed, once per key": keyed("once_per_key"),
    "keyed, once ever": keyed("once_ever"),
    "keyed, every day": keyed({"every_days": 1}),
    "waits for an order of the same cart": awaiting(same_key=True),
    "waits for any order": awaiting(same_key=False),
    "no key, a goal": {"trigger": {"event": ["cart_updated", "checkout_started"]}, "reentry": {"every_days": 2},
                       "goals": [{"event": "order_placed", "name": "order placed"}],
                       "steps": [{"type": "wait", "id": "wait-2h", "hours": 2}, REMINDER]},
}


@dataclass(frozen=True)
class Happening:
    after: timedelta  # since the previous event
    customer: int  # customer 0 has opted out of email: their reminders are skipped
    kind: str
    cart: int
    total: int


happenings = st.builds(
    Happening,
    after=st.sampled_from([0, 5, 20, 40, 61, 180, 13 * 60, 25 * 60]).map(lambda minutes: timedelta(minutes=minutes)),
    customer=st.integers(0, 1),
    kind=st.sampled_from(["cart_updated", "order_placed", "cart_updated", "order_placed", "checkout_started",
                          "page_viewed"]),
    cart=st.integers(0, 1),
    total=st.sampled_from([5, 15, 50]),
)


def payload(happening: Happening, at: datetime) -> dict[str, Any]:
    customer = f"c{happening.customer}"
    properties: dict[str, Any] = {"cart_id": f"cart-{happening.cart}", "total": happening.total,
                                  "currency": "EUR", "items": [], "recovery_url": "https://shop.example/cart"}
    if happening.kind == "page_viewed":
        properties = {"url": "https://shop.example/"}
    return {"id": f"prop-{next(NUMBERS)}", "type": happening.kind, "occurred_at": at.isoformat(),
            "contact": {"external_id": customer, "email": f"{customer}@example.com",
                        "consent": {"email": "opted_out" if happening.customer == 0 else "opted_in"}},
            "properties": properties}


def advance_due_timers(sessions: sessionmaker[Session], workspace_id: str, until: datetime) -> None:
    """Each due timer fires at its own due time, earliest first, as the backtest fires them."""
    while True:
        with sessions.begin() as session:
            due = session.scalar(select(func.min(Run.next_at)).where(
                Run.workspace_id == workspace_id, Run.status == "waiting", Run.next_at <= until))
            if due is None:
                return
            ids = list(session.scalars(select(Run.id).where(
                Run.workspace_id == workspace_id, Run.status == "waiting", Run.next_at <= due)))
            runs.advance_runs(session, ids, templates=SEED_TEMPLATES, now=due)


def run_for_real(sessions: sessionmaker[Session], workspace_id: str, timeline: list[tuple[datetime, Any]],
                 end: datetime) -> None:
    """Store and evaluate each event at its time (as the evaluation job does), timers in between."""
    for at, data in timeline:
        advance_due_timers(sessions, workspace_id, at)
        with sessions.begin() as session:
            [result] = ingest_events(session, workspace_id, [data], now=at)
            claimed = metrics.apply_events(session, [result.id], now=at)
            runs.evaluate_events(session, claimed, templates=SEED_TEMPLATES, now=at)
    advance_due_timers(sessions, workspace_id, end)


def what_really_happened(session: Session, workspace_id: str, journey: Journey) -> dict[str, Any]:
    """One journey's real runs, refusals and messages, counted as the backtest reports them."""
    all_runs = list(session.scalars(select(Run).where(Run.journey_id == journey.id)))
    messages = list(session.scalars(select(Message).where(Message.journey_id == journey.id)))
    refusals = session.scalars(select(JournalEntry.detail).where(
        JournalEntry.workspace_id == workspace_id, JournalEntry.kind == "not_enrolled"))
    per_day: dict[str, Counter[str]] = {}
    for message in messages:
        if message.status != "skipped":
            per_day.setdefault(message.scheduled_at.date().isoformat(), Counter())[message.channel] += 1
    return {
        "enrollments": len(all_runs),
        "not_enrolled": sum(1 for detail in refusals if (detail or "").startswith(f"{journey.name}: ")),
        "completed": sum(1 for r in all_runs if r.status == "completed"),
        "exits": dict(Counter(r.exit_reason or "exited" for r in all_runs if r.status == "exited")),
        "still_waiting": sum(1 for r in all_runs if r.status == "waiting"),
        "messages_per_day": {day: dict(counts) for day, counts in sorted(per_day.items())},
        "skipped": dict(Counter(m.skip_reason for m in messages if m.status == "skipped")),
    }


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(sequence=st.lists(happenings, min_size=1, max_size=14))
@example(sequence=[  # the cart shrinks while the run waits: the run reads the newer event's total
    Happening(timedelta(0), 1, "cart_updated", 0, 50), Happening(timedelta(minutes=20), 1, "cart_updated", 0, 15)])
def test_the_backtest_agrees_with_the_runs_service_on_any_events(db_engine: Engine,
                                                                 sequence: list[Happening]) -> None:
    """Per journey shape: enrollments, refusals, exits, runs still waiting and messages (per day, and
    skipped) are the same. Every shape is live at once in one shop; none affects another."""
    sessions = make_sessionmaker(db_engine)  # no job sink: this test does the jobs' work itself
    with sessions.begin() as session:
        workspace_id = create_workspace(session, "Backtested", now=START).workspace_id
        journeys = [create_journey(session, workspace_id, name, definition, templates=SEED_TEMPLATES, now=START)
                    for name, definition in SHAPES.items()]
    timeline, at = [], START
    for happening in sequence:
        at += happening.after
        timeline.append((at, payload(happening, at)))
    end = at + timedelta(days=3)
    try:
        run_for_real(sessions, workspace_id, timeline, end)
        with sessions() as session:
            for journey in journeys:
                real = what_really_happened(session, workspace_id, journey)
                report = simulate(session, workspace_id, parse_definition(SHAPES[journey.name]),
                                  templates=SEED_TEMPLATES, start=START, end=end)
                simulated = {name: report[name] for name in real} | {
                    "not_enrolled": sum(report["not_enrolled"].values())}
                assert (journey.name, simulated) == (journey.name, real)
    finally:
        settle_workspace(sessions, workspace_id, end)

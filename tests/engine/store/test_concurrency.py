"""Two workers on the same work at the same moment: nothing is enrolled or sent twice.

Threads with their own database connections stand in for worker processes: on
PostgreSQL they really run side by side (row locks, SKIP LOCKED, unique indexes);
on SQLite they take turns, which must give the same result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.journeys.runs import advance_runs, evaluate_events
from engine.journeys.versions import create_journey
from engine.store.models import Event, Message, Run
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop
from triggers import abandoned_cart
from workers.dev.demo import cart_event


def side_by_side(work: Callable[[], None], copies: int = 2) -> None:
    """Run `work` in `copies` threads released at the same instant; re-raise any failure."""
    barrier = threading.Barrier(copies)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if failures:
        raise failures[0]


def count(sessions: sessionmaker[Session], model: type, shop: Shop) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(model.workspace_id == shop.id)) or 0


def test_two_workers_evaluating_the_same_events_enroll_each_cart_once(
    sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """200 carts, each also updated a second time, evaluated by two workers at once: 200 runs."""
    with sessions.begin() as session:
        create_journey(session, shop.id, "Cart", abandoned_cart.recipe(), templates=SEED_TEMPLATES, now=clock())
    payloads = []
    for n in range(200):
        payloads += [cart_event(f"cart-{n}", customer=f"c{n}", email=f"c{n}@example.com"),
                     cart_event(f"cart-{n}", customer=f"c{n}", email=f"c{n}@example.com")]
    with sessions.begin() as session:
        ingest_events(session, shop.id, payloads, now=clock())
    with sessions() as session:
        ids = list(session.scalars(select(Event.id).where(Event.workspace_id == shop.id).order_by(Event.id)))
    halves = [ids[::2], ids[1::2]]  # each worker holds a different event of every cart

    def evaluate_all() -> None:
        for batch in (ids, halves[0], halves[1]):
            with sessions.begin() as session:
                evaluate_events(session, batch, templates=SEED_TEMPLATES, now=clock())

    side_by_side(evaluate_all)
    assert count(sessions, Run, shop) == 200
    with sessions() as session:
        unevaluated = select(func.count()).select_from(Event).where(Event.workspace_id == shop.id,
                                                                    Event.evaluated_at.is_(None))
        assert session.scalar(unevaluated) == 0


def test_two_workers_advancing_the_same_due_runs_make_one_message_each(
    sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """100 due runs handed to two workers at once (a retried job): exactly 100 messages."""
    with sessions.begin() as session:
        create_journey(session, shop.id, "Cart", abandoned_cart.recipe(wait_seconds=60), templates=SEED_TEMPLATES,
                       now=clock())
        ingest_events(session, shop.id, [cart_event(f"k-{n}", customer=f"d{n}", email=f"d{n}@example.com")
                                         for n in range(100)], now=clock())
    with sessions() as session:
        ids = list(session.scalars(select(Event.id).where(Event.workspace_id == shop.id)))
    with sessions.begin() as session:
        evaluate_events(session, ids, templates=SEED_TEMPLATES, now=clock())
    with sessions() as session:
        run_ids = list(session.scalars(select(Run.id).where(Run.workspace_id == shop.id)))
    later = clock.current + timedelta(minutes=2)

    def advance_all() -> None:
        for _ in range(3):  # and each worker retries its job
            with sessions.begin() as session:
                advance_runs(session, run_ids, templates=SEED_TEMPLATES, now=later)

    side_by_side(advance_all)
    assert count(sessions, Message, shop) == 100
    with sessions() as session:
        statuses = set(session.scalars(select(Run.status).where(Run.workspace_id == shop.id)))
    assert statuses == {"completed"}

"""One bad item never holds back the others: jobs split around a poisonous id, which becomes a dead letter.

Real RQ jobs on the real database and Redis; the poison is written into the database
directly, as a row the code cannot handle (ingest is not asked to accept it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from engine.batches import dead_letters
from engine.contacts.ingest import ingest_events
from engine.contacts.profiles import timeline
from engine.journeys import runs as runs_service
from engine.journeys.versions import create_journey
from engine.ops.sweeper import sweep
from engine.settings import Settings
from engine.store.db import JobName
from engine.store.models import Contact, DeadLetter, Event, JournalEntry, Message, Run
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, drain
from tests.providers import WebhookReceiver
from workers import jobs  # noqa: F401 - registers Redis's errors as outages
from workers.runtime import Runtime
from workers.scheduler import run_once

POISON_TOTAL = 10**400  # valid JSON; the entry filter's number comparison overflows on it


def cart(n: int, total: Any = 25) -> dict[str, Any]:
    return {"id": f"cart-{n}", "type": "cart_updated",
            "contact": {"external_id": f"c-{n}", "email": f"c{n}@example.com"},
            "properties": {"cart_id": f"k{n}", "total": total, "currency": "EUR"}}


def ingest_carts(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, count: int) -> None:
    with sessions.begin() as session:
        results = ingest_events(session, shop.id, [cart(n) for n in range(count)], now=clock())
    assert all(r.status == "accepted" for r in results)


def journey(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, steps: list[dict[str, Any]]) -> int:
    definition = {"trigger": {"event": "cart_updated", "key": "cart_id",
                              "filter": {"property": "total", "op": "gt", "value": 10}}, "steps": steps}
    with sessions.begin() as session:
        return create_journey(session, shop.id, "Carts", definition, templates=SEED_TEMPLATES, now=clock()).id


def letters(sessions: sessionmaker[Session], shop: Shop) -> list[DeadLetter]:
    with sessions() as session:
        return list(session.scalars(select(DeadLetter).where(DeadLetter.workspace_id == shop.id)))


def journal(sessions: sessionmaker[Session], shop: Shop, kind: str) -> list[JournalEntry]:
    with sessions() as session:
        return list(session.scalars(select(JournalEntry).where(JournalEntry.workspace_id == shop.id,
                                                               JournalEntry.kind == kind)))


def retry_period(rt: Runtime, clock: FakeClock, seconds: float = 61) -> None:
    """The sweep's redelivery period passes: owed items are handed out again and the workers run them."""
    clock.advance(seconds=seconds)
    run_once(rt)
    drain(rt)


WAIT_TWICE = [{"type": "wait", "id": "first", "hours": 1}, {"type": "wait", "id": "second", "hours": 1}]


def test_one_poisoned_event_among_499_holds_back_none_of_them(runtime: Runtime, sessions, shop, clock) -> None:
    """499 carts are evaluated by the job they came in; the poisoned one is set aside after 3 failures."""
    journey(sessions, shop, clock, WAIT_TWICE)
    ingest_carts(sessions, shop, clock, 500)
    with sessions.begin() as session:
        session.execute(update(Event).where(Event.workspace_id == shop.id, Event.external_id == "cart-250")
                        .values(properties={"cart_id": "k250", "total": POISON_TOTAL}))
    drain(runtime)  # one job of 500 ids

    with sessions() as session:
        evaluated = session.scalars(select(Event.external_id).where(Event.workspace_id == shop.id,
                                                                    Event.evaluated_at == clock())).all()
        runs = session.scalars(select(Run).where(Run.workspace_id == shop.id)).all()
    assert len(evaluated) == 499 and "cart-250" not in evaluated
    assert len(runs) == 499
    [letter] = letters(sessions, shop)
    assert (letter.kind, letter.status, letter.attempts) == ("evaluate_events", "failing", 1)
    assert letter.error_type == "OverflowError" and "too large" in letter.error

    retry_period(runtime, clock)
    retry_period(runtime, clock)
    [letter] = letters(sessions, shop)
    assert (letter.status, letter.attempts) == ("dead", 3)
    assert letter.first_failed_at < letter.last_failed_at == letter.dead_at
    with sessions.begin() as session:  # the sweep no longer hands it out
        assert sweep(session, now=clock() + timedelta(hours=1), redeliver_after=timedelta(seconds=60)).events == 0
    with sessions() as session:
        entries = timeline(session, shop.id, "c-250")
    assert [e["kind"] for e in entries if e["kind"] != "event"] == [
        "processing_failed", "processing_failed", "dead_letter"]
    assert entries[-1]["detail"] == (f"event set aside after 3 failures (dead letter {letter.id}): "
                                     f"OverflowError: {letter.error}")


def test_a_run_whose_step_cannot_be_decided_holds_back_no_other_run(runtime: Runtime, sessions, shop,
                                                                     clock) -> None:
    """Of 200 due runs, 199 move on in the job; the one on a step its journey lacks ends failed after 3 tries."""
    journey(sessions, shop, clock, WAIT_TWICE)
    ingest_carts(sessions, shop, clock, 200)
    drain(runtime)
    with sessions.begin() as session:
        poisoned = session.scalars(select(Run.id).where(Run.workspace_id == shop.id).order_by(Run.id)
                                   .offset(120)).first()
        session.execute(update(Run).where(Run.id == poisoned).values(step_id="gone"))

    retry_period(runtime, clock, seconds=3601)  # every run is due: one advance job of 200
    with sessions() as session:
        moved = session.scalars(select(Run.id).where(Run.workspace_id == shop.id, Run.step_id == "second")).all()
    assert len(moved) == 199 and poisoned not in moved
    [letter] = letters(sessions, shop)
    assert (letter.kind, letter.item_id, letter.attempts, letter.error_type) == (
        "advance_runs", poisoned, 1, "KeyError")

    retry_period(runtime, clock)
    retry_period(runtime, clock)
    [letter] = letters(sessions, shop)
    assert (letter.status, letter.attempts) == ("dead", 3)
    with sessions() as session:
        run = session.get(Run, poisoned)
        assert run is not None and run.status == "exited" and run.next_at is None
        assert run.exit_reason == f"set aside (dead letter {letter.id}): KeyError: 'gone'"
    [line] = journal(sessions, shop, "dead_letter")
    assert line.run_id == poisoned


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A real HTTP server the journey's webhook step calls."""
    receiver = WebhookReceiver()
    receiver.server = make_server("127.0.0.1", 0, receiver)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()


def test_a_message_whose_adapter_raises_holds_back_no_other_message(runtime: Runtime, sessions, shop, clock,
                                                                     receiver: WebhookReceiver) -> None:
    """29 webhook calls go out in their job; the one the adapter raises on is retried, then failed after 3."""
    journey(sessions, shop, clock, [{"type": "wait", "id": "wait", "hours": 1},
                                    {"type": "webhook", "id": "call", "url": f"{receiver.url}/hook"}])
    ingest_carts(sessions, shop, clock, 30)
    drain(runtime)
    clock.advance(hours=1, seconds=1)
    with sessions.begin() as session:  # the runs make their messages; the poison goes in before any is sent
        due = session.scalars(select(Run.id).where(Run.workspace_id == shop.id)).all()
        runs_service.advance_runs(session, list(due), templates=SEED_TEMPLATES, now=clock())
    with sessions.begin() as session:
        poisoned = session.scalars(select(Message.id).where(Message.workspace_id == shop.id).order_by(Message.id)
                                   .offset(17)).first()
        session.execute(update(Message).where(Message.id == poisoned).values(to_address="not a url"))
    drain(runtime)

    assert len(receiver.requests) == 29
    [letter] = letters(sessions, shop)
    assert (letter.kind, letter.item_id, letter.attempts, letter.error_type) == (
        "dispatch_messages", poisoned, 1, "ValueError")
    with sessions() as session:
        message = session.get(Message, poisoned)
        assert message is not None and message.status == "scheduled"

    for _ in range(2):
        retry_period(runtime, clock, seconds=121)
    [letter] = letters(sessions, shop)
    assert (letter.status, letter.attempts) == ("dead", 3)
    with sessions() as session:
        message = session.get(Message, poisoned)
        assert message is not None and message.status == "failed"
        assert message.error == f"set aside (dead letter {letter.id}): ValueError: {letter.error}"
    assert len(receiver.requests) == 29

    with sessions.begin() as session:  # the address is fixed, and the letter retried
        session.execute(update(Message).where(Message.id == poisoned).values(to_address=f"{receiver.url}/hook"))
        dead_letters.retry(session, now=clock(), workspace_id=shop.id)
    drain(runtime)
    assert len(receiver.requests) == 30
    [letter] = letters(sessions, shop)
    assert letter.status == "resolved"


def rapport(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it, against this test's database and Redis."""
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url or "",
           "RAPPORT_NAMESPACE": settings.namespace, "SECRET_KEY": "cli-test",
           "RAPPORT_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_cli_retry_resolves_a_dead_letter_once_its_cause_is_fixed(runtime: Runtime, sessions, shop, clock,
                                                                   settings: Settings) -> None:
    """`rapport dead-letters list` shows the poisoned cart; after its data is fixed, `retry` gets it evaluated."""
    journey(sessions, shop, clock, WAIT_TWICE)
    ingest_carts(sessions, shop, clock, 3)
    with sessions.begin() as session:
        session.execute(update(Event).where(Event.workspace_id == shop.id, Event.external_id == "cart-1")
                        .values(properties={"cart_id": "k1", "total": POISON_TOTAL}))
    drain(runtime)
    retry_period(runtime, clock)
    retry_period(runtime, clock)
    [letter] = letters(sessions, shop)
    assert letter.status == "dead"

    listed = rapport(settings, "dead-letters", "list", "--workspace", shop.id)
    assert listed.returncode == 0, listed.stderr
    assert f"{letter.id}\t{shop.id}\tdead\tevaluate_events event {letter.item_id}\tcontact c-1\t" in listed.stdout
    assert "OverflowError: int too large to convert to float" in listed.stdout

    with sessions.begin() as session:  # the cause is fixed
        session.execute(update(Event).where(Event.id == letter.item_id).values(
            properties={"cart_id": "k1", "total": 30}))
    retried = rapport(settings, "dead-letters", "retry", "--workspace", shop.id, str(letter.id))
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == f"dead letter {letter.id}: event {letter.item_id} owed again (evaluate_events)\n"
    drain(runtime)

    [letter] = letters(sessions, shop)
    assert letter.status == "resolved" and letter.resolved_at == clock()
    with sessions() as session:
        contact_runs = session.scalars(select(Run).where(Run.workspace_id == shop.id,
                                                         Run.trigger_event_id == letter.item_id)).all()
    assert len(contact_runs) == 1
    assert [line.detail for line in journal(sessions, shop, "dead_letter_resolved")] == [
        f"event went through (dead letter {letter.id} resolved)"]


def test_cli_retry_names_a_letter_that_is_not_dead(runtime: Runtime, settings: Settings, shop) -> None:
    """Retrying an id that is no dead letter is a one-line error and a non-zero exit."""
    result = rapport(settings, "dead-letters", "retry", "--workspace", shop.id, "999999")
    assert result.returncode == 1
    assert result.stderr.startswith("rapport: error: no dead letter 999999 in workspace ")


def test_orders_in_a_split_job_are_counted_once(runtime: Runtime, sessions, shop, clock) -> None:
    """Halves that went through are never run again: each valid order counts once in its contact's metrics."""
    definition = {"trigger": {"event": "order_placed", "filter": {"property": "total", "op": "gt", "value": 10}},
                  "steps": WAIT_TWICE}
    with sessions.begin() as session:
        create_journey(session, shop.id, "Thanks", definition, templates=SEED_TEMPLATES, now=clock())
        ingest_events(session, shop.id, [
            {"id": f"order-{n}", "type": "order_placed", "contact": {"external_id": f"c-{n}"},
             "properties": {"order_id": f"o{n}", "total": "40.00"}} for n in range(40)], now=clock())
        session.execute(update(Event).where(Event.workspace_id == shop.id, Event.external_id == "order-7")
                        .values(properties={"order_id": "o7", "total": POISON_TOTAL}))
    drain(runtime)
    with sessions() as session:
        counted = session.execute(select(Contact.external_id, Contact.orders_count, Contact.total_spent)
                                  .where(Contact.workspace_id == shop.id)).all()
    assert sorted((orders, str(spent)) for name, orders, spent in counted if name != "c-7") == [(1, "40.00")] * 39
    assert [(orders, spent) for name, orders, spent in counted if name == "c-7"] == [(0, 0)]


def test_an_outage_fails_the_job_as_a_whole_and_charges_no_item(runtime: Runtime, sessions, shop, clock) -> None:
    """Redis unreachable mid-job is not an item's fault: the job fails (to be handed out again), no letter is made."""
    ingest_carts(sessions, shop, clock, 4)
    with sessions() as session:
        ids = list(session.scalars(select(Event.id).where(Event.workspace_id == shop.id)))
    calls: list[list[int]] = []

    def work(part: list[int]) -> None:
        calls.append(part)
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with pytest.raises(RedisConnectionError):
        dead_letters.run_isolating(sessions, JobName.EVALUATE_EVENTS, ids, work, clock=clock)
    assert calls == [sorted(ids)] and letters(sessions, shop) == []

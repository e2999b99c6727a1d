"""The abandoned-cart journey driven through the real services, RQ jobs and SMTP, with a moved clock."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.contacts.profiles import timeline
from engine.journeys.versions import create_journey
from engine.links.tokens import verify_click
from engine.store.models import Contact, Event, Message, Run
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, SmtpServer, drain
from triggers import abandoned_cart
from workers.dev.demo import cart_event, order_event
from workers.jobs import Jobs
from workers.runtime import Runtime
from workers.scheduler import run_once


@pytest.fixture
def journey(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> int:
    with sessions.begin() as session:
        return create_journey(session, shop.id, "Cart reminder", abandoned_cart.recipe(wait_seconds=3600),
                              templates=SEED_TEMPLATES, now=clock()).id


def ingest(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, *payloads: dict[str, Any]) -> None:
    with sessions.begin() as session:
        results = ingest_events(session, shop.id, list(payloads), now=clock())
    assert all(r.status == "accepted" for r in results), results


def tick(rt: Runtime) -> None:
    """What the scheduler does each tick, then what the workers do with it."""
    run_once(rt)
    drain(rt)


def lose_queued_work(redis: Redis, namespace: str) -> None:
    """What a Redis flush does to this test: every queued id and job is gone."""
    keys = list(redis.scan_iter(f"*{namespace}*"))
    assert keys, "expected queued work to lose"
    redis.delete(*keys)


def runs_of(sessions: sessionmaker[Session], shop: Shop) -> list[Run]:
    with sessions() as session:
        return list(session.scalars(select(Run).where(Run.workspace_id == shop.id).order_by(Run.id)))


def messages_of(sessions: sessionmaker[Session], shop: Shop) -> list[Message]:
    with sessions() as session:
        return list(session.scalars(select(Message).where(Message.workspace_id == shop.id).order_by(Message.id)))


def test_the_reminder_goes_out_only_after_the_wait(runtime: Runtime, sessions, shop, clock, journey,
                                                  smtp_server: SmtpServer) -> None:
    """A cart left alone gets one reminder an hour later, with its items, prices and recovery link."""
    event = cart_event("cart-1")
    ingest(sessions, shop, clock, event)
    drain(runtime)
    [run] = runs_of(sessions, shop)
    assert run.status == "waiting" and run.next_at == clock.current + timedelta(hours=1)

    clock.advance(minutes=59)
    tick(runtime)
    assert smtp_server.messages == []

    clock.advance(minutes=2)
    tick(runtime)
    [mail] = smtp_server.messages
    assert mail["To"] == "ada@example.com"
    assert "left something in your cart" in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for item in event["properties"]["items"]:
        assert item["name"] in text and item["name"] in html
    assert "€34.00" in text and "€12.50" in text and "€59.00" in text
    assert "https://demo-shop.example/cart/cart-1/recover" in text
    # In the HTML the link goes through the signed click redirect, which leads to the cart.
    [tracked] = [href for href in re.findall(r'href="([^"]+)"', html) if "/t/c/" in href]
    click = verify_click(runtime.settings.secret_key, tracked.rsplit("/", 1)[1])
    assert click is not None and click.url == "https://demo-shop.example/cart/cart-1/recover"
    assert mail["Message-ID"]
    [message] = messages_of(sessions, shop)
    assert message.status == "sent" and message.provider_id == mail["Message-ID"]
    assert runs_of(sessions, shop)[0].status == "completed"


def test_an_order_for_the_cart_before_the_wait_ends_means_no_email(runtime, sessions, shop, clock, journey,
                                                                   smtp_server) -> None:
    """order_placed for the same cart ends the run; the timeline says why."""
    ingest(sessions, shop, clock, cart_event("cart-2"))
    drain(runtime)
    clock.advance(minutes=20)
    ingest(sessions, shop, clock, order_event("cart-2"))
    drain(runtime)
    clock.advance(hours=2)
    tick(runtime)

    assert smtp_server.messages == []
    assert messages_of(sessions, shop) == []
    [run] = runs_of(sessions, shop)
    assert (run.status, run.exit_reason) == ("exited", "goal reached: order placed")
    with sessions() as session:
        entries = timeline(session, shop.id, "demo-customer-1")
    exits = [e for e in entries if e["kind"] == "exited"]
    assert exits and exits[0]["detail"] == "goal reached: order placed"
    assert exits[0]["journey"] == "Cart reminder"


def test_an_order_for_another_cart_does_not_end_the_run(runtime, sessions, shop, clock, journey,
                                                       smtp_server) -> None:
    """The goal is matched on the correlation key: buying cart B does not cancel cart A's reminder."""
    ingest(sessions, shop, clock, cart_event("cart-a"))
    drain(runtime)
    ingest(sessions, shop, clock, order_event("cart-b"))
    drain(runtime)
    clock.advance(hours=1, seconds=1)
    tick(runtime)
    assert len(smtp_server.messages) == 1


def test_updates_of_one_cart_enroll_once_and_the_email_shows_the_latest_cart(runtime, sessions, shop, clock,
                                                                             journey, smtp_server) -> None:
    """Three cart_updated events for one cart make one run; the reminder shows the last state."""
    for price in (10, 20, 30):
        event = cart_event("cart-3")
        event["properties"]["items"] = [{"name": f"Item at {price}", "quantity": 1, "price": price}]
        ingest(sessions, shop, clock, event)
        clock.advance(minutes=1)
    drain(runtime)
    assert len(runs_of(sessions, shop)) == 1
    clock.advance(hours=1)
    tick(runtime)
    [mail] = smtp_server.messages
    text = mail.get_body(("plain",)).get_content()
    assert "Item at 30" in text and "Item at 10" not in text


def test_evaluating_the_same_events_twice_enrolls_and_sends_once(runtime, sessions, shop, clock, journey,
                                                                smtp_server) -> None:
    """Jobs may run twice: re-running evaluation and advancement changes nothing."""
    jobs = Jobs(runtime)
    ingest(sessions, shop, clock, cart_event("cart-4"))
    with sessions() as session:
        event_ids = list(session.scalars(select(Event.id).where(Event.workspace_id == shop.id)))
    jobs.evaluate_events(event_ids)
    jobs.evaluate_events(event_ids)
    drain(runtime)
    clock.advance(hours=2)
    [run] = runs_of(sessions, shop)
    jobs.advance_runs([run.id])
    jobs.advance_runs([run.id])
    tick(runtime)
    [message] = messages_of(sessions, shop)
    jobs.dispatch_messages([message.id])
    assert len(smtp_server.messages) == 1


def test_a_contact_who_opted_out_is_skipped_with_the_reason(runtime, sessions, shop, clock, journey,
                                                           smtp_server) -> None:
    """Consent is checked when the message is made; the skip is stored and on the timeline."""
    event = cart_event("cart-5")
    event["contact"]["consent"] = {"email": "opted_out"}
    ingest(sessions, shop, clock, event)
    drain(runtime)
    clock.advance(hours=1, seconds=1)
    tick(runtime)
    assert smtp_server.messages == []
    [message] = messages_of(sessions, shop)
    assert (message.status, message.skip_reason) == ("skipped", "skipped: contact opted out of email")
    with sessions() as session:
        kinds = [e["kind"] for e in timeline(session, shop.id, "demo-customer-1")]
    assert "skipped" in kinds


def test_a_template_variable_the_event_lacks_fails_the_message_clearly(runtime, sessions, shop, clock, journey,
                                                                      smtp_server) -> None:
    """No half-rendered email: the message fails, naming the missing variable."""
    event = cart_event("cart-6")
    del event["properties"]["recovery_url"]
    ingest(sessions, shop, clock, event)
    drain(runtime)
    clock.advance(hours=1, seconds=1)
    tick(runtime)
    assert smtp_server.messages == []
    [message] = messages_of(sessions, shop)
    assert message.status == "failed"
    assert "abandoned_cart" in message.error and "recovery_url" in message.error


def test_a_temporary_smtp_refusal_is_retried_and_delivers_once(runtime, sessions, shop, clock, journey,
                                                               smtp_server) -> None:
    """451 from the server puts the message back with a backoff; the retry delivers exactly one copy."""
    smtp_server.handler.refuse = ["451 4.3.0 Try again later"]
    ingest(sessions, shop, clock, cart_event("cart-7"))
    drain(runtime)
    clock.advance(hours=1, seconds=1)
    tick(runtime)
    [message] = messages_of(sessions, shop)
    assert message.status == "scheduled" and message.attempts == 1 and "451" in message.error
    assert smtp_server.messages == []
    clock.advance(hours=1)
    tick(runtime)
    assert len(smtp_server.messages) == 1
    assert messages_of(sessions, shop)[0].status == "sent"


def test_a_permanent_smtp_refusal_fails_the_message_without_retry(runtime, sessions, shop, clock, journey,
                                                                 smtp_server) -> None:
    """550 is final: the message fails with the server's reason and is not tried again."""
    smtp_server.handler.refuse = ["550 5.1.1 No such user"]
    ingest(sessions, shop, clock, cart_event("cart-8"))
    drain(runtime)
    clock.advance(hours=1, seconds=1)
    tick(runtime)
    clock.advance(hours=5)
    tick(runtime)
    [message] = messages_of(sessions, shop)
    assert message.status == "failed" and "550" in message.error
    assert smtp_server.messages == []


def test_work_lost_with_redis_is_handed_out_again_from_the_database(runtime, sessions, shop, clock, journey,
                                                                   smtp_server, redis) -> None:
    """Flushing the queues delays the journey but loses nothing and sends once."""
    ingest(sessions, shop, clock, cart_event("cart-9"))
    lose_queued_work(redis, runtime.settings.namespace)  # the evaluation job is gone
    tick(runtime)
    assert runs_of(sessions, shop) == []  # not re-sent yet: it may still be in flight

    clock.advance(seconds=runtime.settings.redeliver_after + 1)
    tick(runtime)
    [run] = runs_of(sessions, shop)
    assert run.status == "waiting"

    clock.advance(hours=1)
    run_once(runtime)  # the due run is handed out ...
    lose_queued_work(redis, runtime.settings.namespace)  # ... and lost again
    clock.advance(seconds=runtime.settings.redeliver_after + 1)
    tick(runtime)
    tick(runtime)
    assert len(smtp_server.messages) == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Message).where(Message.workspace_id == shop.id)) == 1
        assert session.scalar(select(func.count()).select_from(Contact).where(Contact.workspace_id == shop.id)) == 1


def test_a_checkout_started_enrolls_like_a_cart_update_and_one_run_covers_both(
    runtime: Runtime, sessions, shop, clock, journey, smtp_server
) -> None:
    """Shopify's checkouts/create (checkout_started) starts the reminder; the later cart update joins that run."""
    checkout = cart_event("cart-10")
    checkout["type"] = "checkout_started"
    ingest(sessions, shop, clock, checkout, cart_event("cart-10"))
    drain(runtime)
    assert len(runs_of(sessions, shop)) == 1
    clock.advance(hours=1, seconds=1)
    tick(runtime)
    assert len(smtp_server.messages) == 1

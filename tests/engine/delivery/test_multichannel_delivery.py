"""Journeys sending on SMS, Telegram, WhatsApp and Viber through the real adapters and the local
provider servers, with a moved clock: routing, fallback, quiet hours, caps, retries and pausing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.delivery.channel_health import WAITING_FOR_RESUME, pause, record_failure, resume
from engine.journeys.versions import create_journey
from engine.settings import ProviderSettings
from engine.store.models import ChannelHealth, Contact, JournalEntry, Message, Suppression, Workspace
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, SmtpServer, drain
from workers.dev.fake_providers.server import FakeProviders
from workers.dev.fake_providers.state import fake_provider_env
from workers.runtime import Runtime
from workers.scheduler import run_once

NUMBERS = itertools.count(1)
CART = {"cart_id": "k1", "items": [{"name": "Moka pot", "price": 39, "quantity": 1}], "currency": "EUR",
        "total": 39, "recovery_url": "https://shop.example/cart/k1"}


@pytest.fixture
def providers() -> Iterator[FakeProviders]:
    with FakeProviders(port=0) as fake:
        yield fake


@pytest.fixture
def rt(runtime: Runtime, providers: FakeProviders) -> Runtime:
    """The worker runtime with every channel's adapter pointed at the local provider servers."""
    runtime.settings = replace(runtime.settings, rate_limits="",
                               providers=ProviderSettings.from_env(fake_provider_env(providers.url)))
    return runtime


def tick(rt: Runtime) -> None:
    run_once(rt)
    drain(rt)


def contact(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, customer: str = "c-1", *,
            messengers: dict[str, str] | None = None, **fields: Any) -> None:
    """Make the contact with an event, then link messenger accounts as /start and Viber would."""
    send(sessions, shop, clock, "profile_updated", customer=customer, contact=fields)
    if messengers:
        with sessions.begin() as session:
            session.execute(update(Contact).where(Contact.workspace_id == shop.id, Contact.external_id == customer)
                            .values(messenger_ids=messengers))


def send(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, event_type: str, *, customer: str = "c-1",
         contact: dict[str, Any] | None = None, properties: dict[str, Any] | None = None) -> None:
    payload = {"id": f"{event_type}-{next(NUMBERS)}", "type": event_type, "occurred_at": clock().isoformat(),
               "contact": {"external_id": customer, **(contact or {})}, "properties": properties or {}}
    with sessions.begin() as session:
        [result] = ingest_events(session, shop.id, [payload], now=clock())
    assert result.status == "accepted", result


def journey(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, *steps: dict[str, Any]) -> int:
    definition = {"trigger": {"event": "cart_updated", "key": "cart_id"},
                  "steps": [{"id": f"s{i}", "type": "send", "template": "abandoned_cart", **step}
                            for i, step in enumerate(steps, 1)]}
    with sessions.begin() as session:
        return create_journey(session, shop.id, "Cart", definition, templates=SEED_TEMPLATES, now=clock()).id


def messages(sessions: sessionmaker[Session], shop: Shop) -> list[Message]:
    with sessions() as session:
        return list(session.scalars(select(Message).where(Message.workspace_id == shop.id).order_by(Message.id)))


def journal(sessions: sessionmaker[Session], shop: Shop, kind: str) -> list[str]:
    with sessions() as session:
        return [d or "" for d in session.scalars(select(JournalEntry.detail).where(
            JournalEntry.workspace_id == shop.id, JournalEntry.kind == kind).order_by(JournalEntry.id))]


def set_workspace(sessions: sessionmaker[Session], shop: Shop, **settings: Any) -> None:
    with sessions.begin() as session:
        session.execute(update(Workspace).where(Workspace.id == shop.id).values(settings=settings))


def test_each_channel_reaches_its_provider_with_the_rendered_message(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, providers: FakeProviders,
        smtp_server: SmtpServer) -> None:
    """One cart, four sends: SMS (with segments), Telegram with a link button, Viber, and a WhatsApp
    template (no message from the contact in 24 hours, so no free text)."""
    contact(sessions, shop, clock, phone="+49 151 12345678", consent={"sms": "opted_in", "whatsapp": "opted_in"},
            timezone="Europe/Berlin", first_name="Ann", messengers={"telegram": "4242", "viber": "vb-1"})
    journey(sessions, shop, clock, {"channel": "sms"}, {"channel": "telegram"}, {"channel": "viber"},
            {"channel": "whatsapp"})
    clock.advance(hours=2)  # 11:00 UTC, 12:00 in Berlin: no quiet hours
    send(sessions, shop, clock, "cart_updated", properties=CART)
    drain(rt)
    by_provider = {m.provider: m for m in providers.messages}
    assert set(by_provider) == {"twilio", "telegram", "viber", "whatsapp"}, [
        (m.channel, m.status, m.skip_reason, m.error) for m in messages(sessions, shop)]
    assert by_provider["twilio"].to == "+4915112345678" and "https://shop.example/cart/k1" in by_provider["twilio"].text
    telegram = by_provider["telegram"]
    assert telegram.to == "4242" and "Moka pot" in telegram.text
    [button] = telegram.meta["buttons"]
    assert button["text"] == "Return to my cart" and "/t/c/" in button["url"]  # a tracked link
    assert by_provider["whatsapp"].meta["template"]["name"] == "abandoned_cart"
    sent = {m.channel: m for m in messages(sessions, shop)}
    assert {m.status for m in sent.values()} == {"sent"}
    assert sent["sms"].meta["segments"] == 1 and sent["sms"].meta["encoding"] == "GSM-7"
    assert sent["telegram"].provider_id == telegram.provider_id


def test_a_blocked_telegram_chat_falls_back_to_sms_and_is_suppressed(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, providers: FakeProviders,
        smtp_server: SmtpServer) -> None:
    """Telegram answers 403 (bot blocked): the chat is suppressed and the same message goes by SMS."""
    contact(sessions, shop, clock, phone="+4915112345678", consent={"sms": "opted_in"}, timezone="Europe/Berlin",
            messengers={"telegram": "blocked"})
    journey(sessions, shop, clock, {"channel": "telegram", "fallback": ["sms", "email"]})
    clock.advance(hours=2)
    send(sessions, shop, clock, "cart_updated", properties=CART)
    drain(rt)
    [message] = messages(sessions, shop)
    assert (message.channel, message.status, message.to_address) == ("sms", "sent", "+4915112345678")
    assert [m.provider for m in providers.messages] == ["twilio"]
    [line] = journal(sessions, shop, "fallback")
    assert "blocked by the user" in line and "falling back to sms" in line
    with sessions() as session:
        [suppressed] = session.scalars(select(Suppression).where(Suppression.workspace_id == shop.id)).all()
    assert (suppressed.channel, suppressed.address) == ("telegram", "blocked")


def test_an_sms_at_night_waits_for_nine_in_the_morning_local_time(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, providers: FakeProviders,
        smtp_server: SmtpServer) -> None:
    """Quiet hours defer, never drop: 01:00 in Los Angeles, so the SMS goes at 09:00 there (17:00 UTC)."""
    contact(sessions, shop, clock, phone="+14155550123", consent={"sms": "opted_in"},
            timezone="America/Los_Angeles")
    journey(sessions, shop, clock, {"channel": "sms"})
    send(sessions, shop, clock, "cart_updated", properties=CART)
    drain(rt)
    [message] = messages(sessions, shop)
    assert (message.status, message.scheduled_at) == ("scheduled", datetime(2030, 1, 7, 17, 0, tzinfo=UTC))
    assert journal(sessions, shop, "message_deferred")[0].startswith("deferred: quiet hours for sms until 09:00")
    clock.current = datetime(2030, 1, 7, 16, 59, tzinfo=UTC)
    tick(rt)
    assert providers.messages == []
    clock.advance(minutes=1)
    tick(rt)
    assert [m.to for m in providers.messages] == ["+14155550123"]


def test_a_frequency_cap_skips_or_defers_as_the_step_says(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, smtp_server: SmtpServer) -> None:
    """Cap 1 email a day across journeys: the second send skips with the reason; a deferring step waits a day."""
    set_workspace(sessions, shop, frequency_caps={"email": {"max": 1, "days": 1}})
    contact(sessions, shop, clock, email="ann@example.com")
    journey(sessions, shop, clock, {"channel": "email"}, {"channel": "email"},
            {"channel": "email", "when_capped": "defer"})
    send(sessions, shop, clock, "cart_updated", properties=CART)
    drain(rt)
    first, second, third = messages(sessions, shop)
    assert first.status == "sent" and len(smtp_server.messages) == 1
    assert (second.status, second.skip_reason) == ("skipped", "skipped: frequency cap 1/1d on email")
    assert (third.status, third.scheduled_at) == ("scheduled", clock() + timedelta(days=1))
    clock.advance(days=1)
    tick(rt)
    assert len(smtp_server.messages) == 2


def test_a_provider_error_is_retried_and_delivers_exactly_once(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, providers: FakeProviders,
        smtp_server: SmtpServer) -> None:
    """Twilio answers 500, then 200: one SMS reaches the provider, after a backoff."""
    contact(sessions, shop, clock, phone="+4915112345678", consent={"sms": "opted_in"}, timezone="Europe/Berlin")
    journey(sessions, shop, clock, {"channel": "sms"})
    clock.advance(hours=2)
    providers.fail_next("twilio", status=500)
    send(sessions, shop, clock, "cart_updated", properties=CART)
    drain(rt)
    [message] = messages(sessions, shop)
    assert message.status == "scheduled" and message.attempts == 1 and providers.messages == []
    clock.advance(hours=1)
    tick(rt)
    tick(rt)
    assert len(providers.messages) == 1
    [message] = messages(sessions, shop)
    assert (message.status, message.attempts) == ("sent", 2)


def test_a_channel_that_keeps_failing_pauses_and_its_messages_move_to_the_fallback(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, providers: FakeProviders,
        smtp_server: SmtpServer) -> None:
    """Viber refuses our credentials twice in a row (a permanent failure of the channel, counted at once):
    it pauses for the workspace; the next Viber send goes by email instead."""
    rt.settings = replace(rt.settings, channel_pause_after=2)
    for customer in ("c-1", "c-2", "c-3"):
        contact(sessions, shop, clock, customer, email=f"{customer}@example.com", timezone="Europe/Berlin",
                messengers={"viber": f"vb-{customer}"})
    journey(sessions, shop, clock, {"channel": "viber", "fallback": ["email"]})
    clock.advance(hours=2)
    providers.fail_next("viber", status=401, times=2)
    for customer in ("c-1", "c-2"):
        send(sessions, shop, clock, "cart_updated", customer=customer, properties={**CART, "cart_id": customer})
        drain(rt)
    with sessions() as session:
        health = session.scalars(select(ChannelHealth).where(ChannelHealth.workspace_id == shop.id)).one()
    assert health.channel == "viber" and health.paused_at is not None and health.consecutive_failures == 2
    assert journal(sessions, shop, "channel_paused")
    send(sessions, shop, clock, "cart_updated", customer="c-3", properties={**CART, "cart_id": "c-3"})
    drain(rt)
    third = messages(sessions, shop)[-1]
    assert (third.channel, third.status, third.to_address) == ("email", "sent", "c-3@example.com")
    assert "viber paused" in (third.skip_reason or "") + " ".join(journal(sessions, shop, "message_scheduled"))


def test_a_channel_paused_by_failures_whose_messages_all_fell_back_is_probed_by_the_next_one_and_closes(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, providers: FakeProviders,
        smtp_server: SmtpServer) -> None:
    """Nothing is held for Viber (its messages went by email), so after the cool-down the scheduler
    lets it half-open: the next cart reminder is made on Viber again, goes through, and closes it."""
    rt.settings = replace(rt.settings, channel_pause_after=2)
    for customer in ("c-1", "c-2", "c-3", "c-4"):
        contact(sessions, shop, clock, customer, email=f"{customer}@example.com", timezone="Europe/Berlin",
                messengers={"viber": f"vb-{customer}"})
    journey(sessions, shop, clock, {"channel": "viber", "fallback": ["email"]})
    clock.advance(hours=2)
    providers.fail_next("viber", status=401, times=2)
    for customer in ("c-1", "c-2", "c-3"):
        send(sessions, shop, clock, "cart_updated", customer=customer, properties={**CART, "cart_id": customer})
        drain(rt)
    assert [(m.channel, m.status) for m in messages(sessions, shop)] == [("email", "sent")] * 3
    with sessions() as session:
        assert session.scalars(select(ChannelHealth.state).where(ChannelHealth.workspace_id == shop.id)).one() == "open"

    clock.advance(minutes=1)
    tick(rt)  # the cool-down is over and nothing is held: Viber half-opens
    send(sessions, shop, clock, "cart_updated", customer="c-4", properties={**CART, "cart_id": "c-4"})
    drain(rt)

    fourth = messages(sessions, shop)[-1]
    assert (fourth.channel, fourth.status, fourth.to_address) == ("viber", "sent", "vb-c-4")
    assert [m.provider for m in providers.messages] == ["viber"]
    with sessions() as session:
        health = session.scalars(select(ChannelHealth).where(ChannelHealth.workspace_id == shop.id)).one()
    assert (health.state, health.paused_at, health.opened_total) == ("closed", None, 1)


def test_a_channel_this_deployment_has_no_adapter_for_falls_back(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, providers: FakeProviders,
        smtp_server: SmtpServer) -> None:
    """No Viber credentials: the Viber step goes by its fallback, email, saying why."""
    rt.settings = replace(rt.settings, providers=replace(rt.settings.providers, viber_auth_token=""))
    contact(sessions, shop, clock, "c-1", email="c-1@example.com", timezone="Europe/Berlin",
            messengers={"viber": "vb-c-1"})
    journey(sessions, shop, clock, {"channel": "viber", "fallback": ["email"]})
    clock.advance(hours=2)
    send(sessions, shop, clock, "cart_updated", customer="c-1", properties=CART)
    drain(rt)

    [message] = messages(sessions, shop)
    assert (message.channel, message.status, message.to_address) == ("email", "sent", "c-1@example.com")
    assert providers.messages == []
    assert any("viber is not configured" in line for line in journal(sessions, shop, "fallback"))


def test_a_message_held_for_a_paused_channel_goes_out_when_it_is_resumed(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, providers: FakeProviders,
        smtp_server: SmtpServer) -> None:
    """No fallback: after a failed attempt a person pauses Viber; the message's retry waits (one
    timeline line, however long, and no probe), and resuming the channel sends it at once, exactly once."""
    contact(sessions, shop, clock, "c-1", email="c-1@example.com", timezone="Europe/Berlin",
            messengers={"viber": "vb-c-1"})
    journey(sessions, shop, clock, {"channel": "viber"})
    clock.advance(hours=2)
    providers.fail_next("viber", status=500)
    send(sessions, shop, clock, "cart_updated", customer="c-1", properties=CART)
    drain(rt)  # the 500: the message is to be retried
    with sessions.begin() as session:
        assert pause(session, shop.id, "viber", now=clock())
    for _ in range(3):  # its retry, and two more hours of rechecks
        clock.advance(hours=1, minutes=1)
        tick(rt)
    [held] = messages(sessions, shop)
    assert (held.status, held.error, providers.messages) == ("scheduled", WAITING_FOR_RESUME, [])
    assert len([line for line in journal(sessions, shop, "message_deferred") if "held until" in line]) == 1

    with sessions.begin() as session:
        assert resume(session, shop.id, "viber", now=clock()) is True
    tick(rt)

    [sent] = messages(sessions, shop)
    assert (sent.status, sent.error, sent.attempts) == ("sent", None, 2)
    assert [m.provider for m in providers.messages] == ["viber"]


def test_a_message_made_while_its_only_channel_is_paused_waits_for_the_resume(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, providers: FakeProviders,
        smtp_server: SmtpServer) -> None:
    """Viber is already paused and the contact has no email: the message is made on Viber and
    held, not skipped; the timeline says so; the resume sends it."""
    contact(sessions, shop, clock, "c-1", timezone="Europe/Berlin", messengers={"viber": "vb-c-1"})
    journey(sessions, shop, clock, {"channel": "viber", "fallback": ["email"]})
    clock.advance(hours=2)
    with sessions.begin() as session:
        assert record_failure(session, shop.id, "viber", "HTTP 500", now=clock(), pause_after=1)
    send(sessions, shop, clock, "cart_updated", customer="c-1", properties=CART)
    drain(rt)

    [held] = messages(sessions, shop)
    assert (held.channel, held.status, held.error) == ("viber", "scheduled", WAITING_FOR_RESUME)
    assert any(line.startswith("held: viber is paused") for line in journal(sessions, shop, "message_scheduled"))
    with sessions.begin() as session:
        resume(session, shop.id, "viber", now=clock())
    tick(rt)
    assert [m.status for m in messages(sessions, shop)] == ["sent"]
    assert [m.provider for m in providers.messages] == ["viber"]


def test_on_resume_a_stale_held_reminder_is_skipped_and_a_transactional_message_still_goes(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, providers: FakeProviders,
        smtp_server: SmtpServer) -> None:
    """With held messages expiring after an hour, a resume two hours into the outage skips
    the held marketing message (saying why) and sends the held transactional one."""
    set_workspace(sessions, shop, held_messages={"expire_after_hours": 1})
    contact(sessions, shop, clock, "c-1", timezone="Europe/Berlin", messengers={"viber": "vb-c-1"},
            consent={"viber": "opted_in"})
    journey(sessions, shop, clock, {"channel": "viber"}, {"channel": "viber", "transactional": True})
    clock.advance(hours=2)
    with sessions.begin() as session:
        record_failure(session, shop.id, "viber", "HTTP 500", now=clock(), pause_after=1)
    send(sessions, shop, clock, "cart_updated", customer="c-1", properties=CART)
    drain(rt)
    assert [(m.status, m.error) for m in messages(sessions, shop)] == [("scheduled", WAITING_FOR_RESUME)] * 2

    clock.advance(hours=2)
    with sessions.begin() as session:
        resume(session, shop.id, "viber", now=clock())
    tick(rt)

    marketing, transactional = messages(sessions, shop)
    assert (marketing.status, marketing.skip_reason) == ("skipped", "skipped: held over 1 h while viber was paused")
    assert transactional.status == "sent"
    assert len(providers.messages) == 1
    assert "skipped: held over 1 h while viber was paused" in journal(sessions, shop, "skipped")


def test_whatsapp_sends_free_text_within_24_hours_of_the_contacts_last_message(
        rt: Runtime, sessions, shop: Shop, clock: FakeClock, providers: FakeProviders,
        smtp_server: SmtpServer) -> None:
    """The contact wrote an hour ago: the rendered text goes as a text message, not a template."""
    contact(sessions, shop, clock, phone="+4915112345678", consent={"whatsapp": "opted_in"},
            timezone="Europe/Berlin")
    with sessions.begin() as session:
        session.execute(update(Contact).where(Contact.workspace_id == shop.id)
                        .values(last_inbound_at={"whatsapp": clock().isoformat()}))
    journey(sessions, shop, clock, {"channel": "whatsapp"})
    clock.advance(hours=2)
    send(sessions, shop, clock, "cart_updated", properties=CART)
    drain(rt)
    [sent] = providers.messages
    assert sent.provider == "whatsapp" and "template" not in sent.meta
    assert "your cart at Test Shop is still waiting" in sent.text

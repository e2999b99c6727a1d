"""End to end on all five channels: gunicorn, an RQ worker, the scheduler, the SMTP sink and the local
provider servers as real processes; contacts link Telegram and Viber by writing to the bots; one
journey sends by email, SMS, Telegram, WhatsApp and Viber, with a fallback, a quiet-hours deferral
and a frequency-capped skip; the outbox and the timelines say what happened."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.processes import (
    Stack,
    backing_services,
    create_workspace,
    healthy,
    process_env,
    spawn,
    start_web_and_scheduler,
    stop_all,
    wait_for,
)
from workers.dev.fake_providers.state import fake_provider_env
from workers.supervisor import free_ports

pytestmark = pytest.mark.e2e
ZONES = ["Pacific/Kiritimati", "Pacific/Auckland", "Asia/Tokyo", "Asia/Kolkata", "Europe/Berlin",
         "America/Sao_Paulo", "America/New_York", "America/Denver", "America/Los_Angeles", "Pacific/Honolulu",
         "Pacific/Pago_Pago"]


def zone_where(hours: range) -> str:
    """A time zone whose local hour now is in `hours` (the zones cover the day every 3 hours or less)."""
    now = datetime.now(UTC)
    return next(z for z in ZONES if now.astimezone(ZoneInfo(z)).hour in hours)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e-channels")
    with backing_services(tmp, redis_db=10) as backing:
        port, sink_port, fake_port = free_ports(3)
        base_url, fake_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{fake_port}"
        env = process_env(backing, tmp, port, SMTP_URL=f"smtp://127.0.0.1:{sink_port}", BASE_URL=base_url,
                          TELEGRAM_BOT_USERNAME="rapport_demo_bot", VIBER_CHAT_URI="rapportdemo",
                          **fake_provider_env(fake_url))
        s = Stack(base_url, env, create_workspace(env, "Channel Shop"), backing.redis)
        s.fake_url = fake_url  # type: ignore[attr-defined]
        try:
            s.others.append(spawn([sys.executable, "-m", "workers.cli", "smtp-sink", "--port", str(sink_port)], env))
            s.others.append(spawn([sys.executable, "-m", "workers.cli", "fake-providers", "--port", str(fake_port),
                                   "--capture-outbox", "--callback-url", base_url, "--callback-delay", "0.2"], env))
            start_web_and_scheduler(s, port)
            s.start_worker()
            wait_for(lambda: healthy(base_url + "/healthz"), timeout=30, what="the web server")
            wait_for(lambda: healthy(fake_url + "/_fake/health"), timeout=30, what="the fake providers")
            yield s
        finally:
            stop_all(s)


def api(stack: Stack, method: str, path: str, body: Any) -> Any:
    response = stack.send(method, path, body)
    assert response.status_code < 300, response.text
    return response.json()


def write_to_bot(stack: Stack, provider: str, sender: str, text: str) -> None:
    """A person writing to our bot: the fake provider posts the signed webhook to our app."""
    answer = requests.post(stack.fake_url + "/_fake/inbound", timeout=10, json={  # type: ignore[attr-defined]
        "provider": provider, "workspace_id": stack.credentials.workspace_id, "sender": sender, "text": text})
    assert answer.status_code == 200 and answer.json()["status"] == 200, answer.text


def profile(stack: Stack, customer: str, **fields: Any) -> None:
    event = {"id": f"profile-{customer}", "type": "profile_updated", "occurred_at": datetime.now(UTC).isoformat(),
             "contact": {"external_id": customer, **fields}, "properties": {}}
    assert stack.post(event).status_code == 202


def link_messengers(stack: Stack, customer: str, *, telegram_chat: str, viber_user: str | None) -> None:
    """The contact opens the deep links from the preference page: /start <token> on Telegram and Viber."""
    links = stack.get(f"/api/v1/contacts/{customer}/messenger-links")
    telegram_token = links["telegram"].rsplit("start=", 1)[1]
    write_to_bot(stack, "telegram", telegram_chat, f"/start {telegram_token}")
    if viber_user is not None:
        viber_token = links["viber"].rsplit("context=", 1)[1]
        write_to_bot(stack, "viber", viber_user, f"/start {viber_token}")


def timeline(stack: Stack, customer: str) -> dict[str, Any]:
    data: dict[str, Any] = stack.get(f"/api/v1/contacts/{customer}/timeline")
    return data


def test_one_journey_reaches_a_contact_on_all_five_channels_with_fallback_quiet_hours_and_a_cap(
        stack: Stack) -> None:
    """Day contact: email, SMS, Telegram, WhatsApp and Viber all arrive; the second email is capped.
    Night contact: the SMS waits for 09:00 local time. Blocked Telegram chat: the message goes by SMS."""
    api(stack, "PUT", "/api/v1/settings/delivery", {"frequency_caps": {"email": {"max": 1, "days": 1}}})
    day, night = zone_where(range(10, 19)), zone_where(range(1, 7))
    steps = [{"id": "s1", "type": "send", "channel": "email", "template": "abandoned_cart"},
             {"id": "s2", "type": "send", "channel": "sms", "template": "abandoned_cart"},
             {"id": "s3", "type": "send", "channel": "telegram", "fallback": ["sms"], "template": "abandoned_cart"},
             {"id": "s4", "type": "send", "channel": "whatsapp", "template": "abandoned_cart"},
             {"id": "s5", "type": "send", "channel": "viber", "template": "abandoned_cart"},
             {"id": "s6", "type": "send", "channel": "email", "template": "abandoned_cart"}]
    api(stack, "POST", "/api/v1/journeys", {"name": "Cart on every channel", "publish": True, "definition": {
        "trigger": {"event": "cart_updated", "key": "cart_id"}, "steps": steps}})
    consent = {"sms": "opted_in", "whatsapp": "opted_in", "email": "opted_in"}
    people = {"day": ("+4915112340001", day), "night": ("+4915112340002", night), "blocked": ("+4915112340003", day)}
    for who, (phone, zone) in people.items():
        profile(stack, who, email=f"{who}@example.com", phone=phone, timezone=zone, first_name=who.title(),
                consent=consent)
    link_messengers(stack, "day", telegram_chat="7001", viber_user="viber-day")
    link_messengers(stack, "blocked", telegram_chat="403403403", viber_user=None)  # then blocks the bot
    for who in people:
        cart = {"cart_id": f"cart-{who}", "items": [{"name": "Moka pot", "price": 39, "quantity": 1}],
                "currency": "EUR", "total": 39, "recovery_url": f"https://shop.example/cart/{who}"}
        assert stack.post({"id": f"cart-{who}", "type": "cart_updated", "occurred_at": datetime.now(UTC).isoformat(),
                           "contact": {"external_id": who}, "properties": cart}).status_code == 202

    def settled(who: str, count: int) -> list[dict[str, Any]] | None:
        messages = timeline(stack, who)["messages"]
        return messages if len(messages) == count and not any(
            m["status"] in ("claimed", "sending") or (m["status"] == "scheduled" and m["scheduled_at"] <= _now())
            for m in messages) else None

    day_messages = wait_for(lambda: settled("day", 6), timeout=60, what="the day contact's six messages")
    by_step = {m["step"]: m for m in day_messages}
    assert {by_step[s]["channel"] for s in ("s1", "s2", "s3", "s4", "s5")} == {
        "email", "sms", "telegram", "whatsapp", "viber"}
    assert all(by_step[s]["status"] in ("sent", "delivered") for s in ("s1", "s2", "s3", "s4", "s5"))
    assert (by_step["s6"]["status"], by_step["s6"]["skip_reason"]) == ("skipped",
                                                                       "skipped: frequency cap 1/1d on email")
    outbox = stack.get("/api/v1/outbox?limit=500")["messages"]
    channels_reached = {m["channel"] for m in outbox if m["message_id"] in {by_step[s]["id"] for s in by_step}}
    assert channels_reached == {"email", "sms", "telegram", "whatsapp", "viber"}
    telegram = next(m for m in outbox if m["message_id"] == by_step["s3"]["id"])
    assert telegram["to"] == "7001" and "Moka pot" in telegram["text"]

    night_messages = wait_for(lambda: settled("night", 6), timeout=60, what="the night contact's messages")
    sms = next(m for m in night_messages if m["step"] == "s2")
    assert sms["status"] == "scheduled" and sms["scheduled_at"] > _now()
    opens_at = datetime.fromisoformat(sms["scheduled_at"]).astimezone(ZoneInfo(night))
    assert (opens_at.hour, opens_at.minute) == (9, 0)
    deferred = [e for e in timeline(stack, "night")["timeline"]
                if e["kind"] == "message_deferred" and e["step"] == "s2"]
    assert deferred and deferred[0]["detail"].startswith("deferred: quiet hours for sms until 09:00")

    blocked_messages = wait_for(lambda: settled("blocked", 6), timeout=60, what="the blocked contact's messages")
    fallback = next(m for m in blocked_messages if m["step"] == "s3")
    assert (fallback["channel"], fallback["to"]) == ("sms", "+4915112340003")
    assert fallback["status"] in ("sent", "delivered")
    lines = [e for e in timeline(stack, "blocked")["timeline"] if e["kind"] == "fallback"]
    assert lines and "blocked by the user" in lines[0]["detail"]
    # The provider's receipts come back through the webhooks: the SMS is marked delivered.
    wait_for(lambda: next(m for m in timeline(stack, "day")["messages"] if m["step"] == "s2")["status"]
             == "delivered", timeout=30, what="the SMS delivery receipt")


def _now() -> str:
    return datetime.now(UTC).isoformat()

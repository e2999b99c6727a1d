"""Providers' webhooks through the route: signatures, receipts, inbound messages, answers per provider."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from engine.contacts.ingest import ingest_events
from engine.links.messenger import parse_start_token, start_token
from engine.settings import ProviderSettings, Settings
from engine.store.models import Contact, Event, Message
from tests.conftest import FakeClock, Shop
from tests.webapp.conftest import auth_headers, close_app
from webapp.app import create_app

PUBLIC = "https://rapport.example.com"  # BASE_URL: what providers see, in front of a proxy
TWILIO_TOKEN = "twilio-auth-token"
TELEGRAM_SECRET = "tg-webhook-secret"
WHATSAPP_SECRET = "wa-app-secret"
VIBER_TOKEN = "viber-auth-token"
PHONE = "+4915112345678"
PROVIDERS = ProviderSettings(
    twilio_account_sid="AC" + "0" * 32, twilio_auth_token=TWILIO_TOKEN, twilio_from="+15005550006",
    telegram_bot_token="123456:ABC", telegram_webhook_secret=TELEGRAM_SECRET,
    whatsapp_token="wa-token", whatsapp_phone_number_id="1098765", whatsapp_app_secret=WHATSAPP_SECRET,
    whatsapp_verify_token="verify-me", viber_auth_token=VIBER_TOKEN,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings with every provider configured and a public base URL."""
    return replace(settings, base_url=PUBLIC, providers=PROVIDERS, telegram_bot_username="shop_bot",
                   viber_chat_uri="demoshop")


# --- how each provider signs (written from their docs, independently of the adapters) ---

def twilio_post(client: FlaskClient, path: str, form: dict[str, str], *, signed_url: str | None = None,
                token: str = TWILIO_TOKEN) -> TestResponse:
    """Twilio: base64(HMAC-SHA1(auth token, URL + each field's name and value, sorted by name))."""
    data = (signed_url or PUBLIC + path) + "".join(k + v for k, v in sorted(form.items()))
    signature = base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()
    return client.post(path, data=urlencode(form), headers={
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})


def telegram_post(client: FlaskClient, shop: Shop, update: dict[str, Any] | bytes, *,
                  secret: str = TELEGRAM_SECRET) -> TestResponse:
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    return client.post(f"/api/v1/providers/telegram/{shop.id}", data=body, headers={
        "X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"})


def whatsapp_post(client: FlaskClient, shop: Shop, payload: dict[str, Any], *,
                  secret: str = WHATSAPP_SECRET) -> TestResponse:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(f"/api/v1/providers/whatsapp/{shop.id}", data=body, headers={
        "X-Hub-Signature-256": signature, "Content-Type": "application/json"})


def viber_post(client: FlaskClient, shop: Shop, payload: dict[str, Any], *, token: str = VIBER_TOKEN) -> TestResponse:
    body = json.dumps(payload).encode()
    return client.post(f"/api/v1/providers/viber/{shop.id}", data=body, headers={
        "X-Viber-Content-Signature": hmac.new(token.encode(), body, hashlib.sha256).hexdigest(),
        "Content-Type": "application/json"})


# --- real payloads ---

def twilio_inbound(text: str, sid: str = "SM" + "1" * 32, sender: str = PHONE) -> dict[str, str]:
    return {"ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received",
            "Body": text, "To": "+15005550006", "NumSegments": "1", "MessageSid": sid,
            "AccountSid": "AC" + "0" * 32, "From": sender, "ApiVersion": "2010-04-01"}


def telegram_update(update_id: int, chat_id: int, text: str, date: int = 1_893_999_600) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": date, "text": text,
        "from": {"id": chat_id, "is_bot": False, "first_name": "Grace", "language_code": "en"},
        "chat": {"id": chat_id, "first_name": "Grace", "type": "private"},
        **({"entities": [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]}
           if text.startswith("/") else {})}}


def whatsapp_change(value: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
                                       "metadata": {"display_phone_number": "15550783881",
                                                    "phone_number_id": "1098765"}, **value}}]}]}


def whatsapp_text(wamid: str, text: str, wa_id: str = PHONE[1:], timestamp: int = 1_893_999_600) -> dict[str, Any]:
    return whatsapp_change({"contacts": [{"profile": {"name": "Ada"}, "wa_id": wa_id}],
                            "messages": [{"from": wa_id, "id": wamid, "timestamp": str(timestamp),
                                          "type": "text", "text": {"body": text}}]})


def viber_message(token: int, user_id: str, text: str) -> dict[str, Any]:
    return {"event": "message", "timestamp": 1_893_999_600_000, "chat_hostname": "SN-CHAT-02_",
            "message_token": token, "silent": False,
            "sender": {"id": user_id, "name": "Ivan", "language": "ru", "country": "RU", "api_version": 10},
            "message": {"text": text, "type": "text"}}


# --- helpers ---

def add_contact(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, external_id: str,
                **fields: Any) -> int:
    with sessions.begin() as session:
        [result] = ingest_events(session, shop.id, [{"id": f"evt-{external_id}", "type": "contact_updated",
                                                     "contact": {"external_id": external_id, **fields}}], now=clock())
        assert result.contact_id is not None
        return result.contact_id


def received(sessions: sessionmaker[Session], shop: Shop) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).where(Event.workspace_id == shop.id,
                                                        Event.type == "message_received").order_by(Event.id)))


def get_contact(sessions: sessionmaker[Session], contact_id: int) -> Contact:
    with sessions() as session:
        found = session.get(Contact, contact_id)
        assert found is not None
        return found


def sent_message(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, contact_id: int, channel: str,
                 provider_id: str) -> int:
    with sessions.begin() as session:
        message = Message(workspace_id=shop.id, contact_id=contact_id, channel=channel, template="t", status="sent",
                          provider_id=provider_id, scheduled_at=clock(), sent_at=clock(), created_at=clock())
        session.add(message)
        session.flush()
        return message.id


def message_status(sessions: sessionmaker[Session], message_id: int) -> str:
    with sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message.status


# --- Twilio (sms) ---

def test_a_signed_twilio_sms_becomes_an_event_and_gets_empty_twiml(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    """200 with `<Response/>` as text/xml (send no reply); the reply is a message_received event."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE)
    response = twilio_post(client, f"/api/v1/providers/sms/{shop.id}", twilio_inbound("Status"))
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert response.get_data(as_text=True).endswith("<Response/>")
    [event] = received(sessions, shop)
    assert event.contact_id == ada and event.properties["text"] == "Status" and event.properties["sender"] == PHONE
    assert "sms" in get_contact(sessions, ada).last_inbound_at


def test_a_twilio_post_with_a_bad_signature_is_refused_and_stores_nothing(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]) -> None:
    """403 JSON {error, message} for a wrong token, and for a missing header."""
    path = f"/api/v1/providers/sms/{shop.id}"
    response = twilio_post(client, path, twilio_inbound("STOP"), token="wrong")
    assert response.status_code == 403 and response.json is not None
    assert response.json["error"] == "forbidden" and "X-Twilio-Signature" in response.json["message"]
    assert client.post(path, data=urlencode(twilio_inbound("STOP")),
                       content_type="application/x-www-form-urlencoded").status_code == 403
    assert received(sessions, shop) == []


def test_twilio_signs_the_public_url_not_the_one_behind_the_proxy(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]) -> None:
    """The URL is rebuilt from BASE_URL + path + query: signed over the internal URL, it fails."""
    path = f"/api/v1/providers/sms/{shop.id}?source=twilio"
    form = twilio_inbound("hello")
    assert twilio_post(client, path, form, signed_url=f"http://localhost{path}").status_code == 403
    assert twilio_post(client, path, form, signed_url=PUBLIC + path).status_code == 200
    assert len(received(sessions, shop)) == 1


def test_twilio_status_callbacks_move_the_message_forward_once(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    """delivered after sent moves it; the same callback again answers 200 and changes nothing."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE)
    sid = "SM" + "a" * 32
    message_id = sent_message(sessions, shop, clock, ada, "sms", sid)
    form = {"AccountSid": "AC" + "0" * 32, "MessageSid": sid, "SmsSid": sid, "MessageStatus": "delivered",
            "SmsStatus": "delivered", "To": PHONE, "From": "+15005550006", "ApiVersion": "2010-04-01"}
    path = f"/api/v1/providers/sms/{shop.id}"
    assert twilio_post(client, path, form).status_code == 200
    assert message_status(sessions, message_id) == "delivered"
    assert twilio_post(client, path, form).status_code == 200
    late_sent = {**form, "MessageStatus": "sent", "SmsStatus": "sent"}
    assert twilio_post(client, path, late_sent).status_code == 200
    assert message_status(sessions, message_id) == "delivered"


def test_stop_by_sms_opts_out_and_a_repeat_delivery_makes_one_event(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    """STOP sets sms consent opted_out; Twilio retrying the same MessageSid adds nothing."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE, consent={"sms": "opted_in"})
    for _ in range(2):
        assert twilio_post(client, f"/api/v1/providers/sms/{shop.id}", twilio_inbound(" stop ")).status_code == 200
    assert get_contact(sessions, ada).consent == {"sms": "opted_out"}
    [event] = received(sessions, shop)
    assert event.properties["command"] == "stop"


# --- Telegram ---

def test_telegram_start_with_the_contacts_link_token_links_the_chat(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    """The token from GET messenger-links, sent as /start, puts the chat id on the contact."""
    ada = add_contact(sessions, shop, clock, "cust-1", email="ada@example.com")
    links = client.get("/api/v1/contacts/cust-1/messenger-links", headers=auth_headers(shop.credentials)).json
    assert links is not None and links["telegram"].startswith("https://t.me/shop_bot?start=")
    token = links["telegram"].split("start=", 1)[1]
    response = telegram_post(client, shop, telegram_update(1001, 4242, f"/start {token}"))
    assert response.status_code == 200 and response.json == {"ok": True}
    linked = get_contact(sessions, ada)
    assert linked.messenger_ids == {"telegram": "4242"} and linked.consent == {"telegram": "opted_in"}
    assert received(sessions, shop)[0].contact_id == ada


def test_telegram_with_a_wrong_secret_token_is_refused(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]) -> None:
    """X-Telegram-Bot-Api-Secret-Token must be the secret given to setWebhook."""
    assert telegram_post(client, shop, telegram_update(1, 4242, "hi"), secret="guess").status_code == 403
    assert received(sessions, shop) == []


def test_a_tampered_start_token_links_nothing_and_keeps_the_message(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    """A forged /start is answered 200 (Telegram must not retry it) but the chat stays unlinked."""
    ada = add_contact(sessions, shop, clock, "cust-1", email="ada@example.com")
    other = add_contact(sessions, shop, clock, "cust-2", email="bob@example.com")
    # Bob's token with Ada's id put in: the signature no longer matches.
    raw = bytearray(base64.urlsafe_b64decode(start_token("test-secret-key", shop.id, other) + "=="))
    raw[1:9] = ada.to_bytes(8, "big")
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert parse_start_token("test-secret-key", shop.id, forged) is None
    assert telegram_post(client, shop, telegram_update(7, 4242, f"/start {forged}")).status_code == 200
    assert get_contact(sessions, ada).messenger_ids == get_contact(sessions, other).messenger_ids == {}
    [event] = received(sessions, shop)
    assert event.contact_id not in (ada, other) and event.properties["linked"] is False


def test_a_telegram_update_delivered_twice_makes_one_event(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]) -> None:
    """Telegram redelivers an update it got no 200 for; the update_id de-duplicates it."""
    for _ in range(2):
        assert telegram_post(client, shop, telegram_update(55, 4242, "hello")).status_code == 200
    assert len(received(sessions, shop)) == 1


def test_a_signed_body_that_is_not_json_is_a_bad_request(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]) -> None:
    """400 malformed_webhook: the signature holds but the payload is not the provider's format."""
    response = telegram_post(client, shop, b"not json")
    assert response.status_code == 400 and response.json is not None
    assert response.json["error"] == "malformed_webhook"


# --- WhatsApp ---

def test_a_signed_whatsapp_message_opens_the_window_and_becomes_an_event(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    """Found by phone "+<wa id>"; last_inbound_at.whatsapp is the message's time."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE)
    response = whatsapp_post(client, shop, whatsapp_text("wamid.HBgLMQ==", "status", timestamp=1_893_999_600))
    assert response.status_code == 200 and response.json == {"ok": True}
    [event] = received(sessions, shop)
    assert event.contact_id == ada and event.properties["channel"] == "whatsapp"
    written = datetime.fromtimestamp(1_893_999_600, UTC)
    assert get_contact(sessions, ada).last_inbound_at == {"whatsapp": written.isoformat()}


def test_whatsapp_with_a_bad_signature_is_refused(client: FlaskClient, shop: Shop,
                                                  sessions: sessionmaker[Session]) -> None:
    """X-Hub-Signature-256 made with another app secret: 403, nothing stored."""
    assert whatsapp_post(client, shop, whatsapp_text("wamid.X", "hi"), secret="other").status_code == 403
    assert received(sessions, shop) == []


def test_whatsapp_statuses_are_receipts(client: FlaskClient, shop: Shop, sessions: sessionmaker[Session],
                                        clock: FakeClock) -> None:
    """A `read` status moves the message to opened; replaying the webhook changes nothing."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE)
    message_id = sent_message(sessions, shop, clock, ada, "whatsapp", "wamid.OUT1")
    payload = whatsapp_change({"statuses": [{"id": "wamid.OUT1", "status": "read", "timestamp": "1893999700",
                                             "recipient_id": PHONE[1:]}]})
    assert whatsapp_post(client, shop, payload).status_code == 200
    assert whatsapp_post(client, shop, payload).status_code == 200
    assert message_status(sessions, message_id) == "opened"


def test_the_whatsapp_subscription_handshake_echoes_the_challenge(client: FlaskClient, shop: Shop) -> None:
    """GET with hub.mode=subscribe and our verify token: 200 and the challenge; a wrong token: 403."""
    path = f"/api/v1/providers/whatsapp/{shop.id}"
    ok = client.get(path, query_string={"hub.mode": "subscribe", "hub.verify_token": "verify-me",
                                        "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "1158201444"
    wrong = client.get(path, query_string={"hub.mode": "subscribe", "hub.verify_token": "nope",
                                           "hub.challenge": "1158201444"})
    assert wrong.status_code == 403
    assert client.get("/api/v1/providers/whatsapp/ws_unknown", query_string={
        "hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1"}).status_code == 404


# --- Viber ---

def test_a_signed_viber_message_becomes_an_event_and_a_bad_signature_is_refused(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]) -> None:
    """X-Viber-Content-Signature over the raw body with the auth token; unknown users get a contact."""
    assert viber_post(client, shop, viber_message(1, "01234567890A=", "hi"), token="other").status_code == 403
    response = viber_post(client, shop, viber_message(4912661846655238145, "01234567890A=", "Статус"))
    assert response.status_code == 200
    [event] = received(sessions, shop)
    assert event.properties["keyword"] == "статус" and event.properties["sender"] == "01234567890A="


# --- the route itself ---

def test_unknown_workspaces_and_channels_are_not_found(client: FlaskClient, shop: Shop) -> None:
    """404 for a workspace that does not exist (even signed) and for a channel with no adapter."""
    assert twilio_post(client, "/api/v1/providers/sms/ws_nope", twilio_inbound("hi")).status_code == 404
    assert client.post(f"/api/v1/providers/email/{shop.id}", data=b"{}").status_code == 404
    assert client.post(f"/api/v1/providers/pigeon/{shop.id}", data=b"{}").status_code == 404


def test_a_webhook_that_fails_to_apply_answers_500_and_the_retry_succeeds(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    """Nothing is half-stored: the provider retries after the 500 and the retry makes the one event."""
    good = clock.current
    clock.current = good.replace(tzinfo=None)  # a broken clock: the database refuses naive times
    response = telegram_post(client, shop, telegram_update(77, 4242, "hello"))
    assert response.status_code == 500 and response.json is not None and response.json["error"] == "internal_error"
    assert received(sessions, shop) == []
    clock.current = good
    assert telegram_post(client, shop, telegram_update(77, 4242, "hello")).status_code == 200
    assert len(received(sessions, shop)) == 1


def test_a_channel_without_credentials_accepts_no_webhooks(settings: Settings, clock: FakeClock, shop: Shop) -> None:
    """No signing secret configured: the route answers 404 instead of trusting unsigned posts."""
    app = create_app(replace(settings, providers=ProviderSettings()), clock=clock)
    try:
        response = app.test_client().post(f"/api/v1/providers/telegram/{shop.id}",
                                          data=json.dumps(telegram_update(1, 1, "hi")))
        assert response.status_code == 404
    finally:
        close_app(app)


# --- messenger links ---

def test_messenger_links_need_the_api_key_and_a_known_contact(client: FlaskClient, shop: Shop,
                                                             sessions: sessionmaker[Session],
                                                             clock: FakeClock) -> None:
    """Both links carry the same signed token for the contact; 401 without a key, 404 for a stranger."""
    ada = add_contact(sessions, shop, clock, "cust/1", email="ada@example.com")
    response = client.get("/api/v1/contacts/cust/1/messenger-links", headers=auth_headers(shop.credentials))
    assert response.status_code == 200 and response.json is not None
    token = response.json["telegram"].split("start=", 1)[1]
    assert parse_start_token("test-secret-key", shop.id, token) == ada
    assert response.json["viber"] == f"viber://pa?chatURI=demoshop&context={token}"
    assert client.get("/api/v1/contacts/cust/1/messenger-links").status_code == 401
    assert client.get("/api/v1/contacts/nobody/messenger-links",
                      headers=auth_headers(shop.credentials)).status_code == 404


@pytest.fixture
def bare_app(settings: Settings, clock: FakeClock) -> Iterator[Flask]:
    app = create_app(replace(settings, telegram_bot_username="", viber_chat_uri=""), clock=clock)
    yield app
    close_app(app)


def test_messenger_links_are_null_without_a_bot(bare_app: Flask, shop: Shop, sessions: sessionmaker[Session],
                                               clock: FakeClock) -> None:
    """No TELEGRAM_BOT_USERNAME or VIBER_CHAT_URI: both links are null."""
    add_contact(sessions, shop, clock, "cust-1", email="ada@example.com")
    response = bare_app.test_client().get("/api/v1/contacts/cust-1/messenger-links",
                                          headers=auth_headers(shop.credentials))
    assert response.json == {"telegram": None, "viber": None}

"""GET /api/v1/channels, POST /api/v1/channels/<channel>/pause and .../resume: each channel's breaker,
configuration and recent messages; a person pauses and resumes by hand."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery.channel_health import record_failure
from engine.settings import ProviderSettings, Settings
from engine.store.models import Contact, Message
from tests.conftest import FakeClock, Shop
from tests.webapp.conftest import auth_headers, close_app, send_signed
from webapp.app import create_app


def add_messages(sessions: sessionmaker[Session], workspace_id: str, rows: list[tuple[str, str]], *,
                 created_at: datetime, scheduled_at: datetime | None = None,
                 sent_at: datetime | None = None) -> list[int]:
    """Messages of (channel, status) for one new contact; returns their ids."""
    with sessions.begin() as session:
        contact = Contact(workspace_id=workspace_id, external_id=f"c-{secrets.token_hex(6)}",
                          created_at=created_at, updated_at=created_at)
        session.add(contact)
        session.flush()
        messages = [Message(workspace_id=workspace_id, contact_id=contact.id, channel=channel, template="t",
                            status=status, scheduled_at=scheduled_at or created_at, sent_at=sent_at,
                            created_at=created_at)
                    for channel, status in rows]
        session.add_all(messages)
        session.flush()
        return [m.id for m in messages]


def channels(client: FlaskClient, shop: Shop) -> dict[str, dict]:
    response = client.get("/api/v1/channels", headers=auth_headers(shop.credentials))
    assert response.status_code == 200
    return {c["channel"]: c for c in response.get_json()["channels"]}


def pause(sessions: sessionmaker[Session], shop: Shop, channel: str, clock: FakeClock) -> None:
    for _ in range(2):
        with sessions.begin() as session:
            record_failure(session, shop.id, channel, "HTTP 401: bad token", now=clock(), pause_after=2)


@pytest.fixture
def configured_client(settings: Settings, clock: FakeClock) -> Iterator[FlaskClient]:
    """An app whose deployment has SMTP and Telegram credentials, and nothing else."""
    app: Flask = create_app(replace(settings, smtp_url="smtp://127.0.0.1:2525",
                                    providers=ProviderSettings(telegram_bot_token="123:abc")), clock=clock)
    yield app.test_client()
    close_app(app)


def test_every_channel_is_listed_healthy_with_what_this_deployment_can_send(configured_client, shop) -> None:
    """All five channels, in order; `configured` follows the credentials in Settings."""
    listed = channels(configured_client, shop)
    assert list(listed) == ["email", "sms", "telegram", "whatsapp", "viber"]
    assert {c: v["configured"] for c, v in listed.items()} == {
        "email": True, "sms": False, "telegram": True, "whatsapp": False, "viber": False}
    assert listed["sms"] == {"channel": "sms", "configured": False, "state": "closed", "paused": False,
                             "paused_by": None, "since": None, "paused_at": None, "next_probe_at": None,
                             "consecutive_failures": 0, "opened_total": 0, "last_error": None, "messages_24h": {}}


def test_a_paused_channel_shows_as_paused_with_its_last_error(client, shop, sessions, clock) -> None:
    """After N failures in a row the API says the breaker is open, since when, why, and when it probes."""
    pause(sessions, shop, "whatsapp", clock)
    whatsapp = channels(client, shop)["whatsapp"]
    assert (whatsapp["state"], whatsapp["paused"], whatsapp["paused_by"]) == ("open", True, "breaker")
    assert whatsapp["since"] == whatsapp["paused_at"] == clock().isoformat()
    assert whatsapp["next_probe_at"] == (clock() + timedelta(minutes=1)).isoformat()
    assert whatsapp["consecutive_failures"] == 2 and whatsapp["last_error"] == "HTTP 401: bad token"
    assert whatsapp["opened_total"] == 1


def test_a_person_pauses_a_channel_and_no_probe_ends_it(client, shop, clock) -> None:
    """POST .../pause holds the channel by hand: open, paused by a person, no probe planned."""
    response = send_signed(client, "POST", "/api/v1/channels/telegram/pause", shop.credentials)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["channel"], body["state"], body["paused"], body["paused_by"], body["next_probe_at"]) == (
        "telegram", "open", True, "person", None)
    clock.advance(hours=3)
    assert channels(client, shop)["telegram"]["state"] == "open"
    response = send_signed(client, "POST", "/api/v1/channels/telegram/resume", shop.credentials)
    assert (response.get_json()["state"], response.get_json()["paused_by"]) == ("closed", None)


def test_pausing_an_unknown_channel_is_404(client, shop) -> None:
    """A typo pauses nothing."""
    response = send_signed(client, "POST", "/api/v1/channels/fax/pause", shop.credentials)
    assert response.status_code == 404


def test_resuming_a_channel_answers_its_new_status(client, shop, sessions, clock) -> None:
    """POST .../resume unpauses and clears the count; the answer is the channel's status."""
    pause(sessions, shop, "sms", clock)
    response = send_signed(client, "POST", "/api/v1/channels/sms/resume", shop.credentials)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["channel"], body["paused"], body["paused_at"], body["consecutive_failures"]) == ("sms", False, None, 0)
    assert channels(client, shop)["sms"]["paused"] is False


def test_resuming_a_healthy_channel_is_harmless(client, shop) -> None:
    """Resume is idempotent: a running channel stays running."""
    response = send_signed(client, "POST", "/api/v1/channels/email/resume", shop.credentials)
    assert response.status_code == 200 and response.get_json()["paused"] is False


def test_an_unknown_channel_is_404_naming_the_real_ones(client, shop) -> None:
    """A typo gets a clear message, not a silent success."""
    response = send_signed(client, "POST", "/api/v1/channels/fax/resume", shop.credentials)
    assert response.status_code == 404
    assert response.get_json() == {"error": "not_found", "message": "no channel named 'fax'; "
                                   "the channels are email, sms, telegram, whatsapp, viber"}


def test_messages_of_the_last_24_hours_are_counted_by_status(client, shop, second_shop, sessions, clock) -> None:
    """Only this workspace's messages created within 24 hours count."""
    now = clock()
    add_messages(sessions, shop.id, [("email", "sent"), ("email", "sent"), ("email", "bounced"), ("sms", "failed")],
                 created_at=now - timedelta(hours=23))
    add_messages(sessions, shop.id, [("email", "sent")], created_at=now - timedelta(hours=25))
    add_messages(sessions, second_shop.id, [("email", "sent")], created_at=now)
    listed = channels(client, shop)
    assert listed["email"]["messages_24h"] == {"sent": 2, "bounced": 1}
    assert listed["sms"]["messages_24h"] == {"failed": 1}
    assert listed["telegram"]["messages_24h"] == {}


def test_one_workspace_cannot_see_or_resume_anothers_channels(client, shop, second_shop, sessions, clock) -> None:
    """Health is scoped to the caller's workspace."""
    pause(sessions, second_shop, "viber", clock)
    assert channels(client, shop)["viber"]["paused"] is False
    send_signed(client, "POST", "/api/v1/channels/viber/resume", shop.credentials)
    assert channels(client, second_shop)["viber"]["paused"] is True


def test_the_channels_api_needs_the_api_key(client) -> None:
    """No key, no health: 401 with the usual JSON error."""
    assert client.get("/api/v1/channels").status_code == 401
    assert client.post("/api/v1/channels/sms/resume").status_code == 401
    assert client.post("/api/v1/channels/sms/pause").status_code == 401

"""The preference center: channels, preferred channel and topics through a signed link, behind a CSRF token."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from engine.settings import Settings
from engine.store.models import Workspace
from tests.conftest import FakeClock, Shop
from tests.webapp.public.test_unsubscribe import (
    Recipient,
    contact_of,
    events_of,
    journal_of,
    links_for,
    make_recipient,
    path_of,
)


@pytest.fixture
def recipient(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> Recipient:
    """A contact with an email (opted in), a phone (no SMS consent yet) and a Telegram chat."""
    return make_recipient(sessions, shop, clock, contact={"phone": "+4930123456"})


def with_telegram(sessions: sessionmaker[Session], recipient: Recipient) -> None:
    from engine.store.models import Contact

    with sessions.begin() as session:
        session.execute(update(Contact).where(Contact.id == recipient.contact_id)
                        .values(messenger_ids={"telegram": "99887766"}))


def url_of(settings: Settings, shop: Shop, recipient: Recipient) -> str:
    return path_of(links_for(settings, shop, recipient).preferences_url)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form"
    return found.group(1)


def checked(html: str) -> set[str]:
    """The names (and radio values) of the ticked inputs."""
    found = set()
    for tag in re.findall(r"<input[^>]*>", html):
        if " checked" in tag:
            name = re.search(r'name="([^"]+)"', tag).group(1)  # type: ignore[union-attr]
            value = re.search(r'value="([^"]*)"', tag)
            found.add(f"{name}={value.group(1)}" if "radio" in tag and value else name)
    return found


def save(client: FlaskClient, url: str, fields: dict[str, Any]) -> Any:
    page = client.get(url)
    return client.post(url, data={"csrf_token": csrf_of(page.text), **fields})


def test_the_page_shows_only_the_channels_the_contact_can_be_reached_on(
    client: FlaskClient, settings: Settings, sessions, shop, recipient: Recipient
) -> None:
    """Email, SMS and WhatsApp (by the phone), Telegram once linked, no Viber; ticked as the send policy sees them."""
    page = client.get(url_of(settings, shop, recipient))
    assert "channel_telegram" not in page.text
    with_telegram(sessions, recipient)
    page = client.get(url_of(settings, shop, recipient))
    assert page.status_code == 200 and "What Test Shop sends you" in page.text
    for channel in ("email", "sms", "whatsapp", "telegram"):
        assert f"channel_{channel}" in page.text
    assert "channel_viber" not in page.text
    assert "c***@example.com" in page.text and "c-1@example.com" not in page.text  # a hint, not the address
    assert "*** 3456" in page.text and "+4930123456" not in page.text
    # email opted in; Telegram has no state, which allows it; SMS and WhatsApp need an opt-in first
    assert checked(page.text) == {"channel_email", "channel_telegram", "preferred_channel=", "topic_newsletter",
                                  "topic_offers"}
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_saved_preferences_persist_are_journaled_and_announced(
    client: FlaskClient, settings: Settings, sessions, shop, recipient: Recipient
) -> None:
    """Opting in to SMS, preferring it and dropping offers is stored, shown again, journaled once and an event."""
    url = url_of(settings, shop, recipient)
    answer = save(client, url, {"channel_email": "on", "channel_sms": "on", "preferred_channel": "sms",
                                "topic_newsletter": "on", "action": "save"})
    assert answer.status_code == 200 and "Your preferences are saved" in answer.text
    contact = contact_of(sessions, recipient.contact_id)
    assert contact.consent == {"email": "opted_in", "sms": "opted_in"}
    assert contact.preferred_channel == "sms"
    assert contact.topics == {"newsletter": True, "offers": False}
    assert checked(client.get(url).text) == {"channel_email", "channel_sms", "preferred_channel=sms",
                                             "topic_newsletter"}
    [line] = journal_of(sessions, recipient.contact_id, "preferences_updated")
    assert line.detail == "preference center: sms: opted_in, preferred channel: sms, topic offers: off"
    [event] = events_of(sessions, recipient.contact_id, "preferences_updated")
    assert event.properties["consent"] == {"sms": "opted_in"} and event.properties["topics"] == {"offers": False}
    save(client, url, {"channel_email": "on", "channel_sms": "on", "preferred_channel": "sms",
                       "topic_newsletter": "on", "action": "save"})
    assert len(journal_of(sessions, recipient.contact_id, "preferences_updated")) == 1  # nothing changed: no line


def test_unticking_email_opts_out_of_email(
    client: FlaskClient, settings: Settings, sessions, shop, recipient: Recipient
) -> None:
    """A channel left unticked is opted out."""
    save(client, url_of(settings, shop, recipient), {"topic_newsletter": "on", "topic_offers": "on"})
    assert contact_of(sessions, recipient.contact_id).consent["email"] == "opted_out"


def test_unsubscribe_from_everything_turns_every_channel_and_topic_off(
    client: FlaskClient, settings: Settings, sessions, shop, recipient: Recipient
) -> None:
    """The big button opts out of all reachable channels and topics, whatever boxes were ticked."""
    with_telegram(sessions, recipient)
    url = url_of(settings, shop, recipient)
    save(client, url, {"channel_email": "on", "channel_sms": "on", "channel_telegram": "on", "action": "save"})
    answer = save(client, url, {"channel_email": "on", "topic_offers": "on", "action": "unsubscribe_all"})
    assert "unsubscribed from everything" in answer.text
    contact = contact_of(sessions, recipient.contact_id)
    assert contact.consent == {"email": "opted_out", "sms": "opted_out", "telegram": "opted_out",
                               "whatsapp": "opted_out"}
    assert contact.topics == {"newsletter": False, "offers": False}
    [event] = events_of(sessions, recipient.contact_id, "unsubscribed")
    assert event.properties["all"] is True and event.source == "preference_center"


def test_workspace_topics_come_from_its_settings(
    client: FlaskClient, settings: Settings, sessions, shop, recipient: Recipient
) -> None:
    """A workspace lists its own topics; unknown topic fields posted are ignored."""
    with sessions.begin() as session:
        session.execute(update(Workspace).where(Workspace.id == shop.id).values(
            settings={"topics": [{"id": "recipes", "name": "Weekly recipes"}]}))
    url = url_of(settings, shop, recipient)
    assert "Weekly recipes" in client.get(url).text and "Newsletter" not in client.get(url).text
    save(client, url, {"channel_email": "on", "topic_recipes": "on", "topic_hacked": "on"})
    assert contact_of(sessions, recipient.contact_id).topics == {"recipes": True}


def test_a_post_without_the_form_token_or_cookie_changes_nothing(
    client: FlaskClient, settings: Settings, sessions, shop, recipient: Recipient
) -> None:
    """A cross-site post brings neither the nonce cookie nor a matching token: 400, nothing stored."""
    url = url_of(settings, shop, recipient)
    assert client.post(url, data={"action": "unsubscribe_all"}).status_code == 400
    token = csrf_of(client.get(url).text)
    stranger = client.application.test_client()  # no cookie from our page
    answer = stranger.post(url, data={"csrf_token": token, "action": "unsubscribe_all"})
    assert answer.status_code == 400 and "expired" in answer.text
    assert contact_of(sessions, recipient.contact_id).consent["email"] == "opted_in"


def test_the_form_token_expires_after_a_day(
    client: FlaskClient, settings: Settings, sessions, shop, clock: FakeClock, recipient: Recipient
) -> None:
    """A page left open for more than a day must be reloaded before saving."""
    url = url_of(settings, shop, recipient)
    token = csrf_of(client.get(url).text)
    clock.advance(days=1, minutes=1)
    assert client.post(url, data={"csrf_token": token, "action": "unsubscribe_all"}).status_code == 400
    assert contact_of(sessions, recipient.contact_id).consent["email"] == "opted_in"


def test_a_tampered_preferences_link_is_refused(
    client: FlaskClient, settings: Settings, sessions, shop, recipient: Recipient
) -> None:
    """A changed token is a 400 page for GET and POST, and an unsubscribe token is no preferences token."""
    url = url_of(settings, shop, recipient)
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert client.get(tampered).status_code == 400
    assert client.post(tampered, data={"action": "unsubscribe_all"}).status_code == 400
    unsubscribe_token = path_of(links_for(settings, shop, recipient).unsubscribe_url).removeprefix("/u/")
    assert client.get("/p/" + unsubscribe_token).status_code == 400
    assert contact_of(sessions, recipient.contact_id).consent["email"] == "opted_in"

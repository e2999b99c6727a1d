"""One-click unsubscribe: a GET only asks, a POST (RFC 8058 or the page's button) opts out, once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.links.tokens import message_links
from engine.settings import Settings
from engine.store.models import Contact, Event, JournalEntry, Message
from templates.emails import EMAIL_DIR, load_email_template
from tests.conftest import FakeClock, Shop


@dataclass(frozen=True)
class Recipient:
    contact_id: int
    message_id: int


def make_recipient(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, *, external_id: str = "c-1",
                   channel: str = "email", status: str = "sent", contact: dict[str, Any] | None = None,
                   **message: Any) -> Recipient:
    """A contact (opted in to email) and one message sent to them."""
    contact_in = {"external_id": external_id, "email": f"{external_id}@example.com", "consent": {"email": "opted_in"},
                  **(contact or {})}
    with sessions.begin() as session:
        [result] = ingest_events(session, shop.id, [{"id": f"seed-{external_id}", "type": "contact_updated",
                                                    "contact": contact_in}], now=clock())
        assert result.contact_id is not None
        values = {"workspace_id": shop.id, "contact_id": result.contact_id, "channel": channel,
                  "template": "welcome", "to_address": contact_in.get("email"), "status": status,
                  "scheduled_at": clock(), "sent_at": clock(), "created_at": clock(), "context": {}, **message}
        row = Message(**values)
        session.add(row)
        session.flush()
        return Recipient(result.contact_id, row.id)


def links_for(settings: Settings, shop: Shop, recipient: Recipient) -> Any:
    return message_links(settings.secret_key, settings.base_url, workspace_id=shop.id,
                         contact_id=recipient.contact_id, message_id=recipient.message_id)


def path_of(url: str) -> str:
    return url.removeprefix("http://127.0.0.1:8000")


def contact_of(sessions: sessionmaker[Session], contact_id: int) -> Contact:
    with sessions() as session:
        return session.get_one(Contact, contact_id)


def events_of(sessions: sessionmaker[Session], contact_id: int, event_type: str) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).where(Event.contact_id == contact_id, Event.type == event_type)))


def journal_of(sessions: sessionmaker[Session], contact_id: int, kind: str) -> list[JournalEntry]:
    with sessions() as session:
        return list(session.scalars(select(JournalEntry).where(JournalEntry.contact_id == contact_id,
                                                               JournalEntry.kind == kind)))


@pytest.fixture
def recipient(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> Recipient:
    return make_recipient(sessions, shop, clock)


def test_opening_the_unsubscribe_link_only_asks_and_changes_nothing(
    client: FlaskClient, settings: Settings, sessions, shop, recipient: Recipient
) -> None:
    """Mail scanners follow links: a GET (or HEAD) shows a page with a button and leaves consent as it was."""
    url = path_of(links_for(settings, shop, recipient).unsubscribe_url)
    page = client.get(url)
    assert page.status_code == 200
    assert "Unsubscribe from Test Shop?" in page.text and '<form method="post"' in page.text
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    assert client.head(url).status_code == 200
    assert contact_of(sessions, recipient.contact_id).consent["email"] == "opted_in"
    assert events_of(sessions, recipient.contact_id, "unsubscribed") == []


def test_an_rfc_8058_one_click_post_without_cookies_unsubscribes_once(
    client: FlaskClient, settings: Settings, sessions, shop, recipient: Recipient
) -> None:
    """A mail provider's POST with List-Unsubscribe=One-Click opts out; a second POST answers the same, adds nothing."""
    url = path_of(links_for(settings, shop, recipient).unsubscribe_url)
    provider = client.application.test_client(use_cookies=False)  # a mail provider has no cookies of ours
    for _ in range(2):
        answer = provider.post(url, data="List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    assert contact_of(sessions, recipient.contact_id).consent["email"] == "opted_out"
    [line] = journal_of(sessions, recipient.contact_id, "unsubscribed")
    assert line.message_id == recipient.message_id and "one_click" in (line.detail or "")
    [event] = events_of(sessions, recipient.contact_id, "unsubscribed")
    assert event.properties == {"channel": "email", "message_id": recipient.message_id, "method": "one_click"}
    assert event.source == "unsubscribe" and event.evaluated_at is None  # queued for journeys like any event


def test_the_pages_button_unsubscribes_from_the_messages_channel_only(
    client: FlaskClient, settings: Settings, sessions, shop, clock
) -> None:
    """An SMS's link opts out of SMS: email consent stays as it was."""
    sms = make_recipient(sessions, shop, clock, external_id="c-sms", channel="sms",
                         contact={"phone": "+4930123456", "consent": {"email": "opted_in", "sms": "opted_in"}})
    page = client.get(path_of(links_for(settings, shop, sms).unsubscribe_url))
    assert "text messages" in page.text
    assert 'name="source" value="page"' in page.text
    assert client.post(path_of(links_for(settings, shop, sms).unsubscribe_url),
                       data={"source": "page"}).status_code == 200
    assert contact_of(sessions, sms.contact_id).consent == {"email": "opted_in", "sms": "opted_out"}
    [event] = events_of(sessions, sms.contact_id, "unsubscribed")
    assert event.properties["channel"] == "sms" and event.properties["method"] == "page"


def test_after_unsubscribing_a_marketing_email_is_no_longer_allowed(
    client: FlaskClient, settings: Settings, sessions, shop, recipient: Recipient
) -> None:
    """The consent the send policy reads says opted out, so the next marketing email is skipped."""
    from engine.delivery.policies import route
    from engine.delivery.routing import recipient_of

    client.post(path_of(links_for(settings, shop, recipient).unsubscribe_url))
    contact = contact_of(sessions, recipient.contact_id)
    assert contact.consent["email"] == "opted_out"
    chosen = route(["email"], recipient_of(contact), transactional=False, suppressed=lambda channel, address: False)
    assert chosen.channel is None and chosen.skip_reason == "skipped: contact opted out of email"


@pytest.mark.parametrize("tamper", [
    lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
    lambda token: "x" + token[1:] if not token.startswith("x") else "y" + token[1:],
    lambda token: token.split(".")[0],
    lambda token: "not-a-token",
])
def test_a_tampered_unsubscribe_link_is_refused_and_changes_nothing(
    client: FlaskClient, settings: Settings, sessions, shop, recipient: Recipient, tamper: Any
) -> None:
    """GET and POST of a link whose signature does not match are 400 pages; consent and journal stay untouched."""
    token = path_of(links_for(settings, shop, recipient).unsubscribe_url).removeprefix("/u/")
    for answer in (client.get("/u/" + tamper(token)), client.post("/u/" + tamper(token))):
        assert answer.status_code == 400 and "not valid" in answer.text
    assert contact_of(sessions, recipient.contact_id).consent["email"] == "opted_in"
    assert journal_of(sessions, recipient.contact_id, "unsubscribed") == []


def test_a_link_naming_another_workspaces_message_or_an_erased_contact_is_gone(
    client: FlaskClient, settings: Settings, sessions, shop, second_shop, clock, recipient: Recipient
) -> None:
    """The workspace in the token must own the message and contact; an erased contact's link is a 410 page."""
    foreign = message_links(settings.secret_key, settings.base_url, workspace_id=second_shop.id,
                            contact_id=recipient.contact_id, message_id=recipient.message_id)
    assert client.post(path_of(foreign.unsubscribe_url)).status_code == 410
    assert contact_of(sessions, recipient.contact_id).consent["email"] == "opted_in"
    with sessions.begin() as session:
        session.execute(delete(Contact).where(Contact.id == recipient.contact_id))
    answer = client.post(path_of(links_for(settings, shop, recipient).unsubscribe_url))
    assert answer.status_code == 410 and "no longer works" in answer.text


def test_every_email_template_offers_preferences_and_unsubscribe_links_when_given() -> None:
    """The footer of each email shows both links in HTML and text when the dispatcher provides them."""
    names = sorted(p.name for p in EMAIL_DIR.iterdir() if (p / "body.mjml").is_file())
    for name in names:
        source = (EMAIL_DIR / name / "body.mjml").read_text() + (EMAIL_DIR / name / "body.txt").read_text()
        if name == "confirm_subscription":  # not subscribed yet: nothing to unsubscribe from
            continue
        assert source.count("{{ unsubscribe_url }}") == 2 and source.count("{{ preferences_url }}") == 2, name
    rendered = load_email_template("welcome").render({
        "workspace": {"name": "Shop"}, "contact": {"first_name": None}, "event": {},
        "unsubscribe_url": "https://r.example/u/tok", "preferences_url": "https://r.example/p/tok"})
    assert 'href="https://r.example/u/tok"' in rendered.html and 'href="https://r.example/p/tok"' in rendered.html
    assert "Unsubscribe: https://r.example/u/tok" in rendered.text

"""The subscription form and double opt-in: validated fields, a confirmation email, a confirm link that works once."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.links.tokens import confirm_token
from engine.settings import Settings
from engine.store.models import Contact, Message
from tests.conftest import FakeClock, Shop, drain
from tests.webapp.public.test_unsubscribe import events_of, journal_of, make_recipient


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form"
    return found.group(1)


def submit(client: FlaskClient, shop: Shop, fields: dict[str, Any], *, embed: bool = False) -> Any:
    path = f"/s/{shop.id}" + ("?embed=1" if embed else "")
    return client.post(path, data={"csrf_token": csrf_of(client.get(path).text), **fields})


def contact_by_email(sessions: sessionmaker[Session], shop: Shop, email: str) -> Contact:
    with sessions() as session:
        return session.scalars(select(Contact).where(Contact.workspace_id == shop.id, Contact.email == email)).one()


def confirmations(sessions: sessionmaker[Session], contact_id: int) -> list[Message]:
    with sessions() as session:
        return list(session.scalars(select(Message).where(Message.contact_id == contact_id,
                                                          Message.template == "confirm_subscription")))


def test_the_form_is_embeddable_and_the_script_inserts_it(client: FlaskClient, shop: Shop) -> None:
    """The hosted form may be framed anywhere; subscribe.js builds the iframe URL from its own src."""
    page = client.get(f"/s/{shop.id}?embed=1")
    assert page.status_code == 200 and "Subscribe to Test Shop" in page.text
    assert page.headers["Content-Security-Policy"] == "frame-ancestors *"
    assert 'name="email"' in page.text and 'name="phone"' in page.text and 'name="sms_consent"' in page.text
    assert 'name="topic_newsletter" checked' in page.text and 'name="topic_offers" checked' in page.text
    script = client.get("/static/subscribe.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    assert 'getAttribute("data-workspace")' in script.text and '"/s/"' in script.text
    script.close()
    assert client.get("/s/ws_nope").status_code == 404


def test_field_errors_are_shown_in_the_form_with_the_values_kept(client: FlaskClient, shop: Shop, sessions) -> None:
    """A bad email and a bad phone are named next to their fields (422), and what was typed stays."""
    answer = submit(client, shop, {"email": "ada@", "phone": "12ab", "first_name": "Ada"})
    assert answer.status_code == 422
    assert "This is not an email address." in answer.text
    assert "international format" in answer.text
    assert 'value="ada@"' in answer.text and 'value="Ada"' in answer.text
    assert 'aria-invalid="true"' in answer.text
    with sessions() as session:
        assert session.scalars(select(Contact).where(Contact.workspace_id == shop.id)).all() == []


def test_an_empty_form_asks_for_an_email_or_a_phone(client: FlaskClient, shop: Shop) -> None:
    """Neither email nor phone: one clear error, nothing stored."""
    answer = submit(client, shop, {"email": " ", "phone": ""})
    assert answer.status_code == 422 and "Enter an email address or a phone number." in answer.text


def test_a_post_without_a_valid_form_token_is_refused(client: FlaskClient, shop: Shop, clock: FakeClock,
                                                      sessions) -> None:
    """No token, or one older than a day, re-shows the form (400) and subscribes nobody."""
    assert client.post(f"/s/{shop.id}", data={"email": "ada@example.com"}).status_code == 400
    token = csrf_of(client.get(f"/s/{shop.id}").text)
    clock.advance(days=1, minutes=1)
    answer = client.post(f"/s/{shop.id}", data={"csrf_token": token, "email": "ada@example.com"})
    assert answer.status_code == 400 and "open too long" in answer.text
    with sessions() as session:
        assert session.scalars(select(Contact).where(Contact.workspace_id == shop.id)).all() == []


def test_double_opt_in_end_to_end_through_the_real_smtp_server(
    client: FlaskClient, shop: Shop, sessions, runtime, smtp_server, clock: FakeClock
) -> None:
    """Subscribe -> consent pending, confirmation email sent; its link -> opted in, once, with an event."""
    answer = submit(client, shop, {"email": "Ada@Example.com", "first_name": "Ada", "topic_offers": "on",
                                   "preferred_channel": "email"})
    assert answer.status_code == 200 and "check your inbox" in answer.text
    contact = contact_by_email(sessions, shop, "ada@example.com")
    assert contact.consent == {"email": "pending"} and contact.external_id == "email:ada@example.com"
    assert contact.topics == {"newsletter": False, "offers": True} and contact.preferred_channel == "email"
    [message] = confirmations(sessions, contact.id)
    assert message.transactional and message.status == "scheduled" and message.run_id is None

    drain(runtime)
    [mail] = smtp_server.messages
    assert mail["To"] == "ada@example.com" and mail["Subject"] == "Please confirm your subscription to Test Shop"
    text = mail.get_body(("plain",)).get_content()
    link = re.search(r"http://127\.0\.0\.1:8000(/s/confirm/\S+)", text)
    assert link, text
    for _ in range(2):
        page = client.get(link.group(1))
        assert page.status_code == 200 and "Your subscription is confirmed" in page.text
    assert contact_by_email(sessions, shop, "ada@example.com").consent == {"email": "opted_in"}
    assert len(events_of(sessions, contact.id, "subscription_confirmed")) == 1
    assert len(journal_of(sessions, contact.id, "subscription_confirmed")) == 1
    assert len(events_of(sessions, contact.id, "subscription_requested")) == 1


def test_an_expired_or_tampered_confirmation_link_says_so_and_confirms_nothing(
    client: FlaskClient, shop: Shop, sessions, settings: Settings, clock: FakeClock
) -> None:
    """After 7 days the link is a clear "expired" page; a changed link is "not valid"; consent stays pending."""
    submit(client, shop, {"email": "bo@example.com"})
    contact = contact_by_email(sessions, shop, "bo@example.com")
    token = confirm_token(settings.secret_key, workspace_id=shop.id, contact_id=contact.id, email="bo@example.com",
                          now=clock())
    assert client.get(f"/s/confirm/{token[:-2]}AA").status_code == 400
    clock.advance(days=7, minutes=1)
    page = client.get(f"/s/confirm/{token}")
    assert page.status_code == 410 and "expired" in page.text
    assert contact_by_email(sessions, shop, "bo@example.com").consent == {"email": "pending"}


def test_sms_consent_needs_its_own_checkbox(client: FlaskClient, shop: Shop, sessions) -> None:
    """A phone alone is not consent to texts; with the box ticked, SMS is opted in at once (no email to confirm)."""
    answer = submit(client, shop, {"phone": "+44 20 7946 0958"})
    assert answer.status_code == 422 and "Tick this box" in answer.text
    answer = submit(client, shop, {"phone": "0044 20 7946 0958", "sms_consent": "on", "preferred_channel": "sms"})
    assert answer.status_code == 200 and "subscribed to text messages" in answer.text
    with sessions() as session:
        contact = session.scalars(select(Contact).where(Contact.workspace_id == shop.id)).one()
    assert contact.phone == "+442079460958" and contact.consent == {"sms": "opted_in"}
    assert contact.preferred_channel == "sms" and confirmations(sessions, contact.id) == []


def test_a_number_the_contact_check_refuses_is_a_field_error_on_the_form(
    client: FlaskClient, shop: Shop, sessions
) -> None:
    """A well-shaped number with an unknown country code or the wrong length is named next to the phone field."""
    for number in ("+999 1234 5678", "+1 415 555 01234"):
        answer = submit(client, shop, {"email": "ada@example.com", "phone": number, "sms_consent": "on"})
        assert answer.status_code == 422, number
        assert "not a phone number" in answer.text and 'value="' + number + '"' in answer.text
    with sessions() as session:
        assert session.scalars(select(Contact).where(Contact.workspace_id == shop.id)).all() == []


def test_the_form_never_overwrites_an_existing_customer(
    client: FlaskClient, shop: Shop, sessions, clock: FakeClock
) -> None:
    """A known email keeps its external id, name and phone; SMS consent is not given to a number not on file."""
    known = make_recipient(sessions, shop, clock, external_id="cust-7",
                           contact={"first_name": "Cleo", "phone": "+4930111111", "consent": {}})
    submit(client, shop, {"email": "cust-7@example.com", "first_name": "Mallory", "phone": "+4930999999",
                          "sms_consent": "on"})
    contact = contact_by_email(sessions, shop, "cust-7@example.com")
    assert contact.id == known.contact_id and contact.first_name == "Cleo" and contact.phone == "+4930111111"
    assert contact.consent == {"email": "pending"}


def test_repeated_submissions_send_one_confirmation_per_ten_minutes(
    client: FlaskClient, shop: Shop, sessions, clock: FakeClock
) -> None:
    """Nobody can flood an inbox through the form; after ten minutes a new confirmation may go."""
    for _ in range(3):
        submit(client, shop, {"email": "cy@example.com"})
    contact = contact_by_email(sessions, shop, "cy@example.com")
    assert len(confirmations(sessions, contact.id)) == 1
    clock.advance(minutes=11)
    submit(client, shop, {"email": "cy@example.com"})
    assert len(confirmations(sessions, contact.id)) == 2


def test_an_already_confirmed_subscriber_is_not_set_back_to_pending(
    client: FlaskClient, shop: Shop, sessions, clock: FakeClock
) -> None:
    """Subscribing again with an opted-in email changes nothing and sends no confirmation."""
    known = make_recipient(sessions, shop, clock, external_id="dee")
    answer = submit(client, shop, {"email": "dee@example.com"})
    assert answer.status_code == 200
    assert contact_by_email(sessions, shop, "dee@example.com").consent == {"email": "opted_in"}
    assert confirmations(sessions, known.contact_id) == []


def test_a_bot_filling_the_hidden_field_is_thanked_and_ignored(client: FlaskClient, shop: Shop, sessions) -> None:
    """The honeypot field: same thank-you page, nothing stored."""
    answer = submit(client, shop, {"email": "bot@example.com", "website": "http://spam.example"})
    assert answer.status_code == 200 and "check your inbox" in answer.text
    with sessions() as session:
        assert session.scalars(select(Contact).where(Contact.workspace_id == shop.id)).all() == []

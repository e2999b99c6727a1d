"""A draft is previewed for a real contact and a sample event as a send renders it, with nothing in it that acts."""

from __future__ import annotations

import re

import pytest

from engine.contacts.ingest import ingest_events
from engine.delivery.template_previews import preview_template
from engine.errors import FieldErrors, InvalidTemplate
from engine.links.tokens import CLICK_PATH, OPEN_PATH, verify_unsubscribe
from templates.compiler import SandboxCompiler

COMPILER = SandboxCompiler()
BASE = "http://127.0.0.1:8000"
CART = {"cart_id": "c-1", "currency": "EUR", "total": 59.0, "recovery_url": "https://shop.example/cart/c-1",
        "items": [{"name": "Dripper", "quantity": 1, "price": 34.0}]}


def preview(sessions, shop, clock, channel: str, name: str, **asked):
    with sessions() as session:
        return preview_template(session, shop.id, channel, name, asked, compiler=COMPILER, base_url=BASE,
                                mail_from="Shop <shop@example.com>", now=clock())


def add_contact(sessions, shop, clock) -> None:
    with sessions.begin() as session:
        ingest_events(session, shop.id, [{"id": "e-1", "type": "contact_updated", "contact": {
            "external_id": "cust-42", "email": "ada@example.com", "first_name": "Ada"}}], now=clock())


def test_the_seed_email_previews_for_a_real_contact_and_sample_event(sessions, shop, clock) -> None:
    """The abandoned-cart email names the contact and the cart; no open pixel, no click redirect."""
    add_contact(sessions, shop, clock)
    shown = preview(sessions, shop, clock, "email", "abandoned_cart", contact="cust-42", event=CART)
    assert shown.subject == "Ada, you left something in your cart" and shown.contact == "cust-42"
    assert shown.html is not None and "Dripper" in shown.html and "€59.00" in shown.html
    assert 'href="https://shop.example/cart/c-1"' in shown.html
    assert OPEN_PATH not in shown.html and CLICK_PATH not in shown.html + shown.text


def test_links_in_a_preview_change_nothing_for_the_contact(sessions, shop, clock, settings) -> None:
    """The unsubscribe link in a preview is signed with a secret of its own: the server does not accept it."""
    add_contact(sessions, shop, clock)
    shown = preview(sessions, shop, clock, "email", "abandoned_cart", contact="cust-42", event=CART)
    tokens = re.findall(r"/u/([A-Za-z0-9_.-]+)", shown.text)
    assert tokens and all(verify_unsubscribe(settings.secret_key, token) is None for token in tokens)


def test_unsaved_parts_preview_without_being_stored(sessions, shop, clock) -> None:
    """The editor's live preview: parts in the request render, for a sample person when no contact is named."""
    shown = preview(sessions, shop, clock, "sms", "nudge", draft={"body_text": "Hi {{ contact.first_name }} ✓"})
    assert shown.text == "Hi Ada ✓" and shown.sms is not None and shown.sms.encoding == "UCS-2"


def test_a_telegram_preview_has_its_buttons_pointing_at_their_destination(sessions, shop, clock) -> None:
    """Buttons render like the text, their tracked URL replaced by where it leads."""
    shown = preview(sessions, shop, clock, "telegram", "abandoned_cart", event=CART)
    assert [(b.text, b.url) for b in shown.buttons] == [("Return to my cart", "https://shop.example/cart/c-1")]


def test_a_variable_the_sample_event_lacks_is_named_with_its_line(sessions, shop, clock) -> None:
    """Strict: `event.recovery_url` missing from the sample event is an error at the line that uses it."""
    with pytest.raises(InvalidTemplate) as raised:
        preview(sessions, shop, clock, "sms", "nudge", draft={"body_text": "Hi\nthere\n{{ event.recovery_url }}"})
    assert raised.value.errors == [{"field": "body_text", "line": 3,
                                    "message": "'dict object' has no attribute 'recovery_url'"}]


def test_another_workspace_contact_cannot_be_previewed(sessions, shop, clock) -> None:
    """A contact is looked up in the caller's workspace only: another's external_id is unknown here."""
    with pytest.raises(FieldErrors) as raised:
        preview(sessions, shop, clock, "email", "welcome", contact="cust-of-someone-else")
    assert raised.value.errors[0]["field"] == "contact"

"""SMS and messenger templates: plain text, link buttons, WhatsApp's approved templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import TemplateError
from templates.files import FileTemplates
from templates.texts import load_text_template

CART = {
    "contact": {"first_name": "Ann"},
    "workspace": {"name": "Tea Shop"},
    "event": {"items": [{"name": "Sencha", "quantity": 2}], "total": "24.00", "currency": "EUR",
              "recovery_url": "https://shop.example/cart/abc"},
}


def test_an_sms_is_rendered_as_plain_text_with_the_cart_link() -> None:
    """The SMS names the shop, the total and the link, with no HTML escaping."""
    text = load_text_template("sms", "abandoned_cart").render(CART).text
    assert text.startswith("Tea Shop: Ann, your cart is waiting (€24.00).")
    assert "https://shop.example/cart/abc" in text and "&" not in text


def test_telegram_gets_a_link_button_and_a_button_without_a_link_is_dropped() -> None:
    """buttons.yaml renders to link buttons; one whose URL renders empty is left out."""
    rendered = load_text_template("telegram", "abandoned_cart").render(CART)
    assert [(b.text, b.url) for b in rendered.buttons] == [("Return to my cart", "https://shop.example/cart/abc")]
    shipped = load_text_template("telegram", "order_shipped").render(
        {**CART, "event": {"order_id": "1001"}})
    assert shipped.buttons == ()


def test_whatsapp_sends_free_text_inside_the_window_and_the_approved_template_outside() -> None:
    """Outside the 24-hour window only the whatsapp.yaml template may go, with its parameters."""
    template = load_text_template("whatsapp", "abandoned_cart")
    inside = template.render(CART, free_text=True)
    assert inside.provider_template is None and "Ann, your cart" in inside.text
    outside = template.render(CART, free_text=False)
    assert outside.provider_template is not None
    assert outside.provider_template.name == "abandoned_cart"
    assert outside.provider_template.parameters == ("Ann", "https://shop.example/cart/abc")


def test_a_missing_variable_names_the_template_and_the_variable() -> None:
    """StrictUndefined: the error says which template and which variable."""
    with pytest.raises(TemplateError, match=r"sms/'abandoned_cart'.*recovery_url"):
        load_text_template("sms", "abandoned_cart").render({**CART, "event": {"total": "1"}})


def test_a_whatsapp_template_without_an_approved_template_cannot_go_outside_the_window(tmp_path: Path) -> None:
    """Free text only: outside the window the send fails with a clear reason."""
    (tmp_path / "whatsapp" / "hello").mkdir(parents=True)
    (tmp_path / "whatsapp" / "hello" / "body.txt").write_text("Hi {{ contact.first_name }}")
    template = load_text_template("whatsapp", "hello", root=tmp_path)
    with pytest.raises(TemplateError, match="24-hour window"):
        template.render(CART, free_text=False)


def test_templates_exist_per_channel() -> None:
    """A journey may only name a template that exists for each channel it can send on."""
    seeds = FileTemplates()
    assert seeds.exists("any", "sms", "abandoned_cart") and seeds.exists("any", "viber", "abandoned_cart")
    assert not seeds.exists("any", "sms", "welcome")
    assert seeds.exists("any", "email", "welcome")

"""Every recipe in the trigger library validates, and every template it sends exists and renders."""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any

import pytest

import triggers
from engine.errors import DefinitionError
from engine.journeys.definition import SendStep, UpdateContactStep, parse_definition
from engine.links.reviews import review_links
from templates.emails import has_email_template, load_email_template
from triggers import (
    abandoned_cart_series,
    browse_abandonment,
    library,
    order_status,
    review_follow_up,
    review_request,
    welcome_series,
    wishlist,
)

WORKSPACE = {"id": "ws-1", "name": "Demo Shop"}
CART = {"cart_id": "cart-1", "currency": "EUR", "total": 49, "recovery_url": "https://shop.example/cart/1?t=a&b=c",
        "items": [{"name": "Espresso cup", "quantity": 2, "price": 12.5}, {"name": "Beans 1 kg", "price": "24"}]}
ORDER = {"order_id": "1001", "order_number": "#1001", "currency": "EUR", "total": 49,
         "order_status_url": "https://shop.example/orders/1001",
         "items": [{"name": "Espresso cup", "quantity": 2, "price": 12.5}]}
PRODUCT = {"product_id": "p-7", "name": "Moka pot", "url": "https://shop.example/p/moka", "price": 39,
           "currency": "EUR", "image_url": "https://cdn.shop.example/moka.jpg"}

# Options that switch every optional step on, so every template a recipe can send is checked.
FULL_OPTIONS: dict[str, dict[str, Any]] = {
    "abandoned_cart_series": {"discount_code": "COMEBACK10"},
    "review_request": {"reminder_after_days": 7},
    "review_follow_up": {"alert_url": "https://shop.example/hooks/reviews",
                         "public_review_url": "https://reviews.example/demo-shop"},
    "welcome_series": {"discount_code": "WELCOME5"},
    "birthday_greeting": {"coupon_code": "BDAY15"},
    "holiday_greeting": {"dates": ["12-25"], "name": "Merry Christmas"},
    "win_back": {"discount_code": "MISSYOU"},
}
REQUIRED_OPTIONS: dict[str, dict[str, Any]] = {"holiday_greeting": {"dates": ["12-25"]}}

# The trigger event each recipe's emails are rendered with: what the shop (or Rapport) sends.
EVENTS: dict[str, dict[str, Any]] = {
    "abandoned_cart": CART,
    "abandoned_cart_series": CART,
    "browse_abandonment": PRODUCT,
    "review_request": {**ORDER},
    "review_follow_up": {"order_id": "1001", "score": 5},
    "welcome_series": {"shop_url": "https://shop.example/"},
    "order_confirmation": ORDER,
    "order_shipped": {**ORDER, "tracking_url": "https://track.example/123", "tracking_number": "123",
                      "carrier": "DHL"},
    "order_delivered": ORDER,
    "wishlist_back_in_stock": PRODUCT,
    "wishlist_price_drop": {**PRODUCT, "old_price": 49, "new_price": 39},
    "loyalty_tier_reached": {"from": "connoisseur", "to": "star", "direction": "up", "total_spent": 1200.0,
                             "orders_count": 9},
    "referral_reward": {"friend_name": "Grace", "reward_code": "THANKS-GRACE"},
    "birthday_greeting": {},
    "holiday_greeting": {"holiday_name": "Merry Christmas"},
    "win_back": {"days": 90},
}
# The same, with every optional property left out: templates must not depend on them.
SPARSE_EVENTS: dict[str, dict[str, Any]] = {
    "abandoned_cart": {"cart_id": "cart-1", "items": [{"name": "Cup", "price": 5}],
                       "recovery_url": "https://shop.example/cart/1"},
    # The spine's abandoned_cart template needs "items" (an empty list will do).
    "abandoned_cart_series": {"cart_id": "cart-1", "items": [], "recovery_url": "https://shop.example/cart/1"},
    "browse_abandonment": {"product_id": "p-7", "name": "Moka pot", "url": "https://shop.example/p/moka"},
    "review_request": {"order_id": "1001"},
    "review_follow_up": {"order_id": "1001", "score": 1},
    "welcome_series": {},
    "order_confirmation": {"order_id": "1001"},
    "order_shipped": {"order_id": "1001"},
    "order_delivered": {"order_id": "1001"},
    "wishlist_back_in_stock": {"product_id": "p-7", "name": "Moka pot", "url": "https://shop.example/p/moka"},
    "wishlist_price_drop": {"product_id": "p-7", "name": "Moka pot", "url": "https://shop.example/p/moka",
                            "old_price": 49, "new_price": 39},
    "loyalty_tier_reached": {"to": "star"},
    "referral_reward": {"reward_code": "THANKS"},
    "birthday_greeting": {},
    "holiday_greeting": {},
    "win_back": {},
}


def build(slug: str, options: dict[str, dict[str, Any]] = FULL_OPTIONS) -> dict[str, Any]:
    return library.RECIPES[slug].build(**options.get(slug, REQUIRED_OPTIONS.get(slug, {})))


def sends_and_attributes(definition: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The templates a definition can send, and the attributes its update steps set before them."""
    parsed = parse_definition(definition)
    templates = [s.template for s in parsed.all_steps() if isinstance(s, SendStep) and "email" in s.channels]
    attributes: dict[str, Any] = {}
    for step in parsed.all_steps():
        if isinstance(step, UpdateContactStep):
            attributes.update(step.set)
    return templates, attributes


def context(event: dict[str, Any], *, first_name: str | None = "Zoë", attributes: dict[str, Any] | None = None,
            ) -> dict[str, Any]:
    """What engine.journeys.effects.message_context makes, plus the review links the lead wires in."""
    return {
        "contact": {"external_id": "c-1", "email": "zoe@example.com", "first_name": first_name,
                    "last_name": "Ng", "locale": "en", "attributes": attributes or {}, "loyalty_tier": None},
        "event": event,
        "workspace": WORKSPACE,
        "review_links": review_links("secret", "https://rapport.example", workspace_id="ws-1", contact_id=7,
                                     order_id=str(event.get("order_id", "1001"))),
    }


SLUGS = sorted(library.RECIPES)
TEXT_ONLY = {"support_bot"}  # answers on the channel it was written to


@pytest.mark.parametrize("slug", SLUGS)
def test_every_recipe_validates_with_its_defaults_and_with_every_option(slug: str) -> None:
    """The library's recipes are valid journey definitions, bare and with all optional steps on."""
    parse_definition(build(slug, REQUIRED_OPTIONS))
    parse_definition(build(slug))


@pytest.mark.parametrize("slug", SLUGS)
def test_every_template_a_recipe_sends_exists_and_renders_a_realistic_email(slug: str) -> None:
    """Each template renders subject, HTML and text under StrictUndefined, with no Jinja left over."""
    templates, attributes = sends_and_attributes(build(slug))
    if slug in TEXT_ONLY:
        pytest.skip(f"{slug} sends no email (tests/triggers/test_{slug}.py renders its texts)")
    assert templates, f"{slug} sends nothing"
    for name in templates:
        assert has_email_template(name), name
        email = load_email_template(name).render(context(EVENTS[slug], attributes=attributes))
        assert email.subject and "\n" not in email.subject and "None" not in email.subject
        for part in (email.subject, email.html, email.text):
            assert "{{" not in part and "{%" not in part
        assert "<html" in email.html and "Demo Shop" in email.html + email.subject
        assert email.text.endswith("\n") and not email.text.endswith("\n\n")
        assert "None" not in email.text


@pytest.mark.parametrize("slug", SLUGS)
def test_templates_render_without_the_optional_properties_and_names(slug: str) -> None:
    """A contact without a first name and an event with only the required properties still render."""
    templates, _ = sends_and_attributes(build(slug))
    for name in templates:
        email = load_email_template(name).render(context(SPARSE_EVENTS[slug], first_name=None))
        assert email.subject and "None" not in email.subject + email.text


def test_every_trigger_module_with_a_recipe_is_in_the_library() -> None:
    """A recipe nobody can list is a recipe nobody uses; every module also explains itself."""
    listed = {entry.build.__module__ for entry in library.RECIPES.values()}
    for info in pkgutil.iter_modules(triggers.__path__):
        module = importlib.import_module(f"triggers.{info.name}")
        if hasattr(module, "recipe") and hasattr(module, "NAME"):
            assert module.__name__ in listed, module.__name__
            assert module.__doc__ and len(module.__doc__) > 100, f"{module.__name__} needs a docstring"
    for slug, (name, build_recipe, description) in library.RECIPES.items():
        assert re.fullmatch(r"[a-z_]+", slug) and name and description and callable(build_recipe)


def test_abandoned_cart_series_times_count_from_the_cart() -> None:
    """Waits add up to 1 h, 24 h and 72 h after the cart; the code is set just before the third send."""
    definition = abandoned_cart_series.recipe(discount_code="COMEBACK10")
    kinds = [(s["type"], s.get("hours"), s.get("template")) for s in definition["steps"]]
    assert kinds == [("wait", 1, None), ("send", None, "abandoned_cart"), ("wait", 23, None),
                     ("send", None, "abandoned_cart_second"), ("wait", 48, None), ("update_contact", None, None),
                     ("send", None, "abandoned_cart_discount")]
    assert definition["steps"][5]["set"] == {"cart_discount_code": "COMEBACK10"}
    assert len(abandoned_cart_series.recipe()["steps"]) == 4  # no code: no third reminder
    with pytest.raises(ValueError, match="increasing"):
        abandoned_cart_series.recipe(first_after_hours=24, second_after_hours=24)


@pytest.mark.parametrize(("build_recipe", "options"), [
    (review_follow_up.recipe, {"low_at_most": 4, "high_at_least": 3}),
    (welcome_series.recipe, {"story_after_days": 4, "nudge_after_days": 2}),
    (order_status.recipe, {"status": "returned"}),
    (wishlist.recipe, {"alert": "sold_out"}),
    (browse_abandonment.recipe, {"wait_hours": 0}),
    (browse_abandonment.recipe, {"wait_hours": 100}),
])
def test_recipes_refuse_options_that_make_no_sense(build_recipe: Any, options: dict[str, Any]) -> None:
    """Contradictory or unknown options fail when the recipe is built, naming what is wrong."""
    with pytest.raises(ValueError):
        build_recipe(**options)


def test_a_recipe_edited_into_nonsense_is_refused_by_the_definition_check() -> None:
    """Recipes are plain data: an edit that breaks them is caught with the path of the bad field."""
    definition = review_request.recipe()
    definition["steps"][0]["days"] = -1
    with pytest.raises(DefinitionError) as caught:
        parse_definition(definition)
    assert caught.value.errors[0]["field"] == "steps.0.wait.days"


def test_order_status_sends_are_transactional_and_keyed_by_order() -> None:
    """All three order emails bypass marketing consent and are made once per order."""
    for build_recipe in (order_status.confirmation_recipe, order_status.shipped_recipe, order_status.delivered_recipe):
        parsed = parse_definition(build_recipe())
        assert parsed.key_path == "order_id"
        assert all(s.transactional for s in parsed.all_steps() if isinstance(s, SendStep))
    assert parse_definition(order_status.shipped_recipe()).entry_events == ("order_shipped", "order_fulfilled")


def test_the_review_request_shows_five_rating_links_in_both_parts() -> None:
    """Scores 1 to 5 link to their signed URLs in the HTML and the text part, lowest first."""
    ctx = context(EVENTS["review_request"])
    email = load_email_template("review_request").render(ctx)
    urls = [link["url"] for link in ctx["review_links"]]
    assert email.subject == "How was your order #1001?"
    for score, url in enumerate(urls, start=1):
        assert f'href="{url}"' in email.html
        assert f"{score} - " in email.text and url in email.text
    assert email.text.index(urls[0]) < email.text.index(urls[4])
    assert "1 - poor" in email.text and "5 - excellent" in email.text


def test_codes_and_links_show_where_the_recipe_puts_them() -> None:
    """Discount codes come from contact attributes, tracking and prices from the event."""
    discount = load_email_template("abandoned_cart_discount").render(
        context(CART, attributes={"cart_discount_code": "COMEBACK10"}))
    assert discount.subject == "A discount for your cart: COMEBACK10"
    assert "COMEBACK10" in discount.html and "Your discount code: COMEBACK10" in discount.text
    assert "- Espresso cup: 2 × €12.50 = €25.00" in discount.text and "Total: €49.00" in discount.text
    no_code = load_email_template("abandoned_cart_discount").render(context(CART))
    assert no_code.subject == "Your cart is about to expire" and "discount code" not in no_code.text

    shipped = load_email_template("order_shipped").render(context(EVENTS["order_shipped"]))
    assert 'href="https://track.example/123"' in shipped.html and "Carrier: DHL" in shipped.text
    assert shipped.subject == "Your order #1001 is on its way"
    untracked = load_email_template("order_shipped").render(context({**ORDER}))
    assert "View your order: https://shop.example/orders/1001" in untracked.text

    drop = load_email_template("wishlist_price_drop").render(context(EVENTS["wishlist_price_drop"]))
    assert drop.subject == "Price drop: Moka pot now €39.00"
    assert "now €39.00 (was €49.00)" in drop.text and "€49.00</s>" in drop.html

    tier = load_email_template("loyalty_tier_reached").render(context(EVENTS["loyalty_tier_reached"]))
    assert tier.subject == "Congratulations, Zoë: you are now Star"
    assert "You moved up from Connoisseur." in tier.text

    reward = load_email_template("referral_reward").render(context(EVENTS["referral_reward"]))
    assert "Grace just placed their first order" in reward.text and "THANKS-GRACE" in reward.html
    anonymous = load_email_template("referral_reward").render(context(SPARSE_EVENTS["referral_reward"]))
    assert "A friend you invited just placed" in anonymous.text


def test_html_escapes_what_the_shop_sends() -> None:
    """Product names are data, not markup: they are escaped in the HTML part and kept as is in the text."""
    event = {**PRODUCT, "name": "<b>Moka</b> & pot"}
    email = load_email_template("browse_abandonment").render(context(event))
    assert "&lt;b&gt;Moka&lt;/b&gt; &amp; pot" in email.html and "<b>Moka</b>" not in email.html
    assert "<b>Moka</b> & pot - €39.00" in email.text


@pytest.mark.parametrize(("template", "event"), [("abandoned_cart", CART), ("abandoned_cart_second", CART),
                                                 ("abandoned_cart_discount", CART), ("order_confirmation", ORDER)])
def test_line_items_show_quantity_times_unit_price_and_the_line_total(template: str, event: dict[str, Any]) -> None:
    """Two cups at €12.50 read "2 × €12.50 = €25.00" in the text and "2 × €12.50" beside €25.00 in the HTML."""
    email = load_email_template(template).render(context(event))
    assert "- Espresso cup: 2 × €12.50 = €25.00" in email.text
    assert "x 2" not in email.text
    assert "2 × €12.50" in email.html and "€25.00" in email.html

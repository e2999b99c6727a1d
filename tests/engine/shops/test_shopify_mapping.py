"""Shopify webhook payloads become canonical events: pure mapping, no servers."""

from __future__ import annotations

from typing import Any

import pytest

from engine.contacts.ingest import parse_event
from engine.shops.shopify import map_webhook
from engine.shops.webhooks import Ignored, Mapped, MappingResult, Unmapped
from tests.fixtures import load

TOKEN = "f3c29a7be1d04c6e8b1a5d2e9c7f4a60"  # the checkout's token in checkouts_create.json
FIXTURES = {
    "checkouts/create": "checkouts_create",
    "checkouts/update": "checkouts_create",
    "orders/create": "orders_create",
    "orders/paid": "orders_paid",
    "orders/fulfilled": "orders_fulfilled",
    "orders/cancelled": "orders_cancelled",
    "customers/create": "customers_create",
    "customers/update": "customers_create",
}


def one_event(result: MappingResult) -> dict[str, Any]:
    assert isinstance(result, Mapped), result
    [event] = result.events
    return event


def mapped(topic: str, payload: dict[str, Any] | None = None, delivery_id: str = "b54557e4-bdd9") -> dict[str, Any]:
    """The one event `topic`'s fixture (or `payload`) maps to."""
    if payload is None:
        payload = load("shopify", FIXTURES[topic])
    return one_event(map_webhook(topic, payload, delivery_id))


# --- checkouts ------------------------------------------------------------------------


def test_a_new_checkout_starts_a_cart_keyed_by_its_token_with_items_total_and_recovery_link() -> None:
    """checkouts/create is a checkout_started for cart_id = the checkout token, with what the shopper saw."""
    event = mapped("checkouts/create")
    assert event["type"] == "checkout_started"
    assert event["occurred_at"] == "2026-11-23T10:15:02+01:00"
    properties = event["properties"]
    assert properties["cart_id"] == TOKEN
    assert properties["total"] == 59.0 and properties["currency"] == "EUR"
    assert properties["recovery_url"].startswith(f"https://brew-supply.example/71244930617/checkouts/ac/{TOKEN}/")
    assert properties["items"] == [
        {"name": "Ceramic pour-over dripper", "variant": "Chalk white", "quantity": 1, "price": 34.0,
         "sku": "DRIP-CER-WHT", "product_id": "8120349057273", "variant_id": "44871203463417",
         "image_url": "https://cdn.shopify.com/s/files/1/0712/4493/0617/files/dripper-white.jpg?v=1731920000"},
        {"name": "Single-origin beans, 250 g", "variant": "Whole bean", "quantity": 2, "price": 12.5,
         "sku": "BEAN-ETH-250-WB", "product_id": "8120349122809", "variant_id": "44871203528953",
         "image_url": "https://cdn.shopify.com/s/files/1/0712/4493/0617/files/beans-ethiopia.jpg?v=1731920000"},
    ]


def test_an_updated_checkout_is_a_cart_update_of_the_same_cart() -> None:
    """checkouts/update is a cart_updated for the same cart_id, stamped with the update's time."""
    event = mapped("checkouts/update")
    assert event["type"] == "cart_updated"
    assert event["properties"]["cart_id"] == TOKEN
    assert event["occurred_at"] == "2026-11-23T10:16:40+01:00"


def test_a_completed_checkout_is_ignored_so_a_bought_cart_gets_no_reminder() -> None:
    """A checkout update with completed_at set becomes no event: the order arrives as orders/create."""
    checkout = load("shopify", "checkouts_create") | {"completed_at": "2026-11-23T10:21:30+01:00"}
    result = map_webhook("checkouts/update", checkout, "d-1")
    assert isinstance(result, Ignored) and "orders/create" in result.reason


def test_a_checkout_without_customer_or_email_is_unmapped_with_a_warning() -> None:
    """An anonymous checkout cannot reach anyone: it is unmapped, and the warning says why."""
    checkout = load("shopify", "checkouts_create") | {"customer": None, "email": None}
    result = map_webhook("checkouts/create", checkout, "d-1")
    assert isinstance(result, Unmapped) and "no customer and no email" in result.warning


# --- orders ----------------------------------------------------------------------------


def test_a_new_order_carries_its_checkouts_cart_id_so_it_ends_that_cart_journey() -> None:
    """orders/create is an order_placed with cart_id = checkout_token, the checkout's token."""
    event = mapped("orders/create")
    assert event["type"] == "order_placed"
    assert event["properties"]["cart_id"] == TOKEN == mapped("checkouts/create")["properties"]["cart_id"]
    assert event["properties"]["order_id"] == "6012948373753"
    assert event["properties"]["order_number"] == "#1042"
    assert event["properties"]["total"] == 63.9 and event["properties"]["currency"] == "EUR"
    assert [i["name"] for i in event["properties"]["items"]] == ["Ceramic pour-over dripper",
                                                                 "Single-origin beans, 250 g"]


@pytest.mark.parametrize(("topic", "kind", "occurred_at"), [
    ("orders/paid", "order_paid", "2026-11-23T10:21:41+01:00"),
    ("orders/fulfilled", "order_fulfilled", "2026-11-24T15:02:18+01:00"),
    ("orders/cancelled", "order_cancelled", "2026-11-23T18:40:05+01:00"),
])
def test_order_status_topics_become_their_events_for_the_same_order(topic: str, kind: str, occurred_at: str) -> None:
    """orders/paid, /fulfilled and /cancelled name the order, at the time the change happened."""
    event = mapped(topic)
    assert event["type"] == kind
    assert event["occurred_at"] == occurred_at
    assert event["properties"]["order_id"] == "6012948373753"
    assert "cart_id" not in event["properties"]


def test_a_fulfilled_order_carries_its_tracking_link() -> None:
    """The latest fulfillment's carrier, tracking number and URL travel with order_fulfilled."""
    properties = mapped("orders/fulfilled")["properties"]
    assert properties["carrier"] == "DHL Express"
    assert properties["tracking_number"] == "JD014600006281230304"
    assert properties["tracking_url"].endswith("tracking-id=JD014600006281230304")


def test_a_cancelled_order_says_why() -> None:
    """order_cancelled carries Shopify's cancel reason."""
    assert mapped("orders/cancelled")["properties"]["cancel_reason"] == "customer"


def test_an_order_paid_in_another_currency_carries_the_amounts_the_customer_saw() -> None:
    """Amounts come from presentment_money, in the presentment currency, not the shop's currency."""
    order = load("shopify", "orders_create")
    order["presentment_currency"] = "GBP"
    order["total_price_set"]["presentment_money"] = {"amount": "54.20", "currency_code": "GBP"}
    order["line_items"][0]["price_set"]["presentment_money"] = {"amount": "28.85", "currency_code": "GBP"}
    del order["line_items"][1]["price_set"]
    properties = mapped("orders/create", order)["properties"]
    assert properties["currency"] == "GBP" and properties["total"] == 54.2
    assert properties["items"][0]["price"] == 28.85
    assert "price" not in properties["items"][1]  # only the shop-currency price is known: none rather than wrong


def test_a_guest_order_is_identified_by_its_email() -> None:
    """Without a Shopify customer the contact is the order's email alone."""
    order = load("shopify", "orders_create") | {"customer": None}
    contact = mapped("orders/create", order)["contact"]
    assert "external_id" not in contact
    assert contact["email"] == "ada.lovelace@example.com"
    assert contact["first_name"] == "Ada"  # from the billing address


def test_an_order_without_an_id_is_unmapped() -> None:
    """Missing required data is reported, not guessed."""
    order = load("shopify", "orders_create") | {"id": None}
    result = map_webhook("orders/create", order, "d-1")
    assert isinstance(result, Unmapped) and "no id" in result.warning


# --- contacts --------------------------------------------------------------------------


def test_the_contact_is_the_shopify_customer_with_profile_locale_and_consent() -> None:
    """external_id is shopify:<customer id>; email, phone, names, locale and consent come along."""
    assert mapped("orders/create")["contact"] == {
        "external_id": "shopify:7391042183417",
        "email": "ada.lovelace@example.com",
        "phone": "+447700900123",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "locale": "en-GB",
        "consent": {"email": {"status": "opted_in", "at": "2026-11-23T10:16:40+01:00",
                              "source": "shopify_single_opt_in"}, "sms": "opted_out"},
    }


def test_a_new_customer_becomes_a_contact_update_with_birthday_from_a_metafield() -> None:
    """customers/create is a contact_updated; a birth_date metafield gives the birthday."""
    event = mapped("customers/create")
    assert event["type"] == "contact_updated"
    assert event["contact"]["external_id"] == "shopify:7391042250000"
    assert event["contact"]["birthday"] == "1906-12-09"
    assert event["contact"]["email"] == "grace.hopper@example.com"


def test_no_birthday_is_guessed_without_a_birthday_metafield() -> None:
    """A note mentioning a birthday, or another metafield, is not a birthday."""
    customer = load("shopify", "customers_create") | {"note": "Birthday: 9 December", "metafields": [
        {"namespace": "custom", "key": "favourite_roast", "value": "light"}]}
    assert "birthday" not in mapped("customers/update", customer)["contact"]


@pytest.mark.parametrize(("state", "consent"), [
    ("subscribed", "opted_in"),
    ("pending", "pending"),
    ("unsubscribed", "opted_out"),
    ("not_subscribed", "opted_out"),
])
def test_email_marketing_consent_state_becomes_email_consent(state: str, consent: str) -> None:
    """Shopify's email_marketing_consent.state decides the contact's email consent, with its time."""
    customer = load("shopify", "customers_create")
    customer["email_marketing_consent"]["state"] = state
    claim = mapped("customers/update", customer)["contact"]["consent"]["email"]
    assert (claim["status"], claim["at"]) == (consent, "2026-11-23T10:14:51+01:00")
    customer["email_marketing_consent"]["consent_updated_at"] = None
    assert mapped("customers/update", customer)["contact"]["consent"]["email"] == consent


@pytest.mark.parametrize(("state", "level", "source"), [
    ("subscribed", "single_opt_in", "shopify_single_opt_in"),
    ("subscribed", "confirmed_opt_in", "shopify_confirmed_opt_in"),
    ("subscribed", "unknown", "shopify"),
    ("subscribed", None, "shopify"),
    ("unsubscribed", "single_opt_in", "shopify"),
])
def test_the_opt_in_level_says_whether_the_customer_gave_the_consent(state: str, level: str | None,
                                                                      source: str) -> None:
    """Only an opt-in at a level the customer acted on (single or confirmed) is passed on as the person's."""
    customer = load("shopify", "customers_create")
    customer["email_marketing_consent"] |= {"state": state, "opt_in_level": level}
    assert mapped("customers/update", customer)["contact"]["consent"]["email"]["source"] == source


def test_the_older_accepts_marketing_flag_is_read_when_consent_state_is_absent() -> None:
    """API versions before 2022-04 send accepts_marketing instead of a consent state."""
    customer = load("shopify", "customers_create")
    del customer["email_marketing_consent"]
    assert mapped("customers/update", customer)["contact"]["consent"]["email"] == "opted_out"
    customer["accepts_marketing"] = True
    assert mapped("customers/update", customer)["contact"]["consent"]["email"] == "opted_in"


def test_a_customer_payload_without_consent_leaves_consent_unchanged() -> None:
    """From API 2025-01 customer payloads carry no consent: the event then says nothing about it."""
    customer = load("shopify", "customers_create")
    for name in ("email_marketing_consent", "accepts_marketing", "sms_marketing_consent"):
        customer.pop(name)
    assert "consent" not in mapped("customers/update", customer)["contact"]


def test_ticking_the_marketing_box_at_checkout_opts_in_and_leaving_it_unticked_changes_nothing() -> None:
    """buyer_accepts_marketing counts only when ticked: the shopper may have subscribed before."""
    checkout = load("shopify", "checkouts_create") | {"customer": None}
    assert mapped("checkouts/create", checkout)["contact"]["consent"] == {"email": {
        "status": "opted_in", "at": "2026-11-23T10:15:02+01:00", "source": "checkout_checkbox"}}
    checkout["buyer_accepts_marketing"] = False
    assert "consent" not in mapped("checkouts/create", checkout)["contact"]


def test_a_phone_number_our_validation_refuses_is_dropped_and_the_event_kept() -> None:
    """A typed-in phone like 'call after 6pm' does not cost the order its event."""
    order = load("shopify", "orders_create")
    order["customer"]["phone"] = "call after 6pm"
    contact = mapped("orders/create", order)["contact"]
    assert "phone" not in contact and contact["email"] == "ada.lovelace@example.com"


# --- identity and what is refused ------------------------------------------------------


def test_the_event_id_is_the_webhook_id_so_a_redelivery_is_the_same_event() -> None:
    """Event id = shopify:<X-Shopify-Webhook-Id>."""
    assert mapped("orders/paid", delivery_id="1b6e5e8c-4f4c-4f0e-9d2e")["id"] == "shopify:1b6e5e8c-4f4c-4f0e-9d2e"


def test_an_unknown_topic_is_unmapped_with_a_warning_naming_the_topics_read() -> None:
    """A topic Rapport does not read is reported, with the list of those it does."""
    result = map_webhook("products/update", {"id": 1}, "d-1")
    assert isinstance(result, Unmapped)
    assert "products/update" in result.warning and "orders/create" in result.warning


def test_a_body_that_is_not_an_object_is_unmapped() -> None:
    """A JSON list or string is no Shopify resource."""
    assert isinstance(map_webhook("orders/create", [1, 2], "d-1"), Unmapped)


@pytest.mark.parametrize("topic", list(FIXTURES))
def test_every_mapped_event_is_one_ingest_accepts(topic: str) -> None:
    """What the mapper builds passes the event API's own validation."""
    parse_event(mapped(topic))

"""WooCommerce webhook payloads become canonical events: pure mapping, no servers."""

from __future__ import annotations

from typing import Any

import pytest

from engine.contacts.ingest import parse_event
from engine.shops.webhooks import Delivery, Ignored, Mapped, MappingResult, Unmapped
from engine.shops.woocommerce import is_ping, map_webhook
from tests.fixtures import load, raw


def one_event(result: MappingResult) -> dict[str, Any]:
    assert isinstance(result, Mapped), result
    [event] = result.events
    return event


def mapped(topic: str, name: str, **changes: Any) -> dict[str, Any]:
    return one_event(map_webhook(topic, load("woocommerce", name) | changes, "0f6a3c1e9d8b"))


def test_a_new_order_is_an_order_placed_with_items_total_and_currency() -> None:
    """order.created is an order_placed naming the order, its items and what it cost."""
    event = mapped("order.created", "order_created")
    assert event["type"] == "order_placed"
    assert event["occurred_at"] == "2026-11-23T10:02:44+00:00"  # date_created_gmt, read as UTC
    properties = event["properties"]
    assert properties["order_id"] == "4817" and properties["order_number"] == "4817"
    assert properties["total"] == 113.95 and properties["currency"] == "EUR"
    assert properties["items"] == [
        {"name": "Hand grinder - Matte black", "quantity": 1, "price": 57.02, "sku": "GRND-HND-BLK",
         "product_id": "731", "variant_id": "745",
         "image_url": "https://roastery.example/wp-content/uploads/2026/10/grinder-black.jpg"},
        {"name": "Espresso blend, 1 kg", "quantity": 2, "price": 18.35, "sku": "ESP-BLEND-1KG",
         "product_id": "702", "image_url": "https://roastery.example/wp-content/uploads/2026/09/espresso-blend.jpg"},
    ]


def test_the_contact_is_the_woocommerce_customer_with_billing_details() -> None:
    """external_id is woocommerce:<customer id>; email, phone and names come from billing."""
    assert mapped("order.created", "order_created")["contact"] == {
        "external_id": "woocommerce:57", "email": "mary.somerville@example.com", "phone": "+32 2 555 01 23",
        "first_name": "Mary", "last_name": "Somerville",
    }


def test_a_guest_order_is_identified_by_its_billing_email() -> None:
    """customer_id 0 is a guest: the contact is the billing email alone."""
    contact = mapped("order.created", "order_created", customer_id=0)["contact"]
    assert "external_id" not in contact and contact["email"] == "mary.somerville@example.com"


def test_an_unpaid_order_carries_its_payment_link_and_a_paid_one_does_not() -> None:
    """payment_url travels only while the order still needs payment."""
    assert mapped("order.created", "order_created")["properties"]["payment_url"].startswith(
        "https://roastery.example/checkout/order-pay/4817/")
    assert "payment_url" not in mapped("order.updated", "order_updated_processing")["properties"]


@pytest.mark.parametrize(("status", "kind"), [
    ("processing", "order_paid"),
    ("completed", "order_fulfilled"),
    ("cancelled", "order_cancelled"),
    ("refunded", "order_refunded"),
    ("on-hold", "order_updated"),
    ("failed", "order_updated"),
])
def test_an_order_update_becomes_the_event_of_its_status(status: str, kind: str) -> None:
    """order.updated maps by status; statuses without an event of their own are order_updated."""
    event = mapped("order.updated", "order_updated_processing", status=status)
    assert event["type"] == kind
    assert event["properties"]["status"] == status
    assert event["occurred_at"] == "2026-11-23T10:03:10+00:00"  # date_modified_gmt


def test_saving_a_paid_order_again_maps_to_the_same_event_id() -> None:
    """WooCommerce fires order.updated on every save: the event id is the order and its status."""
    first = one_event(map_webhook("order.updated", load("woocommerce", "order_updated_processing"), "a1"))
    again = one_event(map_webhook("order.updated", load("woocommerce", "order_updated_processing"), "b2"))
    assert first["id"] == again["id"] == "woocommerce:order:4817:processing"
    completed = one_event(map_webhook("order.updated", load("woocommerce", "order_updated_completed"), "c3"))
    assert completed["id"] == "woocommerce:order:4817:completed"


def test_a_draft_order_is_ignored() -> None:
    """The block checkout's checkout-draft orders are carts, not orders."""
    result = map_webhook("order.created", load("woocommerce", "order_created") | {"status": "checkout-draft"}, "d")
    assert isinstance(result, Ignored) and "draft" in result.reason


def test_an_order_without_any_contact_is_unmapped() -> None:
    """No customer id and no billing email: nobody to write to, so it is reported."""
    order = load("woocommerce", "order_created")
    order["customer_id"] = 0
    order["billing"]["email"] = ""
    result = map_webhook("order.created", order, "d")
    assert isinstance(result, Unmapped) and "no customer and no billing email" in result.warning


def test_a_new_customer_becomes_a_contact_update() -> None:
    """customer.created is a contact_updated for woocommerce:<id> with email, names and phone."""
    event = mapped("customer.created", "customer_created")
    assert event["type"] == "contact_updated"
    assert event["id"] == "woocommerce:customer:57:created"
    assert event["contact"] == {"external_id": "woocommerce:57", "email": "mary.somerville@example.com",
                                "phone": "+32 2 555 01 23", "first_name": "Mary", "last_name": "Somerville"}


def test_a_customer_update_is_keyed_by_its_modification_time() -> None:
    """The same change delivered twice is one event; a later change is another."""
    first = mapped("customer.updated", "customer_created", date_modified_gmt="2026-11-24T09:00:00")
    later = mapped("customer.updated", "customer_created", date_modified_gmt="2026-11-25T09:00:00")
    assert first["id"] == "woocommerce:customer:57:2026-11-24T09:00:00"
    assert later["id"] != first["id"]


def test_an_unknown_topic_is_unmapped_with_a_warning_naming_the_topics_read() -> None:
    """product.updated is not read; the warning lists the topics that are."""
    result = map_webhook("product.updated", {"id": 731}, "d")
    assert isinstance(result, Unmapped)
    assert "product.updated" in result.warning and "order.created" in result.warning


def test_the_ping_on_saving_a_webhook_is_recognised_only_unsigned() -> None:
    """`webhook_id=<n>` without a signature is WooCommerce's ping; a signed body is a delivery."""
    assert is_ping(Delivery(delivery_id=None, topic=None, signature=None, body=b"webhook_id=12"))
    assert not is_ping(Delivery(delivery_id=None, topic=None, signature="abc=", body=b"webhook_id=12"))
    assert not is_ping(Delivery(delivery_id=None, topic=None, signature=None,
                                body=raw("woocommerce", "order_created")))


@pytest.mark.parametrize(("topic", "name"), [
    ("order.created", "order_created"),
    ("order.updated", "order_updated_processing"),
    ("order.updated", "order_updated_completed"),
    ("customer.created", "customer_created"),
    ("customer.updated", "customer_created"),
])
def test_every_mapped_event_is_one_ingest_accepts(topic: str, name: str) -> None:
    """What the mapper builds passes the event API's own validation."""
    parse_event(mapped(topic, name))

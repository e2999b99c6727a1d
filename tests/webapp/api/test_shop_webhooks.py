"""POST /api/v1/webhooks/shopify|woocommerce/<workspace> against the real app, database and Redis.

A delivery signed with the shop's secret is stored once as canonical events with the
platform as their source; everything refused stores nothing; what cannot be mapped is
kept for inspection and answered with a warning.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from engine.shops.webhooks import connect_shop, sign_body
from engine.store.models import Contact, Event, WebhookReceipt
from tests.conftest import Shop
from tests.fixtures import load, raw
from workers.queues import make_queues, relay_inbox

SHOPIFY_SECRET = "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"
WOO_SECRET = "wc-secret-7Yq!p2Lr9z"
HEADERS = {
    "shopify": ("X-Shopify-Hmac-Sha256", "X-Shopify-Webhook-Id", "X-Shopify-Topic"),
    "woocommerce": ("X-WC-Webhook-Signature", "X-WC-Webhook-Delivery-ID", "X-WC-Webhook-Topic"),
}


@pytest.fixture
def connected(shop: Shop, sessions: sessionmaker[Session]) -> Shop:
    """The test shop with Shopify and WooCommerce connected, each with its own secret."""
    with sessions.begin() as session:
        connect_shop(session, shop.id, "shopify", SHOPIFY_SECRET)
        connect_shop(session, shop.id, "woocommerce", WOO_SECRET)
    return shop


def deliver(
    client: FlaskClient,
    platform: str,
    workspace_id: str,
    body: bytes | dict[str, Any],
    *,
    topic: str,
    delivery_id: str,
    secret: str | None = None,
    signature: str | None = None,
    unsigned: bool = False,
    event_id: str | None = None,
) -> TestResponse:
    """POST `body` as the platform does: signed over the raw bytes with the shop's secret,
    or another `secret`, or with the given `signature` header, or `unsigned`; `event_id` is
    sent as X-Shopify-Event-Id."""
    raw_body = body if isinstance(body, bytes) else json.dumps(body).encode()
    signature_header, delivery_header, topic_header = HEADERS[platform]
    secret = secret or (SHOPIFY_SECRET if platform == "shopify" else WOO_SECRET)
    headers = {"Content-Type": "application/json", delivery_header: delivery_id, topic_header: topic}
    if not unsigned:
        headers[signature_header] = signature if signature is not None else sign_body(secret, raw_body)
    if event_id is not None:
        headers["X-Shopify-Event-Id"] = event_id
    return client.post(f"/api/v1/webhooks/{platform}/{workspace_id}", data=raw_body, headers=headers)


def events_of(sessions: sessionmaker[Session], workspace_id: str) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).where(Event.workspace_id == workspace_id).order_by(Event.id)))


def receipts_of(sessions: sessionmaker[Session], workspace_id: str) -> list[WebhookReceipt]:
    with sessions() as session:
        return list(session.scalars(
            select(WebhookReceipt).where(WebhookReceipt.workspace_id == workspace_id).order_by(WebhookReceipt.id)))


def contacts_of(sessions: sessionmaker[Session], workspace_id: str) -> list[Contact]:
    with sessions() as session:
        return list(session.scalars(select(Contact).where(Contact.workspace_id == workspace_id)))


def queued_event_ids(redis: Redis, namespace: str) -> list[int]:
    relay_inbox(redis, namespace)
    return [i for job in make_queues(redis, namespace)["events"].get_jobs() for i in job.args[0]]


def assert_nothing_stored(sessions: sessionmaker[Session], workspace_id: str) -> None:
    assert events_of(sessions, workspace_id) == []
    assert receipts_of(sessions, workspace_id) == []
    assert contacts_of(sessions, workspace_id) == []


# --- Shopify: accepted ------------------------------------------------------------------


def test_a_signed_shopify_checkout_is_stored_as_an_event_from_shopify(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str
) -> None:
    """202 with the event id; the event is stored with source shopify and queued for evaluation."""
    response = deliver(client, "shopify", connected.id, raw("shopify", "checkouts_create"),
                       topic="checkouts/create", delivery_id="7a0c9b1e-4f7d-4f3b-9a61-2d8e0c5b7f13")
    assert response.status_code == 202, response.json
    assert response.json == {"accepted": True, "event_ids": ["shopify:7a0c9b1e-4f7d-4f3b-9a61-2d8e0c5b7f13"]}

    [event] = events_of(sessions, connected.id)
    assert (event.type, event.source) == ("checkout_started", "shopify")
    assert event.properties["cart_id"] == "f3c29a7be1d04c6e8b1a5d2e9c7f4a60"
    assert event.properties["recovery_url"].startswith("https://brew-supply.example/")
    [contact] = contacts_of(sessions, connected.id)
    assert contact.id == event.contact_id and contact.external_id == "shopify:7391042183417"
    assert contact.email == "ada.lovelace@example.com" and contact.consent["email"] == "opted_in"
    assert queued_event_ids(redis, namespace) == [event.id]


def test_a_mapped_receipt_keeps_the_event_ids_and_not_the_payload(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session]
) -> None:
    """The receipt records topic, status and event ids; the personal data lives only in the event."""
    deliver(client, "shopify", connected.id, raw("shopify", "orders_paid"), topic="orders/paid", delivery_id="d-paid")
    [receipt] = receipts_of(sessions, connected.id)
    [event] = events_of(sessions, connected.id)
    assert (receipt.source, receipt.delivery_id, receipt.topic, receipt.status) == (
        "shopify", "d-paid", "orders/paid", "mapped")
    assert receipt.event_ids == {"ids": [event.id], "external_ids": ["shopify:d-paid"]}
    assert receipt.payload is None and receipt.warning is None


def test_an_order_for_a_checkout_is_stored_with_that_checkouts_cart_id(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session]
) -> None:
    """orders/create after checkouts/create: the order_placed carries the checkout's cart_id, same contact."""
    deliver(client, "shopify", connected.id, raw("shopify", "checkouts_create"), topic="checkouts/create",
            delivery_id="d-checkout")
    response = deliver(client, "shopify", connected.id, raw("shopify", "orders_create"), topic="orders/create",
                       delivery_id="d-order")
    assert response.status_code == 202
    checkout, order = events_of(sessions, connected.id)
    assert order.type == "order_placed"
    assert order.properties["cart_id"] == checkout.properties["cart_id"]
    assert order.contact_id == checkout.contact_id


# --- Shopify: refused, repeated, unmapped ----------------------------------------------


@pytest.mark.parametrize("how", ["missing", "empty", "wrong secret", "body changed", "not base64"])
def test_a_bad_or_missing_signature_is_401_and_stores_nothing(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str, how: str
) -> None:
    """Only the shop holding the secret can make Rapport store anything."""
    body = raw("shopify", "orders_create")
    signature = {
        "missing": None,
        "empty": "",
        "wrong secret": sign_body("not-the-secret", body),
        "body changed": sign_body(SHOPIFY_SECRET, body + b" "),
        "not base64": "\u00e9t\u00e9",
    }[how]
    response = deliver(client, "shopify", connected.id, body, topic="orders/create", delivery_id="d-1",
                       signature=signature, unsigned=signature is None)
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert_nothing_stored(sessions, connected.id)
    assert queued_event_ids(redis, namespace) == []


def test_a_workspace_without_a_shop_secret_refuses_every_delivery(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """Until `rapport workspace connect` ran, no signature can be right."""
    response = deliver(client, "shopify", shop.id, raw("shopify", "orders_create"), topic="orders/create",
                       delivery_id="d-1", secret="anything")
    assert response.status_code == 401
    assert_nothing_stored(sessions, shop.id)


def test_another_workspaces_secret_does_not_sign_for_this_one(
    client: FlaskClient, connected: Shop, second_shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """Each workspace checks its own secret."""
    with sessions.begin() as session:
        connect_shop(session, second_shop.id, "shopify", "second-shop-secret")
    response = deliver(client, "shopify", connected.id, raw("shopify", "orders_create"), topic="orders/create",
                       delivery_id="d-1", secret="second-shop-secret")
    assert response.status_code == 401
    assert_nothing_stored(sessions, connected.id)


def test_a_repeated_delivery_is_a_duplicate_and_changes_nothing(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str
) -> None:
    """The same X-Shopify-Webhook-Id again answers 200 duplicate: no event, no contact change, no job."""
    first = deliver(client, "shopify", connected.id, raw("shopify", "orders_create"), topic="orders/create",
                    delivery_id="d-same")
    assert first.status_code == 202
    changed = load("shopify", "orders_create")
    changed["customer"]["first_name"] = "Augusta"
    again = deliver(client, "shopify", connected.id, changed, topic="orders/create", delivery_id="d-same")
    assert again.status_code == 200 and again.json == {"duplicate": True}
    assert len(events_of(sessions, connected.id)) == 1
    assert len(receipts_of(sessions, connected.id)) == 1
    [contact] = contacts_of(sessions, connected.id)
    assert contact.first_name == "Ada"
    assert len(queued_event_ids(redis, namespace)) == 1


def test_the_same_shopify_event_under_a_new_webhook_id_is_a_duplicate(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str
) -> None:
    """Shopify's X-Shopify-Event-Id is the same on every delivery of one event, whose webhook id differs:
    the second delivery answers 200 duplicate and the order is stored once, as shopify:<event id>."""
    body = raw("shopify", "orders_create")
    first = deliver(client, "shopify", connected.id, body, topic="orders/create", delivery_id="d-first",
                    event_id="98880550-7158-44d4-b7cd-2c97c8a091b5")
    assert first.json == {"accepted": True, "event_ids": ["shopify:98880550-7158-44d4-b7cd-2c97c8a091b5"]}
    again = deliver(client, "shopify", connected.id, body, topic="orders/create", delivery_id="d-second",
                    event_id="98880550-7158-44d4-b7cd-2c97c8a091b5")
    assert again.status_code == 200 and again.json == {"duplicate": True}
    assert len(events_of(sessions, connected.id)) == 1
    assert len(queued_event_ids(redis, namespace)) == 1


def test_shopify_events_with_different_event_ids_are_both_stored(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session]
) -> None:
    """Two events (two event ids) are two events, even under one webhook id; without an event id
    the webhook id still de-duplicates."""
    body = raw("shopify", "orders_paid")
    for event_id in ("evt-a", "evt-b"):
        response = deliver(client, "shopify", connected.id, body, topic="orders/paid", delivery_id="d-1",
                           event_id=event_id)
        assert response.status_code == 202
    deliver(client, "shopify", connected.id, body, topic="orders/paid", delivery_id="d-no-event-id")
    again = deliver(client, "shopify", connected.id, body, topic="orders/paid", delivery_id="d-no-event-id")
    assert again.json == {"duplicate": True}
    assert [e.external_id for e in events_of(sessions, connected.id)] == [
        "shopify:evt-a", "shopify:evt-b", "shopify:d-no-event-id"]


def test_an_unmapped_topic_is_kept_with_its_payload_and_answered_with_a_warning(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session]
) -> None:
    """202 accepted false with a warning; the receipt holds the payload for inspection; no event."""
    payload = {"id": 8120349057273, "title": "Ceramic pour-over dripper", "status": "active"}
    response = deliver(client, "shopify", connected.id, payload, topic="products/update", delivery_id="d-product")
    assert response.status_code == 202
    assert response.json["accepted"] is False and "products/update" in response.json["warning"]
    [receipt] = receipts_of(sessions, connected.id)
    assert (receipt.status, receipt.topic, receipt.payload) == ("unmapped", "products/update", payload)
    assert receipt.warning == response.json["warning"]
    assert events_of(sessions, connected.id) == []


def test_a_signed_body_that_is_not_json_is_kept_as_unmapped(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session]
) -> None:
    """Even an unreadable body from the shop is stored for inspection, not dropped."""
    response = deliver(client, "shopify", connected.id, b"<order id='1'/>", topic="orders/create", delivery_id="d-xml")
    assert response.status_code == 202 and "not JSON" in response.json["warning"]
    [receipt] = receipts_of(sessions, connected.id)
    assert receipt.status == "unmapped" and receipt.payload == {"body": "<order id='1'/>"}


def test_a_completed_checkout_is_recorded_as_ignored_without_an_event(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session]
) -> None:
    """200 accepted false, ignored, with the reason; the receipt says so too."""
    checkout = load("shopify", "checkouts_create") | {"completed_at": "2026-11-23T10:21:30+01:00"}
    response = deliver(client, "shopify", connected.id, checkout, topic="checkouts/update", delivery_id="d-done")
    assert response.status_code == 200
    assert response.json["ignored"] is True and "orders/create" in response.json["reason"]
    [receipt] = receipts_of(sessions, connected.id)
    assert receipt.status == "ignored" and receipt.payload is None
    assert events_of(sessions, connected.id) == []


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_an_unknown_workspace_is_404_and_says_nothing_more(
    client: FlaskClient, connected: Shop, platform: str
) -> None:
    """A guessed workspace id learns only 'not found', signed or not."""
    response = deliver(client, platform, "ws_0000000000000000", {"id": 1}, topic="orders/create", delivery_id="d")
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": "no such webhook endpoint"}


# --- WooCommerce -----------------------------------------------------------------------


def test_a_signed_woocommerce_order_is_stored_as_an_event_from_woocommerce(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session]
) -> None:
    """order.created answers 202 and stores an order_placed with source woocommerce."""
    response = deliver(client, "woocommerce", connected.id, raw("woocommerce", "order_created"),
                       topic="order.created", delivery_id="36e520ebabc2fa725092ff4a47acedf2")
    assert response.status_code == 202, response.json
    assert response.json == {"accepted": True, "event_ids": ["woocommerce:order:4817:placed"]}
    [event] = events_of(sessions, connected.id)
    assert (event.type, event.source, event.properties["order_id"]) == ("order_placed", "woocommerce", "4817")
    [contact] = contacts_of(sessions, connected.id)
    assert contact.external_id == "woocommerce:57" and contact.phone == "+3225550123"  # E.164


def test_a_paid_woocommerce_order_saved_twice_is_paid_once(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session]
) -> None:
    """Two order.updated deliveries of one processing order: one order_paid, the second receipt says why."""
    body = raw("woocommerce", "order_updated_processing")
    first = deliver(client, "woocommerce", connected.id, body, topic="order.updated", delivery_id="a1")
    second = deliver(client, "woocommerce", connected.id, body, topic="order.updated", delivery_id="b2")
    assert first.status_code == 202 and second.status_code == 200
    assert second.json["ignored"] is True and "woocommerce:order:4817:processing" in second.json["reason"]
    assert [e.type for e in events_of(sessions, connected.id)] == ["order_paid"]
    assert [r.status for r in receipts_of(sessions, connected.id)] == ["mapped", "ignored"]


def test_a_woocommerce_delivery_signed_with_the_shopify_secret_is_refused(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session]
) -> None:
    """Each platform has its own secret."""
    response = deliver(client, "woocommerce", connected.id, raw("woocommerce", "order_created"),
                       topic="order.created", delivery_id="d", secret=SHOPIFY_SECRET)
    assert response.status_code == 401
    assert_nothing_stored(sessions, connected.id)


def test_the_woocommerce_ping_on_saving_a_webhook_is_answered_200(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session]
) -> None:
    """The unsigned form body `webhook_id=<n>` gets 200 so the shop can save the webhook; nothing is stored."""
    response = client.post(f"/api/v1/webhooks/woocommerce/{connected.id}", data=b"webhook_id=12",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and response.json == {"ping": True}
    assert_nothing_stored(sessions, connected.id)

"""WooCommerce webhooks as canonical events: which shop changes start, continue or stop journeys.

| topic                              | event                                         |
| ---------------------------------- | --------------------------------------------- |
| order.created                      | order_placed                                  |
| order.updated, status processing   | order_paid                                    |
| order.updated, status completed    | order_fulfilled                               |
| order.updated, status cancelled    | order_cancelled                               |
| order.updated, status refunded     | order_refunded                                |
| order.updated, any other status    | order_updated, with `status`                  |
| customer.created, customer.updated | contact_updated                               |

Decisions, so a marketer can predict what happens:
- WooCommerce sends order.updated on every save of an order, not only when its status
  changes, and gives every delivery a new delivery id. So events are keyed by what
  happened, not by the delivery: `woocommerce:order:<id>:placed`,
  `woocommerce:order:<id>:<status>`, `woocommerce:customer:<id>:<modified time>`. A
  second save of a paid order is recorded as a receipt (ignored: already recorded),
  and makes no second order_paid.
- Draft orders (`checkout-draft`, the block checkout's cart stage) are ignored.
- Contacts are `woocommerce:<customer id>`, or for a guest order the billing email
  alone (stored as `email:<email>`). Names and phone come from the billing address.
  WooCommerce has no marketing consent field of its own, so consent is left as it was.
- Orders carry no cart id: WooCommerce's webhooks say nothing of the cart an order came
  from (`cart_hash` hashes its contents and is not an id).
- On creating a webhook WooCommerce sends an unsigned ping, `webhook_id=<n>` as a form
  body; it is answered 200 so the shop can save the webhook, and stores nothing.
"""

from __future__ import annotations

import re
from typing import Any

from engine.shops import fields as shop_fields
from engine.shops.fields import amount, compact, ident, quantity, text, timestamp
from engine.shops.webhooks import Delivery, Ignored, MappingResult, Platform, Unmapped

SOURCE = "woocommerce"
STATUS_EVENTS = {
    "processing": "order_paid",
    "completed": "order_fulfilled",
    "cancelled": "order_cancelled",
    "refunded": "order_refunded",
}
ORDER_TOPICS = ("order.created", "order.updated")
CUSTOMER_TOPICS = ("customer.created", "customer.updated")
TOPICS = (*ORDER_TOPICS, *CUSTOMER_TOPICS)
DRAFT_STATUSES = ("checkout-draft", "auto-draft")
PING_BODY = re.compile(rb"webhook_id=\d+")


def map_webhook(topic: str, payload: Any, delivery_id: str) -> MappingResult:
    """The canonical event for one WooCommerce delivery, or why there is none."""
    if not isinstance(payload, dict):
        return Unmapped("the body is not a JSON object")
    if topic in ORDER_TOPICS:
        return _order(payload, created=topic == "order.created")
    if topic in CUSTOMER_TOPICS:
        return _customer(payload, delivery_id, created=topic == "customer.created")
    return Unmapped(f"WooCommerce topic {topic or '(none)'!r} is not one Rapport reads; "
                    f"subscribe to: {', '.join(TOPICS)}")


def is_ping(delivery: Delivery) -> bool:
    """WooCommerce's hello on saving a webhook: unsigned, `webhook_id=<n>`, no topic."""
    return not delivery.signature and PING_BODY.fullmatch(delivery.body.strip()) is not None


def _order(order: dict[str, Any], *, created: bool) -> MappingResult:
    order_id = ident(order.get("id"))
    if order_id is None:
        return Unmapped("the order has no id")
    status = text(order.get("status"), 50)
    if status in DRAFT_STATUSES:
        return Ignored(f"order {order_id} is a draft ({status}), not yet an order")
    if not created and status is None:
        return Unmapped(f"order {order_id} has no status")
    contact = _order_contact(order)
    if contact is None:
        return Unmapped(f"order {order_id} has no customer and no billing email")
    properties = compact({
        "order_id": order_id,
        "order_number": text(order.get("number")),
        "status": status,
        "items": shop_fields.items(order.get("line_items"), _item),
        "total": amount(order.get("total")),
        "currency": text(order.get("currency")),
        "payment_url": text(order.get("payment_url"), 2000) if order.get("needs_payment") is True else None,
    })
    if created:
        kind, event_id, when = "order_placed", f"{SOURCE}:order:{order_id}:placed", order.get("date_created_gmt")
    else:
        kind = STATUS_EVENTS.get(status or "", "order_updated")
        event_id, when = f"{SOURCE}:order:{order_id}:{status}", order.get("date_modified_gmt")
    return shop_fields.finish(_event(event_id, kind, when, contact, properties))


def _customer(customer: dict[str, Any], delivery_id: str, *, created: bool) -> MappingResult:
    customer_id = ident(customer.get("id"))
    billing = _dict(customer.get("billing"))
    email = text(customer.get("email"), 320) or text(billing.get("email"), 320)
    if customer_id is None and email is None:
        return Unmapped("the customer has no id and no email")
    contact = compact({
        "external_id": f"{SOURCE}:{customer_id}" if customer_id else None,
        "email": email.lower() if email else None,
        "phone": text(billing.get("phone"), 32),
        "first_name": text(customer.get("first_name")) or text(billing.get("first_name")),
        "last_name": text(customer.get("last_name")) or text(billing.get("last_name")),
    })
    modified = customer.get("date_modified_gmt") or customer.get("date_created_gmt")
    # The same change delivered twice is one event; a delivery without a time is its own.
    change = "created" if created else (text(modified, 40) or f"delivery:{delivery_id}")
    event_id = f"{SOURCE}:customer:{customer_id or email}:{change}"
    properties = compact({"customer_id": customer_id})
    return shop_fields.finish(_event(event_id, "contact_updated", modified, contact, properties))


def _order_contact(order: dict[str, Any]) -> dict[str, Any] | None:
    billing = _dict(order.get("billing"))
    customer_id = ident(order.get("customer_id"))
    email = text(billing.get("email"), 320)
    if customer_id is None and email is None:
        return None
    return compact({
        "external_id": f"{SOURCE}:{customer_id}" if customer_id else None,
        "email": email.lower() if email else None,
        "phone": text(billing.get("phone"), 32),
        "first_name": text(billing.get("first_name")),
        "last_name": text(billing.get("last_name")),
    })


def _item(line: dict[str, Any]) -> dict[str, Any]:
    image = _dict(line.get("image"))
    return compact({
        "name": text(line.get("name")),
        "quantity": quantity(line.get("quantity")),
        "price": amount(line.get("price")),
        "sku": text(line.get("sku")),
        "product_id": ident(line.get("product_id")),
        "variant_id": ident(line.get("variation_id")),
        "image_url": text(image.get("src"), 2000),
    })


def _event(event_id: str, kind: str, when: Any, contact: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return compact({"id": event_id[:200], "type": kind, "occurred_at": timestamp(when, assume_utc=True),
                    "contact": contact, "properties": properties})


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


PLATFORM = Platform(
    name=SOURCE,
    signature_header="X-WC-Webhook-Signature",
    delivery_header="X-WC-Webhook-Delivery-ID",
    topic_header="X-WC-Webhook-Topic",
    map_delivery=map_webhook,
    is_ping=is_ping,
)

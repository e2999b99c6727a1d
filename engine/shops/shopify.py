"""Shopify webhooks as canonical events: which shop changes start, continue or stop journeys.

Topics and the events they become (each delivery is one event, id `shopify:<X-Shopify-Event-Id>`,
or `shopify:<X-Shopify-Webhook-Id>` for a delivery without an event id):

| topic                                  | event           | keyed by                          |
| -------------------------------------- | --------------- | --------------------------------- |
| checkouts/create                       | checkout_started| cart_id = the checkout's token    |
| checkouts/update                       | cart_updated    | cart_id = the checkout's token    |
| orders/create                          | order_placed    | order_id; cart_id = checkout_token|
| orders/paid, /fulfilled, /cancelled    | order_paid, order_fulfilled, order_cancelled | order_id |
| customers/create, customers/update     | contact_updated | the contact                       |

Decisions, so a marketer can predict what happens:
- The checkout token is the cart id: Shopify repeats it as the order's `checkout_token`,
  so the order_placed of a bought checkout ends that checkout's cart journey.
- A checkout update that carries `completed_at` is ignored: the checkout became an
  order, which arrives as orders/create; a late cart_updated must not start a reminder
  for a cart that was bought.
- Contacts are `shopify:<customer id>`, or, for a guest without a customer record, the
  email alone (stored as `email:<email>`).
- Email consent follows the customer's `email_marketing_consent.state` (subscribed →
  opted_in, pending → pending, anything else → opted_out), or the older
  `accepts_marketing` flag. Without either, a ticked `buyer_accepts_marketing` box at
  checkout means opted_in; an unticked one changes nothing, since the customer may have
  subscribed before. SMS consent follows `sms_marketing_consent.state` the same way.
  Consent that carries its own time goes on as a timed claim (engine/contacts/consent.py):
  `{status, at: consent_updated_at, source}`, where the source is `shopify_single_opt_in`
  or `shopify_confirmed_opt_in` for an opt-in at that level (the customer's own, so it
  may undo an older unsubscribe), `shopify` otherwise; a ticked checkout box is
  `checkout_checkbox` at the order's `processed_at` (a checkout's `created_at`). Without a
  time the state goes on alone, as the shop's word, which never undoes an unsubscribe.
  (From API version 2025-01 customer payloads no longer carry consent; it then stays
  as it was.)
- Birthday only when a customer metafield clearly holds one (key `birth_date`,
  `birthday` or `date_of_birth` with an ISO date), as a shop exposes with
  `metafield_namespaces`; Shopify has no birthday field of its own.
- Amounts are what the customer saw: an order's `*_set.presentment_money`, a checkout's
  amounts (already in its `presentment_currency`). Items carry name (the product
  title), variant, quantity, price, sku, product_id, variant_id and image_url when
  given; Shopify's payloads hold no product URL.
"""

from __future__ import annotations

from typing import Any

from engine.shops import fields as shop_fields
from engine.shops.fields import amount, compact, ident, quantity, text, timestamp
from engine.shops.webhooks import Ignored, MappingResult, Platform, Unmapped

SOURCE = "shopify"
ORDER_TOPICS = {
    "orders/create": "order_placed",
    "orders/paid": "order_paid",
    "orders/fulfilled": "order_fulfilled",
    "orders/cancelled": "order_cancelled",
}
CHECKOUT_TOPICS = {"checkouts/create": "checkout_started", "checkouts/update": "cart_updated"}
CUSTOMER_TOPICS = ("customers/create", "customers/update")
TOPICS = (*CHECKOUT_TOPICS, *ORDER_TOPICS, *CUSTOMER_TOPICS)
CONSENT_STATES = {"subscribed": "opted_in", "pending": "pending"}  # every other state: opted_out
PERSON_OPT_IN_LEVELS = ("single_opt_in", "confirmed_opt_in")  # M3AAWG levels: the customer opted in
BIRTHDAY_KEYS = ("birth_date", "birthday", "date_of_birth")


def map_webhook(topic: str, payload: Any, delivery_id: str) -> MappingResult:
    """The canonical event for one Shopify delivery, or why there is none."""
    if not isinstance(payload, dict):
        return Unmapped("the body is not a JSON object")
    event_id = f"{SOURCE}:{delivery_id}"
    if topic in CHECKOUT_TOPICS:
        return _checkout(CHECKOUT_TOPICS[topic], payload, event_id, created=topic == "checkouts/create")
    if topic in ORDER_TOPICS:
        return _order(ORDER_TOPICS[topic], payload, event_id)
    if topic in CUSTOMER_TOPICS:
        return _customer(payload, event_id)
    return Unmapped(f"Shopify topic {topic or '(none)'!r} is not one Rapport reads; "
                    f"subscribe to: {', '.join(TOPICS)}")


def _checkout(kind: str, checkout: dict[str, Any], event_id: str, *, created: bool) -> MappingResult:
    token = text(checkout.get("token"))
    if token is None:
        return Unmapped("the checkout has no token to key its cart by")
    if checkout.get("completed_at"):
        return Ignored(f"checkout {token} is completed; its order arrives as orders/create")
    contact = _contact(checkout, checkout.get("customer"))
    if contact is None:
        return Unmapped(f"checkout {token} has no customer and no email yet")
    currency = text(checkout.get("presentment_currency")) or text(checkout.get("currency"))
    properties = compact({
        "cart_id": token,
        "checkout_id": ident(checkout.get("id")),
        "items": shop_fields.items(checkout.get("line_items"), _checkout_item),
        "total": amount(checkout.get("total_price")),
        "currency": currency,
        "recovery_url": text(checkout.get("abandoned_checkout_url"), 2000),
    })
    when = checkout.get("created_at") if created else checkout.get("updated_at")
    return shop_fields.finish(_event(event_id, kind, when, contact, properties))


def _order(kind: str, order: dict[str, Any], event_id: str) -> MappingResult:
    order_id = ident(order.get("id"))
    if order_id is None:
        return Unmapped("the order has no id")
    contact = _contact(order, order.get("customer"))
    if contact is None:
        return Unmapped(f"order {order_id} has no customer and no email")
    shop_currency = text(order.get("currency"))
    currency = text(order.get("presentment_currency")) or shop_currency
    same_currency = currency == shop_currency
    properties: dict[str, Any] = {
        "order_id": order_id,
        "order_number": text(order.get("name")),
        "items": shop_fields.items(order.get("line_items"), lambda line: _order_item(line, same_currency)),
        "total": _presentment(order, "total_price", same_currency),
        "currency": currency,
        "order_status_url": text(order.get("order_status_url"), 2000),
    }
    when = order.get("updated_at")
    if kind == "order_placed":
        properties["cart_id"] = text(order.get("checkout_token"))
        when = order.get("created_at")
    elif kind == "order_cancelled":
        properties["cancel_reason"] = text(order.get("cancel_reason"))
        when = order.get("cancelled_at") or when
    elif kind == "order_fulfilled":
        properties |= _tracking(order.get("fulfillments"))
    return shop_fields.finish(_event(event_id, kind, when, contact, compact(properties)))


def _customer(customer: dict[str, Any], event_id: str) -> MappingResult:
    contact = _contact({}, customer)
    if contact is None:
        return Unmapped("the customer has no id and no email")
    properties = compact({"customer_id": ident(customer.get("id"))})
    return shop_fields.finish(_event(event_id, "contact_updated", customer.get("updated_at"), contact, properties))


def _event(event_id: str, kind: str, when: Any, contact: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return compact({"id": event_id, "type": kind, "occurred_at": timestamp(when),
                    "contact": contact, "properties": properties})


def _contact(owner: dict[str, Any], customer: Any) -> dict[str, Any] | None:
    """The contact of an order or checkout (`owner`), or of a customer payload (`owner` empty)."""
    customer = customer if isinstance(customer, dict) else {}
    billing = owner.get("billing_address")
    billing = billing if isinstance(billing, dict) else {}
    customer_id = ident(customer.get("id"))
    email = text(customer.get("email"), 320) or text(owner.get("email"), 320) or text(owner.get("contact_email"), 320)
    if customer_id is None and email is None:
        return None
    consent = compact({
        "email": _consent(customer.get("email_marketing_consent"), customer.get("accepts_marketing"),
                          owner.get("buyer_accepts_marketing"), owner.get("processed_at") or owner.get("created_at")),
        "sms": _consent(customer.get("sms_marketing_consent"), None, None, None),
    })
    return compact({
        "external_id": f"{SOURCE}:{customer_id}" if customer_id else None,
        "email": email.lower() if email else None,
        "phone": text(customer.get("phone"), 32) or text(owner.get("phone"), 32),
        "first_name": text(customer.get("first_name")) or text(billing.get("first_name")),
        "last_name": text(customer.get("last_name")) or text(billing.get("last_name")),
        "locale": text(owner.get("customer_locale"), 35) or text(customer.get("locale"), 35),
        "birthday": _birthday(customer.get("metafields")),
        "consent": consent,
    })


def _consent(state_record: Any, accepts_marketing: Any, ticked_at_checkout: Any,
             checkout_at: Any) -> str | dict[str, str] | None:
    if isinstance(state_record, dict) and isinstance(state_record.get("state"), str):
        return _consent_state(state_record)
    if isinstance(accepts_marketing, bool):
        return "opted_in" if accepts_marketing else "opted_out"
    if ticked_at_checkout is not True:
        return None
    at = timestamp(checkout_at)
    return {"status": "opted_in", "at": at, "source": "checkout_checkbox"} if at else "opted_in"


def _consent_state(state_record: dict[str, Any]) -> str | dict[str, str]:
    """A consent state record; timed when it says when it was updated."""
    status = CONSENT_STATES.get(state_record["state"].lower(), "opted_out")
    at = timestamp(state_record.get("consent_updated_at"))
    if at is None:
        return status
    level = str(state_record.get("opt_in_level") or "").lower()
    by_customer = status != "opted_out" and level in PERSON_OPT_IN_LEVELS
    return {"status": status, "at": at, "source": f"shopify_{level}" if by_customer else SOURCE}


def _birthday(metafields: Any) -> str | None:
    if not isinstance(metafields, list):
        return None
    for field in metafields:
        if isinstance(field, dict) and field.get("key") in BIRTHDAY_KEYS:
            return text(field.get("value"), 10)  # not an ISO date? finish() drops it
    return None


def _checkout_item(line: dict[str, Any]) -> dict[str, Any]:
    return compact({
        "name": text(line.get("title")) or text(line.get("presentment_title")),
        "variant": text(line.get("variant_title")),
        "quantity": quantity(line.get("quantity")),
        "price": amount(line.get("price")),
        "sku": text(line.get("sku")),
        "product_id": ident(line.get("product_id")),
        "variant_id": ident(line.get("variant_id")),
        "image_url": text(line.get("image_url"), 2000),
    })


def _order_item(line: dict[str, Any], same_currency: bool) -> dict[str, Any]:
    return compact({
        "name": text(line.get("title")) or text(line.get("name")),
        "variant": text(line.get("variant_title")),
        "quantity": quantity(line.get("quantity")),
        "price": _presentment(line, "price", same_currency),
        "sku": text(line.get("sku")),
        "product_id": ident(line.get("product_id")),
        "variant_id": ident(line.get("variant_id")),
    })


def _presentment(obj: dict[str, Any], name: str, same_currency: bool) -> float | None:
    """`name`'s amount in the customer's currency: from `<name>_set`, or the plain field
    when the shop and the customer use one currency. Otherwise none rather than a wrong one."""
    money_set = obj.get(f"{name}_set")
    presentment = money_set.get("presentment_money") if isinstance(money_set, dict) else None
    if isinstance(presentment, dict) and presentment.get("amount") is not None:
        return amount(presentment.get("amount"))
    return amount(obj.get(name)) if same_currency else None


def _tracking(fulfillments: Any) -> dict[str, Any]:
    if not isinstance(fulfillments, list) or not fulfillments or not isinstance(fulfillments[-1], dict):
        return {}
    latest = fulfillments[-1]
    return {"tracking_number": text(latest.get("tracking_number")),
            "tracking_url": text(latest.get("tracking_url"), 2000),
            "carrier": text(latest.get("tracking_company"))}


PLATFORM = Platform(
    name=SOURCE,
    signature_header="X-Shopify-Hmac-Sha256",
    delivery_header="X-Shopify-Webhook-Id",
    event_header="X-Shopify-Event-Id",
    topic_header="X-Shopify-Topic",
    map_delivery=map_webhook,
)

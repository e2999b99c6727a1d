"""Order status updates: transactional emails when an order is placed, shipped, delivered.

Three journeys, each keyed by the order id, so every order gets each email once
however often the shop repeats its webhook:
- confirmation: starts on `order_placed`;
- shipped: starts on `order_shipped` or `order_fulfilled` (what Shopify's
  orders/fulfilled and WooCommerce's "completed" map to), with the tracking link when
  the event has `tracking_url` (and `tracking_number`, `carrier`);
- delivered: starts on `order_delivered`.
Each sends at once and ends. The sends are transactional: they go to customers who
opted out of marketing email, but never to a suppressed (bounced, complained) address.
"""

from __future__ import annotations

from typing import Any

NAME = "Order status updates"
NAMES = {"confirmation": "Order confirmation", "shipped": "Order shipped", "delivered": "Order delivered"}


def _transactional(events: str | list[str], template: str) -> dict[str, Any]:
    return {
        "trigger": {"event": events, "key": "order_id"},
        "steps": [{"type": "send", "id": template.replace("_", "-"), "channel": "email", "template": template,
                   "transactional": True}],
    }


def confirmation_recipe() -> dict[str, Any]:
    return _transactional("order_placed", "order_confirmation")


def shipped_recipe() -> dict[str, Any]:
    return _transactional(["order_shipped", "order_fulfilled"], "order_shipped")


def delivered_recipe() -> dict[str, Any]:
    return _transactional("order_delivered", "order_delivered")


def recipe(*, status: str = "confirmation") -> dict[str, Any]:
    """One of the three by name: confirmation, shipped or delivered."""
    builders = {"confirmation": confirmation_recipe, "shipped": shipped_recipe, "delivered": delivered_recipe}
    if status not in builders:
        raise ValueError(f"status must be one of {', '.join(builders)}")
    return builders[status]()

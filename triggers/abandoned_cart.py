"""Abandoned cart: a cart that sits without an order gets a reminder.

Starts on `cart_updated` or `checkout_started` (Shopify's checkouts/create), keyed by
the cart id, so each cart is reminded at most once
and a later update of the same cart refreshes what the email shows instead of
starting over. An `order_placed` for the same cart ends the run: no reminder for a
cart that was bought.
"""

from __future__ import annotations

from typing import Any

NAME = "Abandoned cart reminder"
DEFAULT_WAIT_SECONDS = 3600


def recipe(*, wait_seconds: int = DEFAULT_WAIT_SECONDS, template: str = "abandoned_cart") -> dict[str, Any]:
    return {
        "trigger": {"event": ["cart_updated", "checkout_started"], "key": "cart_id"},
        "goals": [{"event": "order_placed", "name": "order placed"}],
        "steps": [
            {"type": "wait", "id": "wait-for-order", "seconds": wait_seconds},
            {"type": "send", "id": "reminder-email", "channel": "email", "template": template},
        ],
    }

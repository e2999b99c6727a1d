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


def recipe(*, wait_seconds: int = DEFAULT_WAIT_SECONDS, template: str = "abandoned_cart",
           messenger_nudge: bool = False) -> dict[str, Any]:
    """`messenger_nudge`: after the email, a short nudge on Telegram, or by SMS for contacts
    with no linked chat (SMS needs the contact's opt-in; quiet hours apply)."""
    nudge = [{"type": "send", "id": "reminder-nudge", "channel": "telegram", "fallback": ["sms"],
              "template": template}] if messenger_nudge else []
    return {
        "trigger": {"event": ["cart_updated", "checkout_started"], "key": "cart_id"},
        "goals": [{"event": "order_placed", "name": "order placed"}],
        "steps": [
            {"type": "wait", "id": "wait-for-order", "seconds": wait_seconds},
            {"type": "send", "id": "reminder-email", "channel": "email", "template": template},
            *nudge,
        ],
    }

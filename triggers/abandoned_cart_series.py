"""Abandoned cart series: up to three reminders for a cart left without an order.

Starts on `cart_updated` or `checkout_started`, keyed by the cart id: each cart is one
run, and later updates of the same cart refresh what the emails show instead of
starting over. Continues with a reminder an hour after the cart, a second one
(template `abandoned_cart_second`) a day after it and, when a discount code is given,
a third one three days after it with the code. The code is written to the contact
first (attribute `cart_discount_code`), because a send step carries no data of its
own: the template reads it from `contact.attributes`. Stops as soon as an
`order_placed` for the same cart arrives (goal: order placed), wherever the run is.
"""

from __future__ import annotations

from typing import Any

NAME = "Abandoned cart series"
DISCOUNT_ATTRIBUTE = "cart_discount_code"


def recipe(*, first_after_hours: int = 1, second_after_hours: int = 24, third_after_hours: int = 72,
           discount_code: str | None = None) -> dict[str, Any]:
    """Reminder times count from the cart's first event; the third is sent only with a discount code."""
    times = [first_after_hours, second_after_hours] + ([third_after_hours] if discount_code else [])
    if times[0] < 0 or any(later <= earlier for earlier, later in zip(times, times[1:], strict=False)):
        raise ValueError("reminder times must be increasing: first < second < third")
    steps: list[dict[str, Any]] = [
        {"type": "wait", "id": "wait-first", "hours": first_after_hours},
        {"type": "send", "id": "first-reminder", "channel": "email", "template": "abandoned_cart"},
        {"type": "wait", "id": "wait-second", "hours": second_after_hours - first_after_hours},
        {"type": "send", "id": "second-reminder", "channel": "email", "template": "abandoned_cart_second"},
    ]
    if discount_code:
        steps += [
            {"type": "wait", "id": "wait-third", "hours": third_after_hours - second_after_hours},
            {"type": "update_contact", "id": "set-discount-code", "set": {DISCOUNT_ATTRIBUTE: discount_code}},
            {"type": "send", "id": "third-reminder", "channel": "email", "template": "abandoned_cart_discount"},
        ]
    return {
        "trigger": {"event": ["cart_updated", "checkout_started"], "key": "cart_id"},
        "goals": [{"event": "order_placed", "name": "order placed"}],
        "steps": steps,
    }

"""Win-back: a customer with no order for 90 days gets a we-miss-you email, and a second
one with a discount a week later. Any new order ends the run (goal: order placed).

Keyed by the date of the last order, so a customer who comes back and lapses again
is won back again.
"""

from __future__ import annotations

from typing import Any

NAME = "Win-back"


def recipe(*, days: int = 90, discount_code: str | None = None, second_after_days: int = 7) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"type": "send", "id": "we-miss-you", "channel": "email", "template": "win_back"},
    ]
    if discount_code:
        steps += [
            {"type": "wait", "id": "a-week", "days": second_after_days},
            {"type": "update_contact", "id": "set-code", "set": {"win_back_code": discount_code}},
            {"type": "send", "id": "with-discount", "channel": "email", "template": "win_back"},
        ]
    return {
        "trigger": {"inactive_event": "order_placed", "days": days},
        "goals": [{"event": "order_placed", "name": "ordered again"}],
        "steps": steps,
    }

"""Welcome series: three emails for a new subscriber over their first days.

Starts on `subscribed` (the shop sends it when someone joins the newsletter or
creates an account; the contact should carry `consent.email: opted_in`), once ever
per contact. Continues with a welcome email at once, the brand story after
`story_after_days` (2) and, on day `nudge_after_days` (4), a nudge towards the
first order, optionally with a discount code (written to the contact first as
attribute `welcome_code`, read by the template). Stops early for the nudge only: a
contact who has ordered by then (an `order_placed` event, or orders counted in their
metrics) leaves with "already ordered" instead of being asked to buy.
"""

from __future__ import annotations

from typing import Any

NAME = "Welcome series"
CODE_ATTRIBUTE = "welcome_code"
HAS_ORDERED = {"any": [{"event": "order_placed", "at_least": 1},
                       {"metric": "orders_count", "op": "gt", "value": 0}]}


def recipe(*, story_after_days: int = 2, nudge_after_days: int = 4, discount_code: str | None = None) -> dict[str, Any]:
    if not 0 < story_after_days < nudge_after_days:
        raise ValueError("need 0 < story_after_days < nudge_after_days")
    nudge: list[dict[str, Any]] = []
    if discount_code:
        nudge.append({"type": "update_contact", "id": "set-welcome-code", "set": {CODE_ATTRIBUTE: discount_code}})
    nudge.append({"type": "send", "id": "first-order-nudge", "channel": "email", "template": "welcome_first_order"})
    return {
        "trigger": {"event": "subscribed"},
        "reentry": "once_ever",
        "steps": [
            {"type": "send", "id": "welcome", "channel": "email", "template": "welcome"},
            {"type": "wait", "id": "wait-for-story", "days": story_after_days},
            {"type": "send", "id": "brand-story", "channel": "email", "template": "welcome_brand_story"},
            {"type": "wait", "id": "wait-for-nudge", "days": nudge_after_days - story_after_days},
            {"type": "condition", "id": "has-ordered", "condition": HAS_ORDERED,
             "yes": [{"type": "exit", "id": "already-ordered", "reason": "already ordered: no first-order nudge"}],
             "no": nudge},
        ],
    }

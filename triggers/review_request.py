"""Post-purchase review request: some days after delivery, ask for a rating from 1 to 5.

Starts on `order_delivered` (or `order_fulfilled`, for shops that do not report
deliveries: then wait longer), keyed by the order id: one request per order.
Continues after `after_days` with the request email, whose five rating links
(`review_links` in the template context, see engine.links.reviews) each record a
`review_submitted` event with the order id and the score; optionally a reminder
`reminder_after_days` later. Stops when a `review_submitted` for that order arrives
(goal: reviewed), so nobody is asked about an order they have already rated.
What happens after the rating (apology, alert, public review) is the
`review_follow_up` recipe, which starts on that event.
"""

from __future__ import annotations

from typing import Any, Literal

NAME = "Post-purchase review request"


def recipe(*, on: Literal["order_delivered", "order_fulfilled"] = "order_delivered", after_days: int = 3,
           reminder_after_days: int | None = None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"type": "wait", "id": "wait-after-delivery", "days": after_days},
        {"type": "send", "id": "review-request", "channel": "email", "template": "review_request"},
    ]
    if reminder_after_days:
        steps += [
            {"type": "wait", "id": "wait-for-rating", "days": reminder_after_days},
            {"type": "send", "id": "review-reminder", "channel": "email", "template": "review_request"},
        ]
    return {
        "trigger": {"event": on, "key": "order_id"},
        "goals": [{"event": "review_submitted", "name": "reviewed"}],
        "steps": steps,
    }

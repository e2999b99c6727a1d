"""Review follow-up: answer a rating according to its score.

Starts on `review_submitted` (recorded by the rating links of the review request;
properties order_id, score), keyed by the order id: the first rating of an order
decides, a second click on another score changes nothing. Continues at once:
- a low score (at most `low_at_most`, default 2) gets an apology email and, when
  `alert_url` is set, a signed webhook to the shop with the contact, order and score,
  so someone can call the customer;
- a high score (at least `high_at_least`, default 4) gets a thank-you asking for a
  public review; the review page's address (`public_review_url`) is written to the
  contact first (attribute `public_review_url`), as a send step carries no data;
- anything between ends the run with the reason "neutral score".
Stops after that one answer.
"""

from __future__ import annotations

from typing import Any

NAME = "Review follow-up"
PUBLIC_REVIEW_ATTRIBUTE = "public_review_url"


def recipe(*, low_at_most: int = 2, high_at_least: int = 4, alert_url: str | None = None,
           public_review_url: str | None = None) -> dict[str, Any]:
    if not 1 <= low_at_most < high_at_least <= 5:
        raise ValueError("need 1 <= low_at_most < high_at_least <= 5")
    low: list[dict[str, Any]] = [
        {"type": "send", "id": "apology", "channel": "email", "template": "review_apology"},
    ]
    if alert_url:
        low.append({"type": "webhook", "id": "alert-shop", "url": alert_url,
                    "payload": {"alert": "low_review_score"}})
    high: list[dict[str, Any]] = []
    if public_review_url:
        high.append({"type": "update_contact", "id": "set-public-review-url",
                     "set": {PUBLIC_REVIEW_ATTRIBUTE: public_review_url}})
    high.append({"type": "send", "id": "ask-public-review", "channel": "email", "template": "review_public_ask"})
    return {
        "trigger": {"event": "review_submitted", "key": "order_id",
                    "filter": {"property": "score", "op": "gte", "value": 1}},
        "steps": [{
            "type": "condition", "id": "low-score",
            "condition": {"property": "score", "op": "lte", "value": low_at_most},
            "yes": low,
            "no": [{
                "type": "condition", "id": "high-score",
                "condition": {"property": "score", "op": "gte", "value": high_at_least},
                "yes": high,
                "no": [{"type": "exit", "id": "neutral-score", "reason": "neutral score: no follow-up"}],
            }],
        }],
    }

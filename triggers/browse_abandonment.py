"""Browse abandonment: a product looked at but not put in the cart gets one email.

Starts on `product_viewed` (properties: product_id, name, url, price, optionally
currency and image_url), keyed by the product id; views without a name or URL do not
enter, as the email could not show the product. Continues by waiting `wait_hours`
(default 4) for any `cart_updated` of the contact's (any cart: adding anything means
they are shopping, and a reminder would interrupt): if one comes, the run exits at
once. At the timeout, a contact who started a checkout or ordered meanwhile (Shopify
reports a checkout before any cart update) exits too; everyone else gets the product
email. Views of the same product refresh what the email shows. To keep browsing from
flooding the inbox, a contact enters at most once per `every_days` (default 7),
whichever products they look at; the email shows the first product of that period.
"""

from __future__ import annotations

from typing import Any

NAME = "Browse abandonment"


def recipe(*, wait_hours: int = 4, every_days: int = 7) -> dict[str, Any]:
    if not 1 <= wait_hours <= 72:
        raise ValueError("wait_hours must be 1 to 72")
    # History is counted in whole days: this window covers the whole wait (and a little before).
    window_days = -(-wait_hours // 24)
    shopping = {"any": [{"event": "checkout_started", "within_days": window_days},
                        {"event": "order_placed", "within_days": window_days}]}
    return {
        "trigger": {"event": "product_viewed", "key": "product_id",
                    "filter": {"all": [{"property": "name", "op": "exists"}, {"property": "url", "op": "exists"}]}},
        "reentry": {"every_days": every_days},
        "steps": [{
            "type": "wait_for_event", "id": "wait-for-cart", "event": "cart_updated", "same_key": False,
            "timeout": {"hours": wait_hours},
            "yes": [{"type": "exit", "id": "added-to-cart", "reason": "added to cart: no browse email"}],
            "no": [{
                "type": "condition", "id": "checked-out", "condition": shopping,
                "yes": [{"type": "exit", "id": "started-checkout",
                         "reason": "started a checkout or ordered: no browse email"}],
                "no": [{"type": "send", "id": "product-email", "channel": "email", "template": "browse_abandonment"}],
            }],
        }],
    }

"""The 50 live journeys bench/engine.py measures: a realistic mix of recipes and variants
(cart, checkout, browse, post-purchase, welcome, loyalty...), split by cart value and
customer type so that one variant fits each event, as a shop would set them up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.delivery.templates import Templates
from engine.journeys.definition import JourneyDefinition, parse_definition
from engine.journeys.versions import create_journey

JOURNEYS = 50

# --- The journeys --------------------------------------------------------------------------------

def _wait(step_id: str, **duration: int) -> dict[str, Any]:
    return {"type": "wait", "id": step_id, **duration}


def _send(step_id: str, template: str = "abandoned_cart") -> dict[str, Any]:
    return {"type": "send", "id": step_id, "channel": "email", "template": template}


ORDER_GOAL = [{"event": "order_placed", "name": "order placed"}]


def _tiers(field: str, bounds: list[float]) -> list[dict[str, Any]]:
    """Conditions splitting `field` (an event property) into the ranges between bounds."""
    out: list[dict[str, Any]] = []
    for low, high in zip([None, *bounds], [*bounds, None], strict=True):
        parts = ([{"property": field, "op": "gte", "value": low}] if low is not None else []) + (
            [{"property": field, "op": "lt", "value": high}] if high is not None else [])
        out.append(parts[0] if len(parts) == 1 else {"all": parts})
    return out


NEW = {"metric": "orders_count", "op": "eq", "value": 0}
RETURNING = {"metric": "orders_count", "op": "gte", "value": 1}
VIP = {"attribute": "vip", "op": "eq", "value": True}


def journey_mix(*, send_at_once: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """50 live journeys, as a shop running Rapport might have them: flows per cart value and
    customer type (one of them fits a given cart), browse and search abandonment, post-purchase,
    journeys on rarer events, and date, inactivity, holiday and broadcast journeys."""
    mix: list[tuple[str, dict[str, Any]]] = []
    value_tiers = _tiers("total", [30, 100])
    for i, (tier, who) in enumerate((t, w) for t in value_tiers for w in (NEW, RETURNING)):  # 6 abandoned cart
        if i % 2 == 0:
            steps = [_wait("wait-first", seconds=[3600, 1800, 5400][i // 2]), _send("reminder")]
        else:  # a condition, and one more day for those who ordered rarely
            steps = [_wait("wait-first", seconds=3600),
                     {"type": "condition", "id": "loyal", "condition": {"metric": "orders_count", "op": "gte",
                                                                        "value": 3},
                      "yes": [_send("reminder")], "no": [_wait("wait-a-day", hours=24), _send("second-reminder")]}]
        mix.append((f"Abandoned cart {i + 1}", {
            "trigger": {"event": "cart_updated", "key": "cart_id", "filter": {"all": [tier, who]}},
            "goals": ORDER_GOAL, "steps": steps}))
    for i, (tier, who) in enumerate((t, w) for t in value_tiers for w in (VIP, {"not": VIP})):  # 6 checkout
        mix.append((f"Checkout recovery {i + 1}", {
            "trigger": {"event": "checkout_started", "key": "cart_id", "filter": {"all": [tier, who]}},
            "goals": ORDER_GOAL, "steps": [
                {"type": "split", "id": "ab", "arms": [
                    {"name": "a", "weight": 45, "steps": [_wait("wait-30m", minutes=30), _send("nudge-a")]},
                    {"name": "b", "weight": 45, "steps": [_wait("wait-2h", hours=2), _send("nudge-b")]},
                    {"name": "control", "weight": 10, "holdout": True},
                ]}]}))
    for i, (tier, who) in enumerate((t, w) for t in _tiers("total", [50, 150]) for w in (  # 6 post-purchase
            {"metric": "orders_count", "op": "lte", "value": 1}, {"metric": "orders_count", "op": "gte", "value": 2})):
        definition: dict[str, Any] = {
            "trigger": {"event": "order_placed", "key": "order_id", "filter": {"all": [tier, who]}},
            "goals": [{"event": "review_submitted", "name": "reviewed"}],
            "steps": [_wait("wait-3d", days=3),
                      {"type": "condition", "id": "big-spender",
                       "condition": {"metric": "total_spent", "op": "gte", "value": 150},
                       "yes": [{"type": "update_contact", "id": "tag-big", "add_tags": ["big-spender"]},
                               _wait("wait-7d", days=7), _send("thanks-big", "win_back")],
                       "no": [_send("thanks", "win_back")]}],
        }
        if i == 4:
            definition["reentry"] = {"every_days": 30}
        elif i == 5:
            definition["reentry"] = "once_ever"
        mix.append((f"Post-purchase {i + 1}", definition))
    browse_filters: list[tuple[dict[str, Any] | None, Any]] = [
        (None, {"every_days": 7}),
        ({"property": "price", "op": "gte", "value": 90}, "once_per_key"),
        ({"property": "category", "op": "eq", "value": "coffee"}, {"every_days": 3}),
        ({"property": "category", "op": "eq", "value": "tea"}, {"every_days": 3}),
        ({"property": "on_sale", "op": "eq", "value": True}, "once_per_key"),
    ]
    for i, (browse_filter, reentry) in enumerate(browse_filters):  # 5 browse abandonment
        trigger: dict[str, Any] = {"event": "product_viewed", "key": "product_id"}
        if browse_filter is not None:
            trigger["filter"] = browse_filter
        mix.append((f"Browse abandonment {i + 1}", {"trigger": trigger, "reentry": reentry, "steps": [
            {"type": "wait_for_event", "id": "carted", "event": "cart_updated", "same_key": False,
             "timeout": {"hours": 4},
             "yes": [{"type": "exit", "id": "added", "reason": "added to the cart"}],
             "no": [_send("browse-reminder", "browse_abandonment")]}]}))
    for i in range(2):  # VIP carts: tag the contact first
        mix.append((f"VIP cart {i + 1}", {
            "trigger": {"event": "cart_updated", "key": "cart_id",
                        "filter": {"all": [VIP, {"property": "total", "op": "gte", "value": 50 * i}]}},
            "goals": ORDER_GOAL,
            "steps": [{"type": "condition", "id": "top-tier",
                       "condition": {"metric": "loyalty_tier", "op": "in", "value": ["star", "guru"]},
                       "yes": [{"type": "update_contact", "id": "tag-vip-cart", "add_tags": ["vip-cart"]},
                               _wait("wait-1h", hours=1), _send("vip-reminder")],
                       "no": [_wait("wait-2h", hours=2), _send("reminder")]}]}))
    mix += [
        ("Welcome", {"trigger": {"event": "signed_up"},
                     "steps": [_wait("wait-welcome", hours=1), _send("welcome", "welcome")]}),
        ("Welcome newsletter", {"trigger": {"event": "signed_up",
                                            "filter": {"attribute": "newsletter", "op": "eq", "value": True}},
                                "steps": [_wait("wait-3d", days=3), _send("story", "welcome_brand_story")]}),
        ("Order confirmation", {"trigger": {"event": "order_placed", "key": "order_id"},  # sends at once, or after 1 h
                                "steps": ([] if send_at_once else [_wait("wait-1h", hours=1)]) + [
                                    {"type": "send", "id": "confirm", "channel": "email",
                                     "template": "order_confirmation", "transactional": True}]}),
        ("Second order nudge", {"trigger": {"event": "order_placed", "key": "order_id",
                                            "filter": {"metric": "orders_count", "op": "eq", "value": 1}},
                                "steps": [_wait("wait-14d", days=14), _send("nudge", "win_back")]}),
        ("Repeat buyer", {"trigger": {"event": "order_placed", "key": "order_id",
                                      "filter": {"metric": "orders_count", "op": "gte", "value": 2}},
                          "steps": [_wait("wait-1d", days=1),
                                    {"type": "update_contact", "id": "mark", "set": {"repeat": True}}]}),
        ("Search abandonment", {"trigger": {"event": "search_performed", "key": "query"}, "steps": [
            {"type": "wait_for_event", "id": "viewed", "event": "product_viewed", "same_key": False,
             "timeout": {"minutes": 30}, "yes": [], "no": [_send("search-reminder", "win_back")]}]}),
        ("Wishlist reminder", {"trigger": {"event": "wishlist_added", "key": "product_id"}, "goals": ORDER_GOAL,
                               "steps": [_wait("wait-2d", days=2), _send("wishlist", "win_back")]}),
        ("Newsletter clickers", {"trigger": {"event": "email_clicked", "key": "campaign"},
                                 "steps": [{"type": "update_contact", "id": "tag", "add_tags": ["engaged"]}]}),
        ("Low rating apology", {"trigger": {"event": "review_submitted", "key": "order_id",
                                            "filter": {"property": "rating", "op": "lte", "value": 2}},
                                "steps": [{"type": "update_contact", "id": "tag-unhappy", "add_tags": ["unhappy"]},
                                          _wait("wait-1h", hours=1), _send("apology", "win_back")]}),
        ("High rating thanks", {"trigger": {"event": "review_submitted", "key": "order_id",
                                            "filter": {"property": "rating", "op": "gte", "value": 4}},
                                "steps": [_wait("wait-1d", days=1), _send("public-review", "win_back")]}),
        ("Loyalty tier reached", {"trigger": {"event": "loyalty_tier_changed", "key": "to",
                                              "filter": {"property": "direction", "op": "eq", "value": "up"}},
                                  "steps": [_wait("wait-1h", hours=1), _send("tier-up", "win_back")]}),
        ("Price drop", {"trigger": {"event": "wishlist_price_drop", "key": "product_id"},
                        "steps": [_wait("wait-10m", minutes=10), _send("price-drop", "win_back")]}),
        ("Back in stock", {"trigger": {"event": "back_in_stock", "key": "product_id"},
                           "steps": [_send("in-stock", "win_back")]}),
        ("Subscription renewed", {"trigger": {"event": "subscription_renewed", "key": "subscription_id"},
                                  "steps": [_wait("wait-1d", days=1), _send("renewed", "win_back")]}),
        ("Refund requested", {"trigger": {"event": "refund_requested", "key": "order_id"},
                              "steps": [{"type": "update_contact", "id": "flag", "set": {"refund_pending": True}}]}),
        ("Coupon redeemed", {"trigger": {"event": "coupon_redeemed", "key": "code"},
                             "steps": [{"type": "update_contact", "id": "tag", "add_tags": ["coupon-user"]}]}),
        ("Referral reward", {"trigger": {"event": "referral_completed", "key": "referral_id"},
                             "steps": [_wait("wait-1h", hours=1), _send("reward", "win_back")]}),
        # entered by the scheduler's time scans, never by an event
        ("Birthday", {"trigger": {"date": "birthday", "at": "10:00"},
                      "steps": [_send("greeting", "birthday_greeting")]}),
        ("Birthday coupon", {"trigger": {"date": "birthday", "offset_days": -3, "at": "09:00"},
                             "steps": [{"type": "update_contact", "id": "set-coupon",
                                        "set": {"birthday_coupon": "B10"}},
                                       _send("coupon", "birthday_greeting")]}),
        ("Signup anniversary", {"trigger": {"date": "attributes.signed_up_on", "at": "10:00"},
                                "steps": [_send("anniversary", "win_back")]}),
        ("Win-back 90", {"trigger": {"inactive_event": "order_placed", "days": 90}, "goals": ORDER_GOAL,
                         "steps": [_send("we-miss-you", "win_back")]}),
        ("Win-back 180", {"trigger": {"inactive_event": "order_placed", "days": 180}, "goals": ORDER_GOAL,
                          "steps": [_send("last-call", "win_back")]}),
        ("Christmas", {"trigger": {"dates": ["12-25"], "name": "Merry Christmas"},
                       "steps": [_send("greeting", "holiday_greeting")]}),
        ("New year", {"trigger": {"dates": ["01-01"], "name": "Happy New Year"},
                      "steps": [_send("greeting", "holiday_greeting")]}),
        ("Broadcast", {"trigger": {"broadcast_at": "2099-01-01T10:00:00Z"},
                       "steps": [_send("news", "win_back")]}),
    ]
    assert len(mix) == JOURNEYS, len(mix)
    return mix


def create_journeys(session: Session, workspace_id: str, mix: list[tuple[str, dict[str, Any]]],
                    *, templates: Templates, now: datetime) -> list[tuple[int, int, JourneyDefinition]]:
    """Create and publish; return (journey id, version id, definition) of each."""
    made = []
    for name, definition in mix:
        journey = create_journey(session, workspace_id, name, definition, templates=templates, now=now)
        assert journey.live_version_id is not None
        made.append((journey.id, journey.live_version_id, parse_definition(definition)))
    return made

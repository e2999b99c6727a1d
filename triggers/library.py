"""The trigger library: every ready recipe by slug, for the API and the UI to list.

Each entry is (name, recipe function, description). A recipe function takes keyword
options only and returns a journey definition that validates with
engine.journeys.definition.parse_definition; its module docstring says in full what starts,
continues and stops the journey.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from triggers import (
    abandoned_cart,
    abandoned_cart_series,
    birthday,
    browse_abandonment,
    holiday,
    loyalty_tier,
    order_status,
    referral_reward,
    review_follow_up,
    review_request,
    support_bot,
    welcome_series,
    win_back,
    wishlist,
)


class Recipe(NamedTuple):
    name: str
    build: Callable[..., dict[str, Any]]
    description: str


RECIPES: dict[str, Recipe] = {
    "abandoned_cart": Recipe(
        abandoned_cart.NAME, abandoned_cart.recipe,
        "One reminder an hour after a cart is left; an order for that cart cancels it."),
    "abandoned_cart_series": Recipe(
        abandoned_cart_series.NAME, abandoned_cart_series.recipe,
        "Reminders 1 h and 24 h after a cart is left, and a third with a discount code; "
        "an order for that cart ends the series."),
    "browse_abandonment": Recipe(
        browse_abandonment.NAME, browse_abandonment.recipe,
        "A product viewed with no cart within a few hours gets an email with that product."),
    "review_request": Recipe(
        review_request.NAME, review_request.recipe,
        "Days after delivery, ask for a rating with links 1 to 5 that record the score."),
    "review_follow_up": Recipe(
        review_follow_up.NAME, review_follow_up.recipe,
        "A low rating gets an apology and alerts the shop; a high one is asked for a public review."),
    "welcome_series": Recipe(
        welcome_series.NAME, welcome_series.recipe,
        "Welcome, brand story after 2 days, first-order nudge after 4 days unless they already ordered."),
    "order_confirmation": Recipe(
        order_status.NAMES["confirmation"], order_status.confirmation_recipe,
        "Transactional: confirms each order placed."),
    "order_shipped": Recipe(
        order_status.NAMES["shipped"], order_status.shipped_recipe,
        "Transactional: tells the customer their order is on its way, with the tracking link."),
    "order_delivered": Recipe(
        order_status.NAMES["delivered"], order_status.delivered_recipe,
        "Transactional: tells the customer their order was delivered."),
    "wishlist_back_in_stock": Recipe(
        wishlist.NAMES["back_in_stock"], wishlist.back_in_stock_recipe,
        "A wished-for product is back in stock."),
    "wishlist_price_drop": Recipe(
        wishlist.NAMES["price_drop"], wishlist.price_drop_recipe,
        "A wished-for product costs less now: old and new price."),
    "loyalty_tier_reached": Recipe(
        loyalty_tier.NAME, loyalty_tier.recipe,
        "Congratulates a customer who moves up to a loyalty tier, once per tier."),
    "referral_reward": Recipe(
        referral_reward.NAME, referral_reward.recipe,
        "Gives a customer their reward code when a friend they referred places a first order."),
    "birthday_greeting": Recipe(
        birthday.NAME, birthday.recipe,
        "On (or days before) the birthday at 10:00 local time, with an optional coupon; once a year."),
    "holiday_greeting": Recipe(
        holiday.NAME, holiday.recipe,
        "A greeting on listed dates at a local time; needs the dates."),
    "win_back": Recipe(
        win_back.NAME, win_back.recipe,
        "No order for 90 days: a we-miss-you email, optionally a second with a discount."),
    "support_bot": Recipe(
        support_bot.NAME, support_bot.recipe,
        "Answers \"status\" on SMS or a messenger with the last order's status, on the channel it came in on; "
        "hands anything else to the shop's support webhook (support_url)."),
}


def get_recipe(slug: str) -> Recipe:
    try:
        return RECIPES[slug]
    except KeyError:
        raise KeyError(f"no recipe {slug!r}; known: {', '.join(sorted(RECIPES))}") from None

"""Wishlist alerts: a wished-for product is back in stock, or its price dropped.

The shop knows who wished for what: it sends one event per interested contact,
`back_in_stock` or `price_dropped`, with properties product_id, name, url and, for a
price drop, old_price and new_price (optionally currency and image_url). Each starts
its journey keyed by the product id, sends the alert at once and ends; a contact is
alerted once per product (a repeat of the same webhook sends nothing). Shops that
alert again on a later restock can key by an id of their own for each alert instead
(`key="alert_id"`).
"""

from __future__ import annotations

from typing import Any

NAME = "Wishlist alerts"
NAMES = {"back_in_stock": "Wishlist: back in stock", "price_drop": "Wishlist: price drop"}
PRODUCT = [{"property": "name", "op": "exists"}, {"property": "url", "op": "exists"}]


def back_in_stock_recipe(*, key: str = "product_id") -> dict[str, Any]:
    return {
        "trigger": {"event": "back_in_stock", "key": key, "filter": {"all": PRODUCT}},
        "steps": [{"type": "send", "id": "back-in-stock", "channel": "email", "template": "wishlist_back_in_stock"}],
    }


def price_drop_recipe(*, key: str = "product_id") -> dict[str, Any]:
    prices = [{"property": "old_price", "op": "exists"}, {"property": "new_price", "op": "exists"}]
    return {
        "trigger": {"event": "price_dropped", "key": key, "filter": {"all": PRODUCT + prices}},
        "steps": [{"type": "send", "id": "price-drop", "channel": "email", "template": "wishlist_price_drop"}],
    }


def recipe(*, alert: str = "back_in_stock", key: str = "product_id") -> dict[str, Any]:
    """One of the two by name: back_in_stock or price_drop."""
    if alert == "back_in_stock":
        return back_in_stock_recipe(key=key)
    if alert == "price_drop":
        return price_drop_recipe(key=key)
    raise ValueError("alert must be back_in_stock or price_drop")

"""The traffic bench/engine.py sends: shoppers who browse, fill carts, check out, order,
open emails and review, in two waves, as stored events."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from engine.clock import utcnow
from engine.contacts.ingest import ingest_events

# --- The traffic ---------------------------------------------------------------------------------

TIMEZONES = ["Europe/London", "Europe/Berlin", "America/New_York", "Asia/Tokyo", None]
PRODUCTS = [(f"p{n}", [8, 15, 25, 40, 60, 90, 150][n % 7]) for n in range(300)]
CATEGORIES = ["coffee", "tea", "brewing", "cups", "gifts"]


def _product(pid: str, price: int) -> dict[str, Any]:
    n = int(pid[1:])
    return {"product_id": pid, "name": f"Product {pid}", "price": price, "currency": "EUR",
            "category": CATEGORIES[n % len(CATEGORIES)], "on_sale": n % 6 == 0,
            "url": f"https://shop.example/products/{pid}"}


def _cart(cart_id: str, rng: random.Random) -> dict[str, Any]:
    items = [{"name": f"Product {pid}", "quantity": rng.randint(1, 3), "price": price,
              "url": f"https://shop.example/products/{pid}"} for pid, price in rng.sample(PRODUCTS, rng.randint(1, 3))]
    return {"cart_id": cart_id, "currency": "EUR", "items": items,
            "total": round(sum(i["price"] * i["quantity"] for i in items), 2),
            "recovery_url": f"https://shop.example/cart/{cart_id}/recover"}


class Shoppers:
    """Contacts that browse, cart, check out, buy and review, in two waves."""

    def __init__(self, prefix: str, contacts: int, seed: int):
        self.prefix, self.contacts, self.rng = prefix, contacts, random.Random(seed)
        self.carts: dict[int, dict[str, Any]] = {}  # open (unbought) cart per contact
        self.orders: dict[int, list[str]] = {}
        self.viewed: set[int] = set()
        self.totals: Counter[str] = Counter()  # orders and money sent, to check the metrics against
        self.serial = 0

    def _event(self, n: int, type_: str, at: datetime, properties: dict[str, Any],
               first: bool = False) -> dict[str, Any]:
        ext = f"{self.prefix}{n}"
        contact: dict[str, Any] = {"external_id": ext}
        if first:
            rng = self.rng
            contact.update(email=f"{ext}@example.com", first_name="Ada", last_name="Lovelace",
                           attributes={"vip": rng.random() < 0.1, "newsletter": rng.random() < 0.5},
                           consent={"email": "opted_in"} if rng.random() < 0.2 else {})
            zone = rng.choice(TIMEZONES)
            if zone:
                contact["timezone"] = zone
        self.serial += 1
        return {"id": f"{self.prefix}-e{self.serial}", "type": type_, "occurred_at": at.isoformat(),
                "contact": contact, "properties": properties}

    def _order(self, n: int, cart: dict[str, Any], at: datetime) -> dict[str, Any]:
        order_id = f"{self.prefix}{n}-o{len(self.orders.get(n, [])) + 1}"
        self.orders.setdefault(n, []).append(order_id)
        self.totals["orders"] += 1
        self.totals["cents"] += round(cart["total"] * 100)
        return self._event(n, "order_placed", at, {"order_id": order_id, "cart_id": cart["cart_id"],
                                                   "total": cart["total"], "currency": "EUR",
                                                   "items": cart["items"]})

    def wave(self, number: int, start: datetime, spread: timedelta) -> list[dict[str, Any]]:
        """One wave of everyone's sessions, interleaved in time; sorted by when they happened."""
        rng, out = self.rng, []
        for n in range(self.contacts):
            if number > 1 and rng.random() < 0.3:
                continue  # not back in the second wave
            at = start + spread * rng.random()

            def tick(at_: datetime) -> datetime:
                return at_ + timedelta(seconds=rng.randint(20, 120))

            first = number == 1
            if first or rng.random() < 0.4:
                for _ in range(rng.randint(1, 3)):
                    pid, price = rng.choice(PRODUCTS)
                    out.append(self._event(n, "product_viewed", at, _product(pid, price), first))
                    self.viewed.add(n)
                    first, at = False, tick(at)
            if rng.random() < 0.6:
                out.append(self._event(n, "page_viewed", at, {"url": "/collections/all"}, first))
                first, at = False, tick(at)
            if rng.random() < 0.1:
                out.append(self._event(n, "search_performed", at, {"query": rng.choice(CATEGORIES)}, first))
                first, at = False, tick(at)
            if rng.random() < 0.05:
                pid, price = rng.choice(PRODUCTS)
                out.append(self._event(n, "wishlist_added", at, _product(pid, price), first))
                first, at = False, tick(at)
            if number == 1:
                if rng.random() < 0.05:
                    out.append(self._event(n, "signed_up", at, {}))
                    at = tick(at)
                if rng.random() < 0.6:
                    cart = self.carts[n] = _cart(f"{self.prefix}{n}-c1", rng)
                    out.append(self._event(n, "cart_updated", at, cart))
                    at = tick(at)
                    if rng.random() < 0.35:
                        out.append(self._event(n, "checkout_started", at, cart))
                        at = tick(at)
                    if rng.random() < 0.1:  # bought at once: the goal ends the runs just started
                        out.append(self._order(n, self.carts.pop(n), at))
                        at = tick(at)
            else:
                cart = self.carts.get(n)
                roll = rng.random()
                if cart is not None and roll < 0.3:
                    out.append(self._order(n, self.carts.pop(n), at))
                elif cart is not None and roll < 0.5:  # the same cart, changed: refreshes its runs
                    cart = self.carts[n] = {**_cart(cart["cart_id"], rng)}
                    out.append(self._event(n, "cart_updated", at, cart))
                elif cart is not None and roll < 0.6:
                    out.append(self._event(n, "checkout_started", at, cart))
                elif cart is None and n in self.viewed and roll < 0.3:  # wakes browse runs waiting for a cart
                    cart = self.carts[n] = _cart(f"{self.prefix}{n}-c2", rng)
                    out.append(self._event(n, "cart_updated", at, cart))
                at = tick(at)
                for order_id in self.orders.get(n, []):
                    if rng.random() < 0.3:
                        out.append(self._event(n, "review_submitted", at, {"order_id": order_id,
                                                                           "rating": rng.randint(1, 5)}))
                        at = tick(at)
            if rng.random() < 0.2:
                out.append(self._event(n, "email_opened", at, {"campaign": "newsletter"}, first))
                first, at = False, tick(at)
                if rng.random() < 0.3:
                    out.append(self._event(n, "email_clicked", at, {"campaign": "newsletter"}))
        out.sort(key=lambda e: e["occurred_at"])
        return out


def ingest(sessions: sessionmaker[Session], workspace_id: str, payloads: list[dict[str, Any]]) -> list[int]:
    """Store events as the API does (no job sink: nothing is queued); return their ids in order."""
    ids: list[int] = []
    for start in range(0, len(payloads), 1000):
        with sessions.begin() as session:
            results = ingest_events(session, workspace_id, payloads[start:start + 1000], now=utcnow())
        bad = [r for r in results if r.status != "accepted"]
        if bad:
            raise RuntimeError(f"ingest refused events: {bad[:3]}")
        ids += [r.id for r in results if r.id is not None]
    return ids

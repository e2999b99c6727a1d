"""The Jinja environments every template renders in, and the filters marketers may use.

Templates run in Jinja's sandbox with StrictUndefined: a template that reaches for Python
internals, or names a variable it was not given, fails with a clear error instead of
exposing the process or sending a blank. HTML (email bodies) is escaped; text (subjects,
text bodies, SMS and messengers) is not. Both kinds of template (emails.py, texts.py)
compile in these two environments, so a filter added here is there for all of them.

A template's version is a digest of its files (`version_of`): the same text is the same
version wherever it is stored, and an edit is a new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "RUB": "₽", "INR": "₹"}


def format_money(amount: Any, currency: str | None = None) -> str:
    """12.5, "EUR" -> "€12.50"; unknown currencies keep their code: "12.50 CHF"."""
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return str(amount)
    if not currency:
        return f"{value:,}"
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    return f"{symbol}{value:,}" if symbol else f"{value:,} {currency.upper()}"


def line_total(price: Any, quantity: Any = 1) -> Any:
    """price × quantity, exact (a Decimal, for `money`); the price as given when either is not a number."""
    try:
        return Decimal(str(price)) * Decimal(str(quantity))
    except (InvalidOperation, ValueError):
        return price


def item_price(item: Any, currency: str | None = None) -> str:
    """A line item's price as a reader expects it: "€24.00" for one, "2 × €12.50 = €25.00" for several
    (the unit price alone beside a quantity reads as the line's price)."""
    if not isinstance(item, dict) or item.get("price") is None:
        return ""
    quantity = item.get("quantity", 1)
    unit = format_money(item["price"], currency)
    try:
        single = Decimal(str(quantity)) == 1
    except (InvalidOperation, ValueError):
        single = False
    if single:
        return unit
    return f"{quantity} × {unit} = {format_money(line_total(item['price'], quantity), currency)}"


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=autoescape, keep_trailing_newline=False
    )
    env.filters["money"] = format_money
    env.filters["line_total"] = line_total
    env.filters["item_price"] = item_price
    return env


HTML_ENV = _environment(autoescape=True)
TEXT_ENV = _environment(autoescape=False)


def version_of(files: Mapping[str, str]) -> str:
    """12 hex digits of a SHA-256 over the files' names and contents (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()[:12]

"""Render message templates: MJML compiled once per template version, Jinja per recipient.

An email template is a folder `templates/email/<name>/` holding `subject.txt`,
`body.mjml` and `body.txt`. Its version is a digest of those files, stored on each
message, so what a contact was sent can always be traced to the exact template.

Templates run in Jinja's sandbox with StrictUndefined: a template that names a
variable it was not given fails with a clear error instead of sending a blank.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import mjml
from jinja2.sandbox import SandboxedEnvironment

from engine.errors import TemplateError

EMAIL_DIR = Path(__file__).parent / "email"
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


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class EmailTemplate:
    name: str
    version: str
    subject: jinja2.Template
    html: jinja2.Template
    text: jinja2.Template

    def render(self, context: dict[str, Any]) -> RenderedEmail:
        parts = {}
        for part in ("subject", "html", "text"):
            try:
                parts[part] = getattr(self, part).render(context)
            except jinja2.UndefinedError as exc:
                raise TemplateError(f"template {self.name!r} ({part}): {exc.message}") from None
            except jinja2.TemplateError as exc:
                raise TemplateError(f"template {self.name!r} ({part}): {exc}") from None
        subject = " ".join(parts["subject"].split())  # headers are one line
        return RenderedEmail(subject=subject, html=parts["html"], text=parts["text"].strip() + "\n")


@lru_cache(maxsize=1024)  # asked for every send's candidate channels; templates change only with a deploy
def template_exists(name: str, channel: str = "email") -> bool:
    if channel != "email":
        from templates.texts import text_template_exists  # texts imports this module

        return text_template_exists(channel, name)
    return (EMAIL_DIR / name / "body.mjml").is_file()


def load_email_template(name: str, directory: Path = EMAIL_DIR) -> EmailTemplate:
    folder = directory / name
    try:
        sources = {f: (folder / f).read_text() for f in ("subject.txt", "body.mjml", "body.txt")}
    except FileNotFoundError as exc:
        raise TemplateError(f"template {name!r} is missing {Path(exc.filename).name}") from None
    digest = hashlib.sha256()
    for key in sorted(sources):
        digest.update(key.encode() + b"\0" + sources[key].encode() + b"\0")
    return _compile(name, digest.hexdigest()[:12], sources["subject.txt"],
                    sources["body.mjml"], sources["body.txt"])


@lru_cache(maxsize=256)
def _compile(name: str, version: str, subject: str, body_mjml: str, body_text: str) -> EmailTemplate:
    """Compile one template version. Cached: MJML is compiled once per version."""
    try:
        html_source = mjml.mjml2html(body_mjml)
    except Exception as exc:  # mrml raises its own error types
        raise TemplateError(f"template {name!r} (body.mjml): MJML does not compile: {exc}") from None
    try:
        return EmailTemplate(
            name=name,
            version=version,
            subject=TEXT_ENV.from_string(subject),
            html=HTML_ENV.from_string(html_source),
            text=TEXT_ENV.from_string(body_text),
        )
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {name!r}: line {exc.lineno}: {exc.message}") from None


@lru_cache(maxsize=256)
def email_template(name: str) -> EmailTemplate:
    """The deployed template `name`, loaded once per process."""
    return load_email_template(name)

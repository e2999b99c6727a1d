"""HTML pages: the home page and, in embedded mode, the outbox of the built-in SMTP sink.

The outbox shows previews of our own: tracking is taken out before anything is shown
(engine.delivery.previews), so looking at a message never counts as its recipient opening or
clicking it. The page fetches only the cards newer than the newest it shows, every five
seconds, and puts them on top: what a reader opened or closed stays as they left it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, render_template, request
from sqlalchemy import select

from engine.channels import Channel
from engine.delivery.previews import html_without_tracking, meta_without_tracking, text_without_tracking
from engine.store.models import OutboxCapture, Workspace
from webapp import context

bp = Blueprint("pages", __name__)

PAGE_SIZE = 100
TITLE_CHARS = 60
CHANNEL_NAMES: dict[Channel, str] = {"email": "Email", "sms": "SMS", "telegram": "Telegram", "whatsapp": "WhatsApp",
                                     "viber": "Viber"}


@dataclass(frozen=True)
class Card:
    """One captured message as the outbox shows it, tracking taken out."""

    id: int
    title: str
    channel: str
    to: str
    received_at: datetime
    workspace: str
    message_id: int | None
    html: str | None
    text: str | None
    buttons: list[dict[str, Any]]


@bp.get("/")
def home() -> Any:
    return render_template("home.html", settings=context.settings())


@bp.get("/outbox")
def outbox() -> Any:
    """Everything the local sink received. Only in embedded mode: it shows every workspace."""
    cards = _cards(after=0)
    return render_template("outbox.html", cards=cards, latest=max((c.id for c in cards), default=0))


@bp.get("/outbox/new")
def outbox_new() -> Any:
    """The cards received after `?after=<id>`, newest first, as an HTML fragment for the outbox page."""
    cards = _cards(after=request.args.get("after", 0, type=int) or 0)
    response = render_template("outbox_cards.html", cards=cards)
    latest = max((c.id for c in cards), default=None)
    return response, 200, ({"X-Outbox-Latest": str(latest)} if latest is not None else {})


def _cards(*, after: int) -> list[Card]:
    if not context.settings().outbox_page:
        abort(404)
    secret = context.settings().secret_key
    with context.sessions()() as session:
        names = dict(session.execute(select(Workspace.id, Workspace.name)).all())
        captures = session.scalars(select(OutboxCapture).where(OutboxCapture.id > after)
                                   .order_by(OutboxCapture.id.desc()).limit(PAGE_SIZE))
        return [_card(c, names, secret) for c in captures]


def _card(capture: OutboxCapture, names: dict[str, str], secret: str) -> Card:
    meta = meta_without_tracking(capture.meta or {}, secret)
    buttons = [b for b in meta.get("buttons", []) if isinstance(b, dict)] if isinstance(meta, dict) else []
    text = text_without_tracking(capture.text, secret) if capture.text else capture.text
    return Card(
        id=capture.id, title=title_of(capture.channel, capture.subject, text, capture.to_address),
        channel=capture.channel, to=capture.to_address, received_at=capture.received_at,
        workspace=names.get(capture.workspace_id or "", capture.workspace_id or "unknown"),
        message_id=capture.message_id,
        html=html_without_tracking(capture.html, secret) if capture.html else None,
        text=text, buttons=buttons,
    )


def title_of(channel: str, subject: str | None, text: str | None, to: str) -> str:
    """An email's subject; for a text message, which has none, its channel and first words."""
    if subject:
        return subject
    name = CHANNEL_NAMES.get(channel, channel)
    words = " ".join((text or "").split())
    if not words:
        return f"{name} to {to}"
    if len(words) > TITLE_CHARS:
        words = words[:TITLE_CHARS].rsplit(" ", 1)[0].rstrip(" ,.;:!?") + "…"
    return f"{name}: {words}"

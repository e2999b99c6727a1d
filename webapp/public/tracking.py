"""Open pixel (`/t/o/<token>.gif`) and click redirect (`/t/c/<token>`), from signed links
(engine.links.tokens). What they record goes through the receipts service, like a provider's
receipt: it moves the message forward (opened, clicked), de-duplicates (one open per
message, one click per link) and records `message_opened` / `message_clicked` events.

The pixel is always a GIF, even for a bad token: an image that fails to load shows as
a broken image in the email. A click with a bad token is a 400 page and no redirect,
so the redirect can never send anyone to a URL we did not sign (no open redirect).
HEAD requests (link checkers, previews) get the same answer but record nothing.
"""

from __future__ import annotations

import base64
import hashlib

from flask import Blueprint, make_response, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from engine.delivery.ports import DeliveryEvent
from engine.links.tokens import MessageRef, verify_click, verify_open
from engine.store.models import Message
from engine.tracking.receipts import apply_deliveries
from webapp import context
from webapp.public.preferences import private_page

bp = Blueprint("tracking", __name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1x1, transparent


def _record(workspace_id: str, message_id: int, status: str, receipt_key: str, detail: str = "") -> None:
    """Hand the open or click to the receipts service; a message of another workspace records nothing."""
    now = context.now()
    with context.sessions().begin() as session:
        channel = session.scalar(select(Message.channel).where(Message.id == message_id,
                                                               Message.workspace_id == workspace_id))
        if channel is None:  # erased, or a token naming another workspace's message
            return
        event = DeliveryEvent(channel=channel, status=status, receipt_key=receipt_key,  # type: ignore[arg-type]
                              occurred_at=now, message_id=message_id, detail=detail[:500])
        apply_deliveries(session, workspace_id, [event], now=now)


@bp.get("/t/o/<token>.gif")
def open_pixel(token: str) -> Response:
    ref: MessageRef | None = verify_open(context.settings().secret_key, token)
    if ref is not None and request.method != "HEAD":
        _record(ref.workspace_id, ref.message_id, "opened", f"open:{ref.message_id}")
    response = make_response(PIXEL, 200)
    response.headers["Content-Type"] = "image/gif"
    response.headers["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0"
    response.headers["Pragma"] = "no-cache"
    response.headers["Expires"] = "0"
    return response


@bp.get("/t/c/<token>")
def click(token: str) -> Response:
    ref = verify_click(context.settings().secret_key, token)
    if ref is None:
        return private_page("unsubscribe.html", 400, state="invalid")
    if request.method != "HEAD":
        digest = hashlib.sha256(ref.url.encode()).hexdigest()[:16]
        _record(ref.workspace_id, ref.message_id, "clicked", f"click:{ref.message_id}:{digest}", ref.url)
    # Not flask.redirect: the URL goes out exactly as it was signed, query string and all.
    response = Response(status=302)
    response.headers["Location"] = ref.url
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the shop must not see our token
    return response

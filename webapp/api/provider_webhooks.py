"""Providers' webhooks: POST /api/v1/providers/<sms|telegram|whatsapp|viber>/<workspace>.

Each provider posts delivery receipts and contacts' messages here; the channel's
adapter (workers/channels) verifies the provider's signature and reads the payload,
and engine.tracking.inbound applies it in one transaction. Answers:
- 200 when the webhook was applied, or was a repeat (nothing changes the second time).
  Twilio gets an empty TwiML document (`<Response/>`, text/xml: "send no reply"; the
  generic SMS gateway ignores the body);
  Telegram, WhatsApp and Viber get JSON (the adapter's reply, if it asks for one);
- 403 for a missing or wrong signature, 400 for a body the adapter cannot read,
  404 for an unknown workspace or a channel with no adapter configured;
- 500 when applying it failed: nothing was stored, and the provider retries later.
GET /api/v1/providers/whatsapp/<workspace> answers Meta's subscription handshake.

Twilio signs the URL it posted to. Behind a proxy `request.url` is the proxy's view
(http, an inner host), so the URL is rebuilt from settings.base_url (BASE_URL, the
public origin under which /api/v1 is served) + the path + the query string.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from engine.delivery.ports import WebhookReader
from engine.errors import AuthError, FieldErrors, NotFound
from engine.tracking import inbound
from webapp import context
from webapp.api.errors import error
from workers.channels import build_readers, verify_subscription

bp = Blueprint("provider_webhooks", __name__, url_prefix="/api/v1/providers")
log = logging.getLogger(__name__)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _reader(channel: str) -> WebhookReader | None:
    """The channel's adapter, built once per app from the process settings."""
    parts = current_app.extensions["rapport"]
    if "webhook_readers" not in parts:
        parts["webhook_readers"] = build_readers(context.settings())
    if channel not in inbound.INBOUND_CHANNELS:
        return None
    readers: dict[str, WebhookReader] = parts["webhook_readers"]
    return readers.get(channel)


def public_url() -> str:
    """The URL the provider posted to, as it saw it (what Twilio's signature covers)."""
    query = request.query_string.decode("latin-1")
    return context.settings().base_url + request.path + (f"?{query}" if query else "")


@bp.post("/<channel>/<workspace_id>")
def receive_webhook(channel: str, workspace_id: str) -> Any:
    reader = _reader(channel)
    if reader is None:
        return error(404, "not_found", f"no {channel} webhook is configured here")
    body = request.get_data(cache=False)
    if request.mimetype == "application/x-www-form-urlencoded" and b"%00" in body:  # JSON: the strict reader
        return error(400, "malformed_webhook", f"the {channel} payload holds a NUL character, which cannot be stored")
    try:
        with context.sessions().begin() as session:
            inbound.ensure_workspace(session, workspace_id)
            try:
                batch = reader.read_webhook(url=public_url(), headers=dict(request.headers.items()), body=body)
            except (FieldErrors, ValueError) as exc:  # the adapters' word for "not our format"
                raise _Malformed(str(exc) or type(exc).__name__) from exc
            inbound.receive(session, workspace_id, batch, now=context.now(),
                            link_secret=context.settings().secret_key)
    except NotFound:
        return error(404, "not_found", "no such webhook endpoint")
    except AuthError as exc:
        return error(403, "forbidden", str(exc))
    except _Malformed as exc:
        return error(400, "malformed_webhook", f"the {channel} payload cannot be read: {exc}")
    except Exception:
        # Nothing was committed; a non-2xx answer makes the provider deliver it again.
        log.exception("applying a %s webhook for %s failed", channel, workspace_id)
        return error(500, "internal_error", "the webhook could not be applied; retry later")
    if channel == "sms":
        return Response(EMPTY_TWIML, status=200, mimetype="text/xml")
    return jsonify(batch.reply if batch.reply is not None else {"ok": True}), 200


@bp.get("/whatsapp/<workspace_id>")
def verify_whatsapp(workspace_id: str) -> Any:
    """Meta's handshake: echo hub.challenge when hub.verify_token is ours, else 403."""
    with context.sessions()() as session:
        try:
            inbound.ensure_workspace(session, workspace_id)
        except NotFound:
            return error(404, "not_found", "no such webhook endpoint")
    verify_token = context.settings().providers.whatsapp_verify_token
    challenge = verify_subscription(request.args, verify_token) if verify_token else None
    if challenge is None:
        return error(403, "forbidden", "hub.verify_token does not match")
    return Response(challenge, status=200, mimetype="text/plain")


class _Malformed(Exception):
    pass

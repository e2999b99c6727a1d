"""WhatsApp Cloud API: text or approved template messages; status and message webhooks.

Send: POST {api}/v21.0/{phone-number-id}/messages with `Authorization: Bearer <token>`.
Free text (`type: text`) only reaches a user inside the 24-hour window after their last
message; outside it Meta answers 131047 and only a template may go (`type: template`,
OutgoingMessage.template). One link button goes as an interactive call-to-action URL
message; more than one cannot, so their links go under the text.

Webhooks are signed `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`;
`entry[].changes[].value` holds `statuses[]` (receipts) and `messages[]` (what users
wrote). Subscribing the webhook is a GET handshake: see `verify_subscription`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

import requests

from engine.delivery.ports import DeliveryEvent, DeliveryStatus, InboundMessage, OutgoingMessage, Receipt, WebhookBatch
from engine.errors import AuthError, PermanentSendError, TransientSendError
from workers.channels.http import (
    ProviderHttp,
    from_epoch,
    header,
    json_body,
    parse_json_body,
    raise_for_transport,
    retry_after,
    same_secret,
    text_with_links,
)

GRAPH_VERSION = "v21.0"
RATE_LIMIT_CODES = frozenset({4, 80007, 130429, 131056})  # app, account, throughput, per-user pair limits
TEMPORARY_CODES = frozenset({1, 2, 131000, 131016, 133004})  # unknown / service unavailable: try again
DEAD_RECIPIENT_CODES = frozenset({131026})  # not on WhatsApp, or cannot receive business messages
OUTSIDE_WINDOW = 131047  # re-engagement: more than 24 hours since the user last wrote
STATUSES: dict[str, DeliveryStatus] = {"sent": "sent", "delivered": "delivered", "read": "opened", "failed": "failed"}


class WhatsAppCloud:
    channel = "whatsapp"

    def __init__(self, *, token: str, phone_number_id: str, app_secret: str = "",
                 api_url: str = "https://graph.facebook.com", timeout: float = 15.0):
        self.token = token
        self.messages_url = f"{api_url.rstrip('/')}/{GRAPH_VERSION}/{phone_number_id}/messages"
        self.app_secret = app_secret
        self.http = ProviderHttp("whatsapp", timeout=timeout)

    def send(self, message: OutgoingMessage, *, on_handover: Callable[[], None] | None = None) -> Receipt:
        response = self.http.request("POST", self.messages_url, message=message, on_handover=on_handover,
                                     json=build_payload(message),
                                     headers={"Authorization": f"Bearer {self.token}"})
        body = json_body(response)
        messages = body.get("messages")
        if response.status_code == 200 and isinstance(messages, list) and messages and messages[0].get("id"):
            return Receipt(provider_id=str(messages[0]["id"]))
        raise _send_error(response, body)

    def read_webhook(self, *, url: str, headers: Mapping[str, str], body: bytes) -> WebhookBatch:
        expected = "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()
        if not self.app_secret or not same_secret(header(headers, "X-Hub-Signature-256"), expected):
            raise AuthError("bad or missing X-Hub-Signature-256")
        payload = parse_json_body(body)
        batch = WebhookBatch()
        for value in _values(payload):
            names = {c.get("wa_id"): (c.get("profile") or {}).get("name") for c in value.get("contacts") or []}
            for status in value.get("statuses") or []:
                event = _delivery(status)
                if event is not None:
                    batch.deliveries.append(event)
            for item in value.get("messages") or []:
                text = _message_text(item)
                if text is not None and item.get("id"):
                    batch.inbound.append(InboundMessage(
                        channel="whatsapp", sender=str(item.get("from")), text=text, receipt_key=str(item["id"]),
                        occurred_at=from_epoch(item.get("timestamp")), sender_name=names.get(item.get("from"))))
        return batch

    def close(self) -> None:
        self.http.close()


def verify_subscription(params: Mapping[str, str], verify_token: str) -> str | None:
    """Meta's GET handshake: echo `hub.challenge` when mode and verify token match, else None (answer 403)."""
    if params.get("hub.mode") != "subscribe" or not same_secret(params.get("hub.verify_token", ""), verify_token):
        return None
    return params.get("hub.challenge", "")


def build_payload(message: OutgoingMessage) -> dict[str, Any]:
    base: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                            "to": message.to.removeprefix("+")}
    if message.template is not None:
        template: dict[str, Any] = {"name": message.template.name, "language": {"code": message.template.language}}
        if message.template.parameters:
            template["components"] = [{"type": "body", "parameters": [
                {"type": "text", "text": p} for p in message.template.parameters]}]
        return {**base, "type": "template", "template": template}
    if len(message.buttons) == 1:
        button = message.buttons[0]
        return {**base, "type": "interactive", "interactive": {
            "type": "cta_url", "body": {"text": message.text},
            "action": {"name": "cta_url", "parameters": {"display_text": button.text, "url": button.url}}}}
    text = text_with_links(message.text, message.buttons)
    return {**base, "type": "text", "text": {"body": text, "preview_url": bool(message.buttons)}}


def _send_error(response: requests.Response, body: dict[str, Any]) -> Exception:
    error: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    code = error.get("code")
    detail = f"whatsapp {code}: {error.get('message', '')}".strip() if code is not None else ""
    if code in RATE_LIMIT_CODES:
        return TransientSendError(detail, retry_after=retry_after(response))
    if code in TEMPORARY_CODES:
        return TransientSendError(detail)
    raise_for_transport("whatsapp", response, detail)
    if code in DEAD_RECIPIENT_CODES:
        return PermanentSendError(detail, address_dead=True)
    if code == OUTSIDE_WINDOW:
        return PermanentSendError(f"{detail} (outside the 24-hour window: send a template)")
    return PermanentSendError(detail or f"whatsapp: HTTP {response.status_code}")


def _values(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict):
        return []
    values = []
    for entry in payload.get("entry") or []:
        for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
            if isinstance(change, dict) and isinstance(change.get("value"), dict):
                values.append(change["value"])
    return values


def _delivery(status: dict[str, Any]) -> DeliveryEvent | None:
    mapped = STATUSES.get(str(status.get("status")))
    if mapped is None or not status.get("id"):
        return None
    errors = status.get("errors") or []
    codes = {e.get("code") for e in errors if isinstance(e, dict)}
    detail = "; ".join(f"{e.get('code')}: {e.get('title') or e.get('message')}" for e in errors if isinstance(e, dict))
    return DeliveryEvent(
        channel="whatsapp", status=mapped, receipt_key=f"{status['id']}:{status['status']}",
        occurred_at=from_epoch(status.get("timestamp")), provider_id=str(status["id"]), detail=detail,
        address_dead=mapped == "failed" and bool(codes & DEAD_RECIPIENT_CODES),
        address=str(status["recipient_id"]) if status.get("recipient_id") else None)


def _message_text(item: dict[str, Any]) -> str | None:
    """The words of a user's message: typed text, or the label of a button they tapped."""
    kind = item.get("type")
    if kind == "text":
        return (item.get("text") or {}).get("body")
    if kind == "button":
        return (item.get("button") or {}).get("text")
    if kind == "interactive":
        reply = (item.get("interactive") or {})
        return (reply.get("button_reply") or reply.get("list_reply") or {}).get("title")
    return None

"""A generic HTTP SMS gateway, configured by a URL template instead of code.

Settings:
- SMS_GATEWAY_URL: where to send, e.g. `https://gw.example/send?to={to}&text={text}&from={sender}`.
  `{to}`, `{text}` and `{sender}` are replaced by the URL-encoded values.
- SMS_GATEWAY_METHOD: GET (default) or POST. A POST to a URL *with* placeholders sends
  the values in the URL and no body; a POST to a URL *without* placeholders sends the
  JSON body `{"to": ..., "text": ..., "sender": ...}`.
- SMS_GATEWAY_TOKEN: when set, sent as `Authorization: Bearer <token>`.
- SMS_GATEWAY_ID_PATH: the dotted path of the gateway's message id in its JSON answer
  (`id`, `data.message_id`, `messages.0.id`).

Answers: 2xx → sent; 429 and 5xx → retry; any other 4xx → the gateway refuses it.

Receipts (optional): the gateway POSTs JSON to our provider webhook route with header
`X-Gateway-Secret: <SMS_GATEWAY_WEBHOOK_SECRET>`; the body is one object or a list of:
`{"id": "<gateway id>", "status": "sent|delivered|failed", "timestamp": <unix seconds>,
"to": "+4917...", "error": "...", "dead": false}` for receipts, or
`{"id": "...", "from": "+4917...", "text": "STOP", "timestamp": ...}` for replies.
Without a configured secret every receipt is refused (AuthError).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from string import Formatter
from typing import Any
from urllib.parse import quote

from engine.delivery.ports import DeliveryEvent, DeliveryStatus, InboundMessage, OutgoingMessage, Receipt, WebhookBatch
from engine.delivery.sms_segments import sms_segments
from engine.errors import AuthError, FieldErrors, PermanentSendError
from workers.channels.http import (
    ProviderHttp,
    from_epoch,
    header,
    json_body,
    parse_json_body,
    raise_for_transport,
    same_secret,
    text_with_links,
)

PLACEHOLDERS = frozenset({"to", "text", "sender"})
RECEIPT_STATUSES: dict[str, DeliveryStatus] = {"sent": "sent", "delivered": "delivered", "failed": "failed"}


class HttpSmsGateway:
    channel = "sms"

    def __init__(self, *, url_template: str, method: str = "GET", token: str = "", id_path: str = "id",
                 sender: str = "", webhook_secret: str = "", timeout: float = 15.0):
        fields = {name for _, name, _, _ in Formatter().parse(url_template) if name is not None}
        if fields - PLACEHOLDERS:
            raise ValueError(f"SMS_GATEWAY_URL: unknown placeholders {sorted(fields - PLACEHOLDERS)}; "
                             f"use {{to}}, {{text}} and {{sender}}")
        if method.upper() not in ("GET", "POST"):
            raise ValueError("SMS_GATEWAY_METHOD must be GET or POST")
        self.url_template = url_template
        self.templated = bool(fields)
        self.method = method.upper()
        self.token = token
        self.id_path = [part for part in id_path.split(".") if part]
        self.sender = sender
        self.webhook_secret = webhook_secret
        self.http = ProviderHttp("sms-gateway", timeout=timeout)

    def send(self, message: OutgoingMessage, *, on_handover: Callable[[], None] | None = None) -> Receipt:
        text = text_with_links(message.text, message.buttons)
        values = {"to": message.to, "text": text,
                  "sender": message.sender if message.sender and "@" not in message.sender else self.sender}
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if self.templated:
            url = self.url_template.format_map({k: quote(v, safe="") for k, v in values.items()})
            response = self.http.request(self.method, url, message=message, on_handover=on_handover, headers=headers)
        elif self.method == "POST":
            response = self.http.request("POST", self.url_template, message=message, on_handover=on_handover,
                                         headers=headers, json=values)
        else:
            response = self.http.request("GET", self.url_template, message=message, on_handover=on_handover,
                                         headers=headers, params=values)
        body = json_body(response)
        if 200 <= response.status_code < 300:
            meta: dict[str, Any] = sms_segments(text).as_meta()
            provider_id = _dig(body, self.id_path)
            if provider_id is None:  # sent all the same: never fail a message the gateway took
                meta["warning"] = f"no message id at {'.'.join(self.id_path)} in the gateway's answer"
            return Receipt(provider_id="" if provider_id is None else str(provider_id), meta=meta)
        detail = str(body.get("error") or body.get("message") or response.text[:200]).strip()
        raise_for_transport("sms-gateway", response, detail)
        raise PermanentSendError(f"sms-gateway: HTTP {response.status_code}: {detail}")

    def read_webhook(self, *, url: str, headers: Mapping[str, str], body: bytes) -> WebhookBatch:
        if not same_secret(header(headers, "X-Gateway-Secret"), self.webhook_secret):
            raise AuthError("bad or missing X-Gateway-Secret")
        payload = parse_json_body(body)
        items = payload if isinstance(payload, list) else [payload]
        batch = WebhookBatch()
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("id"):
                raise FieldErrors([{"field": f"[{index}].id", "message": "every receipt needs the gateway's id"}])
            when = from_epoch(item.get("timestamp"))
            if item.get("from") and "text" in item:
                batch.inbound.append(InboundMessage(channel="sms", sender=str(item["from"]), text=str(item["text"]),
                                                    receipt_key=f"gateway:{item['id']}", occurred_at=when))
                continue
            status = RECEIPT_STATUSES.get(str(item.get("status")))
            if status is None:
                continue
            batch.deliveries.append(DeliveryEvent(
                channel="sms", status=status, receipt_key=f"{item['id']}:{status}", occurred_at=when,
                provider_id=str(item["id"]), detail=str(item.get("error") or ""),
                address_dead=status == "failed" and item.get("dead") is True, address=item.get("to")))
        return batch

    def close(self) -> None:
        self.http.close()


def _dig(body: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(body, dict):
            body = body.get(part)
        elif isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        else:
            return None
    return None if isinstance(body, dict | list) else body

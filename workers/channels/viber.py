"""Viber REST bot API: send to subscribed users; callbacks by webhook.

Send: POST {api}/pa/send_message with header `X-Viber-Auth-Token`, JSON {receiver,
min_api_version, sender: {name}, type: "text", text, keyboard}. Viber answers HTTP 200
with `{"status": 0, "status_message": "ok", "message_token": ...}`; any other `status`
is an error (5 receiverNotRegistered, 6 receiverNotSubscribed, 12 tooManyRequests...).

Callbacks are signed `X-Viber-Content-Signature: <hex HMAC-SHA256(auth token, raw body)>`.
Events: delivered, seen (→ opened), failed → receipts; message → an InboundMessage;
unsubscribed → an InboundMessage with the text "/stop", so leaving the bot takes the
same opt-out path as typing /stop (a receipt cannot say it: it names no message);
conversation_started with a `context` (opened from our deep link) → "/start <context>",
which links the contact as Telegram's /start does; subscribed, a conversation started
without context and webhook (Viber's check of the URL) → nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from engine.delivery.ports import DeliveryEvent, DeliveryStatus, InboundMessage, OutgoingMessage, Receipt, WebhookBatch
from engine.errors import AuthError, PermanentSendError, TransientSendError
from workers.channels.http import ProviderHttp, from_epoch, header, json_body, parse_json_body, raise_for_transport

STATUS_NAMES = {
    1: "invalidUrl", 2: "invalidAuthToken", 3: "badData", 4: "missingData", 5: "receiverNotRegistered",
    6: "receiverNotSubscribed", 7: "publicAccountBlocked", 8: "publicAccountNotFound",
    9: "publicAccountSuspended", 10: "webhookNotSet", 11: "receiverNoSuitableDevice", 12: "tooManyRequests",
    13: "apiVersionNotSupported",
}
DEAD_RECEIVER = frozenset({5, 6})  # not a Viber user / left the bot: this id cannot get our messages
RETRYABLE = frozenset({12})
EVENTS: dict[str, DeliveryStatus] = {"delivered": "delivered", "seen": "opened", "failed": "failed"}
# Keyboards with ActionType open-url render from client API version 1; nothing newer is needed.
MIN_API_VERSION = 1


class ViberBot:
    channel = "viber"

    def __init__(self, *, auth_token: str, sender_name: str = "Rapport", api_url: str = "https://chatapi.viber.com",
                 timeout: float = 15.0):
        self.auth_token = auth_token
        self.sender_name = sender_name[:28]  # Viber's limit for the sender name
        self.send_url = f"{api_url.rstrip('/')}/pa/send_message"
        self.http = ProviderHttp("viber", timeout=timeout)

    def send(self, message: OutgoingMessage, *, on_handover: Callable[[], None] | None = None) -> Receipt:
        payload: dict[str, Any] = {"receiver": message.to, "min_api_version": MIN_API_VERSION,
                                   "sender": {"name": self.sender_name}, "type": "text", "text": message.text}
        if message.buttons:
            payload["keyboard"] = {"Type": "keyboard", "DefaultHeight": False, "Buttons": [
                {"Columns": 6, "Rows": 1, "ActionType": "open-url", "ActionBody": b.url, "Text": b.text}
                for b in message.buttons]}
        response = self.http.request("POST", self.send_url, message=message, on_handover=on_handover, json=payload,
                                     headers={"X-Viber-Auth-Token": self.auth_token})
        body = json_body(response)
        raise_for_transport("viber", response, str(body.get("status_message") or ""))
        status = body.get("status")
        if response.status_code == 200 and status == 0 and body.get("message_token") is not None:
            return Receipt(provider_id=str(body["message_token"]))
        name = body.get("status_message") or (STATUS_NAMES.get(status, "error") if isinstance(status, int) else "")
        detail = f"viber {status}: {name}" if status is not None else f"viber: HTTP {response.status_code}"
        if status in RETRYABLE:
            raise TransientSendError(detail)
        raise PermanentSendError(detail, address_dead=status in DEAD_RECEIVER)

    def read_webhook(self, *, url: str, headers: Mapping[str, str], body: bytes) -> WebhookBatch:
        expected = hmac.new(self.auth_token.encode(), body, hashlib.sha256).hexdigest()
        given = header(headers, "X-Viber-Content-Signature").lower()
        if not self.auth_token or not hmac.compare_digest(given.encode(), expected.encode()):
            raise AuthError("bad or missing X-Viber-Content-Signature")
        event = parse_json_body(body)
        if not isinstance(event, dict):
            return WebhookBatch()
        kind = str(event.get("event"))
        token = event.get("message_token")
        key = f"{kind}:{token}:{event.get('timestamp')}"
        when = from_epoch(event.get("timestamp"), millis=True)  # Viber counts milliseconds
        if kind in EVENTS and token is not None:
            return WebhookBatch(deliveries=[DeliveryEvent(
                channel="viber", status=EVENTS[kind], receipt_key=key, occurred_at=when, provider_id=str(token),
                detail=str(event.get("desc") or ""), address=event.get("user_id"))])
        if kind == "message":
            sender = event.get("sender") or {}
            text = (event.get("message") or {}).get("text")
            if isinstance(text, str) and sender.get("id"):
                return WebhookBatch(inbound=[InboundMessage(
                    channel="viber", sender=str(sender["id"]), text=text, receipt_key=key, occurred_at=when,
                    sender_name=sender.get("name"))])
        user = event.get("user") or {}
        if kind == "conversation_started" and event.get("context") and user.get("id"):
            # Opened from our deep link (viber://pa?chatURI=…&context=<token>): link the contact,
            # as Telegram's "/start <token>" does.
            return WebhookBatch(inbound=[InboundMessage(
                channel="viber", sender=str(user["id"]), text=f"/start {event['context']}", receipt_key=key,
                occurred_at=when, sender_name=user.get("name"))])
        if kind == "unsubscribed" and event.get("user_id"):
            return WebhookBatch(inbound=[InboundMessage(
                channel="viber", sender=str(event["user_id"]), text="/stop", receipt_key=key, occurred_at=when)])
        return WebhookBatch()

    def close(self) -> None:
        self.http.close()


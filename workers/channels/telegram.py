"""Telegram Bot API: sendMessage with inline link buttons; updates by webhook.

Send: POST {api}/bot{token}/sendMessage, JSON {chat_id, text, reply_markup}. Answers
are `{"ok": true, "result": Message}` or `{"ok": false, "error_code", "description",
"parameters": {"retry_after"}}`. Telegram has no delivery receipts: "sent" is final.

Webhook: Telegram repeats the secret we registered (setWebhook secret_token) in
`X-Telegram-Bot-Api-Secret-Token`; each POST is one Update. Text messages become
InboundMessages as typed ("/start TOKEN" and "/stop" too: the inbound service reads
commands). A user blocking the bot arrives as a `my_chat_member` update with status
"kicked": we turn it into the text "/stop", so blocking and /stop take one opt-out path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.delivery.ports import InboundMessage, OutgoingMessage, Receipt, WebhookBatch
from engine.errors import AuthError, PermanentSendError, TransientSendError
from workers.channels.http import ProviderHttp, from_epoch, header, json_body, parse_json_body, same_secret

# Descriptions (lower-cased fragments) meaning this chat will never take our messages.
DEAD_CHAT = (
    "bot was blocked by the user",
    "user is deactivated",
    "bot was kicked",
    "chat not found",
    "bot can't initiate conversation",
    "peer_id_invalid",
)


class TelegramBot:
    channel = "telegram"

    def __init__(self, *, bot_token: str, webhook_secret: str = "", api_url: str = "https://api.telegram.org",
                 timeout: float = 15.0):
        self.send_url = f"{api_url.rstrip('/')}/bot{bot_token}/sendMessage"
        self.webhook_secret = webhook_secret
        self.http = ProviderHttp("telegram", timeout=timeout)

    def send(self, message: OutgoingMessage, *, on_handover: Callable[[], None] | None = None) -> Receipt:
        payload: dict[str, Any] = {"chat_id": message.to, "text": message.text}
        if message.buttons:
            # One button per row: link labels are often too long to share a row on a phone.
            payload["reply_markup"] = {"inline_keyboard": [[{"text": b.text, "url": b.url}] for b in message.buttons]}
        response = self.http.request("POST", self.send_url, message=message, on_handover=on_handover, json=payload)
        body = json_body(response)
        if body.get("ok") is True and isinstance(body.get("result"), dict):
            result = body["result"]
            chat_id = (result.get("chat") or {}).get("id", message.to)
            # message_id counts per chat: only the pair names one message.
            return Receipt(provider_id=f"{chat_id}:{result.get('message_id')}")
        raise _send_error(response.status_code, body)

    def read_webhook(self, *, url: str, headers: Mapping[str, str], body: bytes) -> WebhookBatch:
        if not same_secret(header(headers, "X-Telegram-Bot-Api-Secret-Token"), self.webhook_secret):
            raise AuthError("bad or missing X-Telegram-Bot-Api-Secret-Token")
        update = parse_json_body(body)
        if not isinstance(update, dict) or "update_id" not in update:
            return WebhookBatch()
        key = f"update:{update['update_id']}"
        message = update.get("message")
        if isinstance(message, dict) and isinstance(message.get("text"), str):
            chat = message.get("chat") or {}
            sender = message.get("from") or {}
            return WebhookBatch(inbound=[InboundMessage(
                channel="telegram", sender=str(chat.get("id")), text=message["text"], receipt_key=key,
                occurred_at=from_epoch(message.get("date")), sender_name=sender.get("first_name"))])
        member = update.get("my_chat_member")
        if isinstance(member, dict) and (member.get("new_chat_member") or {}).get("status") == "kicked":
            chat = member.get("chat") or {}
            return WebhookBatch(inbound=[InboundMessage(
                channel="telegram", sender=str(chat.get("id")), text="/stop", receipt_key=key,
                occurred_at=from_epoch(member.get("date")), sender_name=(member.get("from") or {}).get("first_name"))])
        return WebhookBatch()  # edits, joins, callbacks: nothing we act on

    def close(self) -> None:
        self.http.close()


def _send_error(status: int, body: dict[str, Any]) -> Exception:
    code = body.get("error_code", status)
    description = str(body.get("description") or f"HTTP {status}")
    detail = f"telegram {code}: {description}"
    if code == 429 or status == 429:
        retry_after = (body.get("parameters") or {}).get("retry_after")
        return TransientSendError(detail, retry_after=float(retry_after) if retry_after is not None else None)
    if status >= 500 or (isinstance(code, int) and code >= 500):
        return TransientSendError(detail)
    if code in (403, 400) and any(fragment in description.lower() for fragment in DEAD_CHAT):
        return PermanentSendError(detail, address_dead=True)
    if status == 200:  # ok but no message: not something a retry can make worse
        return TransientSendError("telegram: answer without a message")
    return PermanentSendError(detail)  # 401/404: bad token; other 400s: the request itself

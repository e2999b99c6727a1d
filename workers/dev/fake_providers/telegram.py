"""Fake Telegram Bot API: /bot{token}/sendMessage and /bot{token}/getMe.

Parameters come as JSON, form or query string, as Telegram takes them. Answers are
`{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description"}` with the
same HTTP status: 401 "Unauthorized" for a wrong token, 404 "Not Found" for an unknown
method, 400 "Bad Request: chat not found" for a chat id that is not a number (or
@channel name), 403 "Forbidden: bot was blocked by the user" for the chat "blocked",
429 with `parameters.retry_after`. Telegram has no delivery receipts.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from workers.dev.fake_providers.answers import json_response, request_fields
from workers.dev.fake_providers.state import Fault

if TYPE_CHECKING:
    from workers.dev.fake_providers.server import FakeProviders

PROVIDER = "telegram"
BLOCKED_CHAT = "blocked"
BLOCKED_USER_CHAT = "403403403"  # a real-looking chat whose user blocked the bot after linking it
UNKNOWN_CHAT = "unknown"
CHAT_ID = re.compile(r"^(-?[0-9]{1,20}|@[A-Za-z0-9_]{5,32})$")
BOT = {"id": 1000000001, "is_bot": True, "first_name": "Rapport Fake Bot", "username": "rapport_fake_bot"}


def rules() -> list[Rule]:
    return [Rule("/bot<token>/<method>", endpoint=call_method, methods=["GET", "POST"])]


def owns(path: str) -> bool:
    return path.startswith("/bot")


def failure(code: int, description: str, **extra: Any) -> Response:
    return json_response({"ok": False, "error_code": code, "description": description, **extra}, status=code)


def not_found(request: Request) -> Response:
    return failure(404, "Not Found")


def fault_answer(fault: Fault) -> Response:
    if fault.kind == "rate_limit":
        seconds = max(1, round(fault.retry_after))
        return failure(429, f"Too Many Requests: retry after {seconds}", parameters={"retry_after": seconds})
    return failure(fault.status, "Internal Server Error")


def call_method(fake: FakeProviders, request: Request, token: str, method: str) -> Response:
    if token != fake.credentials.telegram_bot_token:
        return failure(401, "Unauthorized")
    if method == "getMe":
        return json_response({"ok": True, "result": BOT})
    if method != "sendMessage":
        return failure(404, "Not Found")
    injected = fake.injected(PROVIDER, fault_answer)
    if injected is not None:
        return injected
    fields = request_fields(request)
    chat_id, text = str(fields.get("chat_id") or ""), str(fields.get("text") or "")
    if not chat_id:
        return failure(400, "Bad Request: chat_id is empty")
    if not text.strip():
        return failure(400, "Bad Request: message text is empty")
    if len(text) > 4096:
        return failure(400, "Bad Request: message is too long")
    if chat_id in (BLOCKED_CHAT, BLOCKED_USER_CHAT):
        return failure(403, "Forbidden: bot was blocked by the user")
    if not CHAT_ID.match(chat_id):
        return failure(400, "Bad Request: chat not found")
    markup = fields.get("reply_markup")
    if isinstance(markup, str):  # form-encoded requests send it as serialized JSON
        try:
            markup = json.loads(markup or "null")
        except ValueError:
            return failure(400, "Bad Request: can't parse reply keyboard markup JSON object")
    buttons, problem = _buttons(markup)
    if problem:
        return failure(400, f"Bad Request: {problem}")
    number = fake.state.next_number()
    fake.accept(request, provider=PROVIDER, to=chat_id, text=text, provider_id=f"{chat_id}:{number}",
                meta={"buttons": buttons} if buttons else {})
    chat: dict[str, Any] = {"id": int(chat_id), "type": "private"} if chat_id[0] != "@" else {
        "id": -1000000000000 - number, "type": "channel", "username": chat_id[1:]}
    result = {"message_id": number, "from": BOT, "chat": chat, "date": int(time.time()), "text": text}
    if markup:
        result["reply_markup"] = markup
    return json_response({"ok": True, "result": result})


def _buttons(markup: Any) -> tuple[list[dict[str, str]], str]:
    if markup is None:
        return [], ""
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        return [], "field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays"
    buttons = []
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                return [], "can't parse inline keyboard button: Text must be non-empty"
            if not button.get("url") and not button.get("callback_data"):
                return [], "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
            buttons.append({"text": button["text"], "url": button.get("url", "")})
    return buttons, ""


def inbound_request(fake: FakeProviders, url: str, *, sender: str, text: str,
                    sender_name: str | None = None) -> tuple[bytes, dict[str, str]]:
    number = fake.state.next_number()
    user = {"id": int(sender), "is_bot": False, "first_name": sender_name or "Test", "language_code": "en"}
    update = {"update_id": 100000000 + number, "message": {
        "message_id": number, "from": user, "chat": {"id": int(sender), "first_name": user["first_name"],
                                                     "type": "private"},
        "date": int(time.time()), "text": text}}
    return json.dumps(update).encode(), {"Content-Type": "application/json",
                                         "X-Telegram-Bot-Api-Secret-Token": fake.credentials.telegram_webhook_secret}

"""Fake Viber REST bot API: POST /pa/send_message.

Like Viber, it answers HTTP 200 for API errors and says what went wrong in `status`:
2 invalidAuthToken (wrong X-Viber-Auth-Token), 3 badData (not JSON), 4 missingData
(no receiver, sender name or text), 5 receiverNotRegistered, 6 receiverNotSubscribed,
12 tooManyRequests. The receivers "unregistered==" and "unsubscribed==" play 5 and 6.
A server fault is an HTTP 5xx with an HTML page, as a load balancer sends it.
Receipts ("delivered") are posted to our webhook route, signed X-Viber-Content-Signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from workers.dev.fake_providers.answers import json_response
from workers.dev.fake_providers.state import Fault

if TYPE_CHECKING:
    from workers.dev.fake_providers.server import FakeProviders

PROVIDER = "viber"
NOT_REGISTERED = "unregistered=="
UNSUBSCRIBED = "unsubscribed=="
CHAT_HOSTNAME = "SN-CHAT-01_"


def rules() -> list[Rule]:
    return [Rule("/pa/send_message", endpoint=send_message, methods=["POST"])]


def owns(path: str) -> bool:
    return path.startswith("/pa/")


def status(code: int, message: str, **extra: Any) -> Response:
    return json_response({"status": code, "status_message": message, "chat_hostname": CHAT_HOSTNAME, **extra})


def not_found(request: Request) -> Response:
    return Response("<html><body><h1>404 Not Found</h1></body></html>", status=404, content_type="text/html")


def fault_answer(fault: Fault) -> Response:
    if fault.kind == "rate_limit":
        return status(12, "tooManyRequests")
    return Response("<html><body><h1>Internal Server Error</h1></body></html>", status=fault.status,
                    content_type="text/html")


def send_message(fake: FakeProviders, request: Request) -> Response:
    injected = fake.injected(PROVIDER, fault_answer)
    if injected is not None:
        return injected
    creds = fake.credentials
    if request.headers.get("X-Viber-Auth-Token") != creds.viber_auth_token:
        return status(2, "invalidAuthToken")
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        return status(3, "badData")
    receiver = str(body.get("receiver") or "")
    sender_name = (body.get("sender") or {}).get("name") if isinstance(body.get("sender"), dict) else None
    text = body.get("text")
    if not receiver or not sender_name or body.get("type") != "text" or not isinstance(text, str) or not text:
        return status(4, "missingData")
    if receiver == NOT_REGISTERED:
        return status(5, "receiverNotRegistered")
    if receiver == UNSUBSCRIBED:
        return status(6, "receiverNotSubscribed")
    buttons = [{"text": b.get("Text", ""), "url": b.get("ActionBody", "")}
               for b in ((body.get("keyboard") or {}).get("Buttons") or []) if b.get("ActionType") == "open-url"]
    token = 5000000000000000000 + secrets.randbelow(10**18)
    message = fake.accept(request, provider=PROVIDER, to=receiver, text=text, provider_id=str(token),
                          meta={"sender": sender_name, **({"buttons": buttons} if buttons else {})})
    url = fake.callback_url(PROVIDER, message.workspace_id)
    if url:
        fake.post_later(url, *signed(creds.viber_auth_token, {
            "event": "delivered", "timestamp": int(time.time() * 1000), "chat_hostname": CHAT_HOSTNAME,
            "message_token": token, "user_id": receiver}))
    return status(0, "ok", message_token=token, billing_status=1)


def signed(auth_token: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    signature = hmac.new(auth_token.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Viber-Content-Signature": signature}


def inbound_request(fake: FakeProviders, url: str, *, sender: str, text: str,
                    sender_name: str | None = None) -> tuple[bytes, dict[str, str]]:
    event = {"event": "message", "timestamp": int(time.time() * 1000), "chat_hostname": CHAT_HOSTNAME,
             "message_token": 5000000000000000000 + secrets.randbelow(10**18),
             "sender": {"id": sender, "name": sender_name or "Test", "language": "en", "country": "DE",
                        "api_version": 10},
             "message": {"type": "text", "text": text}, "silent": False}
    return signed(fake.credentials.viber_auth_token, event)

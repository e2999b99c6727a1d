"""A fake generic SMS gateway at /gateway/send, of the kind SMS_GATEWAY_URL describes.

Accepts GET or POST with `to`, `text` and `from` (or `sender`) in the query string, or a
JSON body `{to, text, sender}`; wants `Authorization: Bearer <token>`. Answers 200
`{"id": "...", "status": "accepted", "data": {"message_id": "..."}}` (so both `id` and
`data.message_id` work as SMS_GATEWAY_ID_PATH), 401 `{"error": "invalid token"}`,
400 `{"error": "..."}` for a missing or invalid number, 429 with Retry-After, 500.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from workers.dev.fake_providers.answers import json_response, request_fields
from workers.dev.fake_providers.state import Fault

if TYPE_CHECKING:
    from workers.dev.fake_providers.server import FakeProviders

PROVIDER = "gateway"
NUMBER = re.compile(r"^\+?[1-9][0-9]{6,14}$")
INVALID_NUMBER = "+15005550001"


def rules() -> list[Rule]:
    return [Rule("/gateway/send", endpoint=send, methods=["GET", "POST"])]


def owns(path: str) -> bool:
    return path.startswith("/gateway/")


def not_found(request: Request) -> Response:
    return json_response({"error": "not found"}, status=404)


def fault_answer(fault: Fault) -> Response:
    if fault.kind == "rate_limit":
        return json_response({"error": "rate limited"}, status=429, headers={"Retry-After": f"{fault.retry_after:g}"})
    return json_response({"error": "internal error"}, status=fault.status)


def send(fake: FakeProviders, request: Request) -> Response:
    injected = fake.injected(PROVIDER, fault_answer)
    if injected is not None:
        return injected
    if request.headers.get("Authorization") != f"Bearer {fake.credentials.gateway_token}":
        return json_response({"error": "invalid token"}, status=401)
    fields = request_fields(request)
    to, text = str(fields.get("to") or ""), str(fields.get("text") or "")
    sender = str(fields.get("from") or fields.get("sender") or "")
    if not to:
        return json_response({"error": "to is required"}, status=400)
    if not text:
        return json_response({"error": "text is required"}, status=400)
    if to == INVALID_NUMBER or not NUMBER.match(to):
        return json_response({"error": f"invalid number {to}"}, status=400)
    message_id = "gw-" + secrets.token_hex(8)
    fake.accept(request, provider=PROVIDER, to=to, text=text, provider_id=message_id, meta={"from": sender or None})
    return json_response({"id": message_id, "status": "accepted", "data": {"message_id": message_id}})


def inbound_request(fake: FakeProviders, url: str, *, sender: str, text: str,
                    sender_name: str | None = None) -> tuple[bytes, dict[str, str]]:
    raise NotImplementedError("the generic gateway's replies depend on the gateway; configure Twilio to play them")

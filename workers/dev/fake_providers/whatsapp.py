"""Fake WhatsApp Cloud API: POST /{version}/{phone-number-id}/messages.

Bearer token auth (401, OAuthException code 190 when wrong); an unknown phone number
id is Graph's 400 code 100 subcode 33. Payload errors are `(#100) The parameter X is
required.`. Text, template and interactive cta_url messages are accepted and answered
`{"messaging_product", "contacts": [{input, wa_id}], "messages": [{"id": "wamid..."}]}`.
The recipient 15550000404 is undeliverable (131026); 15550000024 wrote more than 24
hours ago, so free text to it fails with 131047 while templates go. Receipts (sent,
delivered) are posted to our webhook route, signed with X-Hub-Signature-256.
"""

from __future__ import annotations

import base64
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

PROVIDER = "whatsapp"
UNDELIVERABLE = "15550000404"
OUTSIDE_WINDOW = "15550000024"
TYPES = ("text", "template", "interactive")


def rules() -> list[Rule]:
    return [Rule("/<version>/<phone_number_id>/messages", endpoint=send_message, methods=["POST"])]


def owns(path: str) -> bool:
    return path.startswith("/v") and path.count("/") >= 2


def error(message: str, code: int, *, status: int = 400, kind: str = "OAuthException", subcode: int | None = None,
          details: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        body["error_subcode"] = subcode
    if details is not None:
        body["error_data"] = {"messaging_product": "whatsapp", "details": details}
    body["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
    return json_response({"error": body}, status=status, headers=headers)


def not_found(request: Request) -> Response:
    return error(f"Unknown path components: {request.path}", 2500)


def fault_answer(fault: Fault) -> Response:
    if fault.kind == "rate_limit":
        # Meta says nothing about when to retry: the caller backs off on its own.
        return error("(#130429) Rate limit hit", 130429, status=429,
                     details="Cloud API message throughput has been reached.")
    return error("An unknown error has occurred.", 1, status=fault.status)


def send_message(fake: FakeProviders, request: Request, version: str, phone_number_id: str) -> Response:
    injected = fake.injected(PROVIDER, fault_answer)
    if injected is not None:
        return injected
    creds = fake.credentials
    if request.headers.get("Authorization") != f"Bearer {creds.whatsapp_token}":
        return error("Invalid OAuth access token - Cannot parse access token", 190, status=401)
    if phone_number_id != creds.whatsapp_phone_number_id:
        return error(f"Unsupported post request. Object with ID '{phone_number_id}' does not exist, cannot be loaded "
                     "due to missing permissions, or does not support this operation. Please read the Graph API "
                     "documentation at https://developers.facebook.com/docs/graph-api", 100,
                     kind="GraphMethodException", subcode=33)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error("(#100) Invalid parameter", 100)
    problem = _missing(body)
    if problem:
        return error(f"(#100) The parameter {problem} is required.", 100)
    to = str(body["to"]).removeprefix("+")
    kind = body.get("type", "text")
    if to == UNDELIVERABLE:
        return error("(#131026) Message Undeliverable.", 131026, details="Message Undeliverable.")
    if to == OUTSIDE_WINDOW and kind != "template":
        return error("(#131047) Re-engagement message", 131047, details="Message failed to send because more than "
                     "24 hours have passed since the customer last replied to this number.")
    text, meta = _content(body)
    wamid = "wamid." + base64.b64encode(f"HBgL{to}FQIAERgS{secrets.token_hex(9).upper()}".encode()).decode()
    message = fake.accept(request, provider=PROVIDER, to=to, text=text, provider_id=wamid, meta=meta)
    url = fake.callback_url(PROVIDER, message.workspace_id)
    if url:
        for status in ("sent", "delivered"):
            fake.post_later(url, *signed_webhook(creds.whatsapp_app_secret, status_payload(
                creds.whatsapp_phone_number_id, wamid, status, to)))
    answer: dict[str, Any] = {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": to}],
                              "messages": [{"id": wamid}]}
    if kind == "template":
        answer["messages"][0]["message_status"] = "accepted"
    return json_response(answer)


def _missing(body: dict[str, Any]) -> str:
    if body.get("messaging_product") != "whatsapp":
        return "messaging_product"
    if not body.get("to"):
        return "to"
    kind = body.get("type", "text")
    if kind not in TYPES:
        return f"type (one of {', '.join(TYPES)})"
    part: dict[str, Any] = body[kind] if isinstance(body.get(kind), dict) else {}
    if kind == "text" and not part.get("body"):
        return "text['body']"
    if kind == "template" and not part.get("name"):
        return "template['name']"
    if kind == "template" and not (part.get("language") or {}).get("code"):
        return "template['language']['code']"
    if kind == "interactive" and not (part.get("body") or {}).get("text"):
        return "interactive['body']['text']"
    return ""


def _content(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """What the user would see, and the structure worth showing in the outbox."""
    kind = body.get("type", "text")
    if kind == "template":
        template = body["template"]
        params = [p.get("text", "") for c in template.get("components") or [] if c.get("type") == "body"
                  for p in c.get("parameters") or []]
        meta = {"template": {"name": template["name"], "language": template["language"]["code"], "parameters": params}}
        return f"[template {template['name']}] " + " | ".join(params), meta
    if kind == "interactive":
        interactive = body["interactive"]
        parameters = (interactive.get("action") or {}).get("parameters") or {}
        buttons = [{"text": parameters.get("display_text", ""), "url": parameters.get("url", "")}] if parameters else []
        return interactive["body"]["text"], {"buttons": buttons}
    return body["text"]["body"], {}


def status_payload(phone_number_id: str, wamid: str, status: str, recipient: str) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "200000000000002", "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550001234", "phone_number_id": phone_number_id},
                  "statuses": [{"id": wamid, "status": status, "timestamp": str(int(time.time())),
                                "recipient_id": recipient}]},
        "field": "messages"}]}]}


def signed_webhook(app_secret: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}


def inbound_request(fake: FakeProviders, url: str, *, sender: str, text: str,
                    sender_name: str | None = None) -> tuple[bytes, dict[str, str]]:
    wa_id = sender.removeprefix("+")
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "200000000000002", "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550001234",
                               "phone_number_id": fake.credentials.whatsapp_phone_number_id},
                  "contacts": [{"profile": {"name": sender_name or "Test"}, "wa_id": wa_id}],
                  "messages": [{"from": wa_id, "id": "wamid." + secrets.token_hex(16),
                                "timestamp": str(int(time.time())), "type": "text", "text": {"body": text}}]},
        "field": "messages"}]}]}
    return signed_webhook(fake.credentials.whatsapp_app_secret, payload)

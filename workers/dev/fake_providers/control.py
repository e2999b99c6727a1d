"""Steering the fake providers over HTTP, for tests that run them as a separate process.

    GET    /_fake/health                      → {"ok": true}
    GET    /_fake/messages[?provider=twilio]  → {"messages": [...]} every accepted message
    DELETE /_fake/messages                    → forget messages and pending faults
    POST   /_fake/faults    {"provider": "telegram", "kind": "error"|"rate_limit"|"delay",
                             "status": 500, "times": 1, "retry_after": 1, "seconds": 5}
    POST   /_fake/inbound   {"provider": "telegram", "workspace_id": "...", "sender": "123",
                             "text": "/stop", "sender_name": "Ada"} → {"status": <our app's HTTP status>}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from workers.dev.fake_providers.answers import json_response
from workers.dev.fake_providers.state import PROVIDERS, Fault

if TYPE_CHECKING:
    from workers.dev.fake_providers.server import FakeProviders

KINDS = ("error", "rate_limit", "delay")


def rules() -> list[Rule]:
    return [
        Rule("/_fake/health", endpoint=health, methods=["GET"]),
        Rule("/_fake/messages", endpoint=messages, methods=["GET", "DELETE"]),
        Rule("/_fake/faults", endpoint=faults, methods=["POST"]),
        Rule("/_fake/inbound", endpoint=inbound, methods=["POST"]),
    ]


def health(fake: FakeProviders, request: Request) -> Response:
    return json_response({"ok": True})


def messages(fake: FakeProviders, request: Request) -> Response:
    if request.method == "DELETE":
        fake.state.clear()
        return json_response({"cleared": True})
    provider = request.args.get("provider") or None
    return json_response({"messages": [m.as_json() for m in fake.state.messages(provider)]})


def _json_object(request: Request) -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def _problem(body: dict[str, Any] | None) -> str:
    if body is None:
        return "send a JSON object"
    if body.get("provider") not in PROVIDERS:
        return f"provider must be one of {', '.join(PROVIDERS)}"
    return ""


def faults(fake: FakeProviders, request: Request) -> Response:
    body = _json_object(request)
    problem = _problem(body)
    if body is None or problem or body.get("kind", "error") not in KINDS:
        return json_response({"error": problem or f"kind must be one of {KINDS}"}, status=422)
    try:
        fault = Fault(kind=body.get("kind", "error"), times=int(body.get("times", 1)),
                      status=int(body.get("status", 429 if body.get("kind") == "rate_limit" else 500)),
                      retry_after=float(body.get("retry_after", 1)), seconds=float(body.get("seconds", 0)))
        fake.state.add_fault(body["provider"], fault)
    except (TypeError, ValueError) as exc:
        return json_response({"error": str(exc)}, status=422)
    return json_response({"queued": True}, status=201)


def inbound(fake: FakeProviders, request: Request) -> Response:
    body = _json_object(request)
    problem = _problem(body)
    if body is None or problem or not all(isinstance(body.get(k), str) and body[k]
                                          for k in ("workspace_id", "sender", "text")):
        return json_response({"error": problem or "workspace_id, sender and text are required strings"}, status=422)
    try:
        status = fake.inbound(body["provider"], workspace_id=body["workspace_id"], sender=body["sender"],
                              text=body["text"], sender_name=body.get("sender_name"))
    except (RuntimeError, NotImplementedError, ValueError) as exc:
        return json_response({"error": str(exc)}, status=409)
    return json_response({"status": status})

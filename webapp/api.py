"""The JSON API under /api/v1: events in, contacts and the outbox out."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from engine.errors import AuthError, NotFound
from engine.models import OutboxCapture
from engine.services import contacts
from engine.services.ingest import MAX_BATCH, ingest_events
from webapp import context
from webapp.auth import authenticate
from webapp.openapi import SPEC

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def error(status: int, code: str, message: str, **extra: Any) -> tuple[Response, int]:
    return jsonify(error=code, message=message, **extra), status


@bp.errorhandler(AuthError)
def _unauthorized(exc: AuthError) -> Any:
    response, status = error(401, "unauthorized", str(exc))
    response.headers["WWW-Authenticate"] = 'Bearer realm="rapport"'
    return response, status


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return error(404, "not_found", str(exc))


class BadJson(Exception):
    pass


def _json_body() -> Any:
    """The parsed body. Parsed from the same raw bytes the signature was checked over."""
    try:
        return json.loads(request.get_data(cache=True))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadJson(str(exc)) from None


@bp.errorhandler(BadJson)
def _bad_json(exc: BadJson) -> Any:
    return error(400, "malformed_json", f"the body is not valid JSON: {exc}")


@bp.post("/events")
def post_event() -> Any:
    caller = authenticate(signed=True)
    payload = _json_body()
    with context.sessions()() as session:
        [result] = ingest_events(session, caller.workspace_id, [payload], now=context.now(), check_existing=False)
        if result.status == "accepted":
            session.commit()
            return jsonify(result.as_json()), 202
        session.rollback()  # a duplicate must change nothing, not even the contact
    if result.status == "duplicate":
        return jsonify(duplicate=True, event_id=result.event_id), 200
    return error(422, "invalid_event", "the event has invalid fields", errors=result.errors)


@bp.post("/events/batch")
def post_batch() -> Any:
    caller = authenticate(signed=True)
    payload = _json_body()
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list) or not events:
        return error(422, "invalid_batch", "the body must be {\"events\": [ ... ]}",
                     errors=[{"field": "events", "message": "a non-empty list of events is required"}])
    if len(events) > MAX_BATCH:
        return error(422, "invalid_batch", f"a batch holds at most {MAX_BATCH} events",
                     errors=[{"field": "events", "message": f"{len(events)} events; the limit is {MAX_BATCH}"}])
    with context.sessions().begin() as session:
        results = ingest_events(session, caller.workspace_id, events, now=context.now())
    counts = {s: sum(1 for r in results if r.status == s) for s in ("accepted", "duplicate", "invalid")}
    status = 202 if counts["accepted"] else (422 if counts["invalid"] == len(results) else 200)
    return jsonify(counts | {"results": [r.as_json() for r in results]}), status


@bp.get("/contacts/<path:external_id>/timeline")
def contact_timeline(external_id: str) -> Any:
    caller = authenticate(signed=False)
    with context.sessions()() as session:
        contact = contacts.get_contact(session, caller.workspace_id, external_id)
        return jsonify(
            contact=contacts.profile(contact),
            runs=contacts.runs_of(session, contact),
            messages=contacts.messages_of(session, contact),
            timeline=contacts.timeline(session, caller.workspace_id, external_id),
        )


@bp.get("/contacts/<path:external_id>")
def get_contact(external_id: str) -> Any:
    caller = authenticate(signed=False)
    with context.sessions()() as session:
        return jsonify(contacts.profile(contacts.get_contact(session, caller.workspace_id, external_id)))


@bp.delete("/contacts/<path:external_id>")
def erase_contact(external_id: str) -> Any:
    caller = authenticate(signed=False)
    with context.sessions().begin() as session:
        counts = contacts.erase_contact(session, caller.workspace_id, external_id,
                                        secret_key=context.settings().secret_key, now=context.now())
    return jsonify(erased=True, deleted=counts)


@bp.get("/outbox")
def outbox() -> Any:
    caller = authenticate(signed=False)
    limit = min(max(request.args.get("limit", 50, type=int) or 50, 1), 500)
    with context.sessions()() as session:
        rows = session.scalars(
            select(OutboxCapture).where(OutboxCapture.workspace_id == caller.workspace_id)
            .order_by(OutboxCapture.id.desc()).limit(limit)
        )
        return jsonify(messages=[capture_json(c) for c in rows])


def capture_json(capture: OutboxCapture) -> dict[str, Any]:
    return {
        "id": capture.id, "channel": capture.channel, "to": capture.to_address, "subject": capture.subject,
        "text": capture.text, "html": capture.html, "sent_at": capture.received_at.isoformat(),
        "message_id": capture.message_id,
    }


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(SPEC)

"""The JSON API under /api/v1: events in, contacts and the outbox out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from engine.contacts import profiles as contacts
from engine.contacts.ingest import MAX_BATCH, ingest_events
from engine.delivery.previews import html_without_tracking, meta_without_tracking, text_without_tracking
from engine.links.messenger import contact_links
from engine.store.models import OutboxCapture
from engine.strict_json import problems_by_item
from webapp import context
from webapp.api.auth import authenticate
from webapp.api.errors import error, register_api_errors
from webapp.api.json_body import json_body_with_problems
from webapp.api.openapi import SPEC

bp = Blueprint("api", __name__, url_prefix="/api/v1")
register_api_errors(bp)


@bp.post("/events")
def post_event() -> Any:
    caller = authenticate(signed=True)
    payload, problems = json_body_with_problems()
    if problems:
        return error(422, "invalid_event", "the event has invalid fields",
                     errors=[{"field": p.field, "message": p.message} for p in problems])
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
    payload, problems = json_body_with_problems()
    refused = problems_by_item(problems, under="events")
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list) or not events:
        return error(422, "invalid_batch", "the body must be {\"events\": [ ... ]}",
                     errors=[{"field": "events", "message": "a non-empty list of events is required"}])
    if len(events) > MAX_BATCH:
        return error(422, "invalid_batch", f"a batch holds at most {MAX_BATCH} events",
                     errors=[{"field": "events", "message": f"{len(events)} events; the limit is {MAX_BATCH}"}])
    with context.sessions().begin() as session:
        results = ingest_events(session, caller.workspace_id, events, now=context.now(), refused=refused)
    counts = {s: sum(1 for r in results if r.status == s) for s in ("accepted", "duplicate", "invalid")}
    status = 202 if counts["accepted"] else (422 if counts["invalid"] == len(results) else 200)
    return jsonify(counts | {"results": [r.as_json() for r in results]}), status


@bp.get("/contacts/<path:external_id>/timeline")
def contact_timeline(external_id: str) -> Any:
    caller = authenticate()
    with context.sessions()() as session:
        contact = contacts.get_contact(session, caller.workspace_id, external_id)
        return jsonify(
            contact=contacts.profile(contact),
            runs=contacts.runs_of(session, contact),
            messages=contacts.messages_of(session, contact),
            reviews=contacts.reviews_of(session, contact),
            timeline=contacts.timeline(session, caller.workspace_id, external_id),
        )


@bp.get("/contacts/<path:external_id>")
def get_contact(external_id: str) -> Any:
    caller = authenticate()
    with context.sessions()() as session:
        return jsonify(contacts.profile(contacts.get_contact(session, caller.workspace_id, external_id)))


@bp.get("/contacts/<path:external_id>/messenger-links")
def messenger_links(external_id: str) -> Any:
    """Deep links that connect the contact's Telegram or Viber chat (engine/links/messenger.py)."""
    caller = authenticate()
    settings = context.settings()
    with context.sessions()() as session:
        contact = contacts.get_contact(session, caller.workspace_id, external_id)
        return jsonify(contact_links(settings.secret_key, caller.workspace_id, contact.id,
                                     telegram_bot=settings.telegram_bot_username,
                                     viber_chat_uri=settings.viber_chat_uri))


@bp.delete("/contacts/<path:external_id>")
def erase_contact(external_id: str) -> Any:
    caller = authenticate()
    with context.sessions().begin() as session:
        counts = contacts.erase_contact(session, caller.workspace_id, external_id,
                                        secret_key=context.settings().secret_key, now=context.now())
    return jsonify(erased=True, deleted=counts)


@bp.get("/outbox")
def outbox() -> Any:
    caller = authenticate()
    limit = min(max(request.args.get("limit", 50, type=int) or 50, 1), 500)
    with context.sessions()() as session:
        rows = session.scalars(
            select(OutboxCapture).where(OutboxCapture.workspace_id == caller.workspace_id)
            .order_by(OutboxCapture.id.desc()).limit(limit)
        )
        return jsonify(messages=[capture_json(c) for c in rows])


def capture_json(capture: OutboxCapture) -> dict[str, Any]:
    """A captured message as a preview: no open pixel, links straight to where they lead
    (engine.delivery.previews), so showing it counts no open and no click."""
    secret = context.settings().secret_key
    return {
        "id": capture.id, "channel": capture.channel, "to": capture.to_address, "subject": capture.subject,
        "text": text_without_tracking(capture.text, secret) if capture.text else capture.text,
        "html": html_without_tracking(capture.html, secret) if capture.html else capture.html,
        "sent_at": capture.received_at.isoformat(),
        "message_id": capture.message_id, "meta": meta_without_tracking(capture.meta or {}, secret),
    }


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(SPEC)

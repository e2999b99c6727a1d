"""Webhooks fired by shop platforms (Shopify, WooCommerce): verify, de-duplicate, ingest.

Both platforms sign a delivery with base64(HMAC-SHA256(shop secret, raw body)) and
name it with a delivery id; Shopify also sends an event id (X-Shopify-Event-Id), the same
for every delivery of one event, which is then the de-duplication key. The signature
check, the receipt that de-duplicates the delivery and the events it maps to are one
transaction: a delivery is recorded whole or not at all, and a repeat finds the receipt
and changes nothing. Reading a platform's payload is pure code in `shopify.py` and
`woocommerce.py` beside this module, which describe themselves to this module as a `Platform`.

One outcome per delivery:
- mapped: the events are stored with the platform as their source; the receipt keeps
  their ids, not the payload (the personal data lives in the events and contacts);
- unmapped: not understood (unknown topic, missing data); the receipt keeps the
  payload and a warning for inspection, so nothing is dropped silently;
- ignored: understood, and deliberately not an event (a completed checkout, a change
  already recorded); the receipt says why;
- duplicate: this delivery id was received before; nothing changes;
- ping: WooCommerce's unsigned hello when a webhook is saved; nothing is stored.

Bodies are read by the strict JSON reader (engine/strict_json.py). A signed body holding
values that cannot be stored (NaN, Infinity, a number beyond ±1.8e308, a NUL character, a
lone surrogate, an integer of more than 4300 digits) is unmapped: its text is kept for
inspection with the fields named in the warning, and the shop is answered 202 so it does
not retry what cannot change. A body nested deeper than MAX_DEPTH levels is refused
(TooDeepJson) and nothing is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.orm import Session

from engine.contacts.ingest import ingest_events, parse_event
from engine.errors import AuthError, MalformedJson, NotFound, TooDeepJson
from engine.field_errors import field_path
from engine.store.dialect import upsert
from engine.store.models import WebhookReceipt, Workspace
from engine.strict_json import read_json, storable_text

SHOP_PLATFORMS = ("shopify", "woocommerce")
MAX_DELIVERY_ID = 150  # WebhookReceipt.delivery_id holds 200; event ids add a prefix
MAX_TOPIC = 100
MAX_WARNING = 500


@dataclass(frozen=True)
class Mapped:
    """Canonical events, as the dicts `ingest_events` takes."""

    events: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Unmapped:
    warning: str


@dataclass(frozen=True)
class Ignored:
    reason: str


MappingResult = Mapped | Unmapped | Ignored


@dataclass(frozen=True)
class Delivery:
    """One webhook request as received: the platform's headers and the raw body."""

    delivery_id: str | None
    topic: str | None
    signature: str | None
    body: bytes
    event_id: str | None = None  # the platform's id of the event itself, the same on every delivery of it


def _never_a_ping(delivery: Delivery) -> bool:
    return False


@dataclass(frozen=True)
class Platform:
    name: str  # the events' source, and the key of the secret in Workspace.settings
    signature_header: str
    delivery_header: str
    topic_header: str
    map_delivery: Callable[[str, Any, str], MappingResult]  # (topic, parsed body, delivery id)
    event_header: str | None = None  # names the event across its deliveries (de-duplication key)
    is_ping: Callable[[Delivery], bool] = _never_a_ping


@dataclass(frozen=True)
class Outcome:
    status: Literal["mapped", "unmapped", "ignored", "duplicate", "ping"]
    event_ids: tuple[str, ...] = field(default=())
    note: str | None = None  # the warning (unmapped) or the reason (ignored)


def receive_webhook(
    session: Session, workspace_id: str, platform: Platform, delivery: Delivery, *, now: datetime
) -> Outcome:
    """Verify, de-duplicate and store one delivery. The caller commits.

    Raises NotFound for an unknown workspace and AuthError for a missing or wrong
    signature (also when the workspace has no secret for this platform: the caller
    learns nothing it could not guess).
    """
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("not found")
    if platform.is_ping(delivery):
        return Outcome("ping")
    secret = shop_secret(workspace, platform.name)
    if secret is None or not signature_matches(secret, delivery.body, delivery.signature):
        raise AuthError(f"missing or invalid {platform.signature_header} header")

    topic = (delivery.topic or "").strip()[:MAX_TOPIC]
    delivery_id = delivery_key(delivery)
    receipt_id = _claim_receipt(session, workspace_id, platform.name, delivery_id, topic, now=now)
    if receipt_id is None:
        return Outcome("duplicate")

    try:
        payload, problems = read_json(delivery.body)
    except TooDeepJson:
        raise
    except MalformedJson as exc:
        return _finish(session, receipt_id, Unmapped(f"the body is not JSON: {exc}"), payload=_body_text(delivery))
    if problems:
        fields = "; ".join(f"{p.field}: {p.message}" for p in problems[:10])
        return _finish(session, receipt_id, Unmapped(f"the body holds values that cannot be stored: {fields}"),
                       payload=_body_text(delivery))
    result = platform.map_delivery(topic, payload, delivery_id)
    if isinstance(result, Mapped):
        problem = _first_invalid(result.events)
        if problem is not None:
            result = Unmapped(problem)
        else:
            return _ingest(session, workspace_id, receipt_id, platform.name, result, now=now)
    return _finish(session, receipt_id, result, payload=payload)


def _body_text(delivery: Delivery) -> dict[str, str]:
    """A refused body as text to inspect, without what the database cannot store."""
    return {"body": storable_text(delivery.body[:10_000].decode("utf-8", "replace"))}


def _ingest(
    session: Session, workspace_id: str, receipt_id: int, source: str, mapped: Mapped, *, now: datetime
) -> Outcome:
    results = ingest_events(session, workspace_id, list(mapped.events), now=now, source=source)
    accepted = [r for r in results if r.status == "accepted"]
    if not accepted:  # every event it maps to was recorded from an earlier delivery
        seen = ", ".join(r.event_id or "?" for r in results)
        return _finish(session, receipt_id, Ignored(f"already recorded as event {seen}"), payload=None)
    external_ids = tuple(r.event_id for r in accepted if r.event_id)
    session.execute(
        update(WebhookReceipt).where(WebhookReceipt.id == receipt_id).values(
            status="mapped", event_ids={"ids": [r.id for r in accepted], "external_ids": list(external_ids)})
    )
    return Outcome("mapped", event_ids=external_ids)


def _finish(session: Session, receipt_id: int, result: Unmapped | Ignored, *, payload: Any) -> Outcome:
    if isinstance(result, Unmapped):
        values = {"status": "unmapped", "warning": result.warning[:MAX_WARNING], "payload": payload}
        outcome = Outcome("unmapped", note=result.warning)
    else:
        values = {"status": "ignored", "warning": result.reason[:MAX_WARNING]}
        outcome = Outcome("ignored", note=result.reason)
    session.execute(update(WebhookReceipt).where(WebhookReceipt.id == receipt_id).values(**values))
    return outcome


def _first_invalid(events: tuple[dict[str, Any], ...]) -> str | None:
    """The mappers validate what they build; this guards against one that did not."""
    for event in events:
        try:
            parse_event(event)
        except ValidationError as exc:
            detail = "; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in exc.errors())
            return f"the mapped event is invalid: {detail}"
    return None


def _claim_receipt(
    session: Session, workspace_id: str, source: str, delivery_id: str, topic: str, *, now: datetime
) -> int | None:
    """Insert the receipt, or return None when this delivery was received before.

    Claimed first, so two copies of one delivery arriving at once serialise on the
    unique key: the second waits for the first to commit and then finds it.
    """
    stmt = (
        upsert(session, WebhookReceipt)
        .values(workspace_id=workspace_id, source=source, delivery_id=delivery_id, topic=topic,
                status="received", event_ids={}, received_at=now)
        .on_conflict_do_nothing(index_elements=["workspace_id", "source", "delivery_id"])
        .returning(WebhookReceipt.id)
    )
    receipt_id: int | None = session.scalar(stmt)
    return receipt_id


def delivery_key(delivery: Delivery) -> str:
    """The event id when the platform sends one (Shopify: the same across retries and duplicate
    deliveries, which each get a new webhook id), else the delivery id; a digest of the body
    when the platform sent neither (or too long an id), so an identical retry is still recognised."""
    delivery_id = (delivery.event_id or "").strip() or (delivery.delivery_id or "").strip()
    if not delivery_id:
        return "sha256:" + hashlib.sha256(delivery.body).hexdigest()
    if len(delivery_id) > MAX_DELIVERY_ID:
        return "sha256:" + hashlib.sha256(delivery_id.encode()).hexdigest()
    return delivery_id


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    """`header` is base64(HMAC-SHA256(secret, body)), compared in constant time."""
    if not header:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, header.strip().encode())


def sign_body(secret: str, body: bytes) -> str:
    """The signature a shop platform sends for `body`: for tests and local tools."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shop_secret(workspace: Workspace, platform: str) -> str | None:
    section = (workspace.settings or {}).get(platform)
    secret = section.get("secret") if isinstance(section, dict) else None
    return secret if isinstance(secret, str) and secret else None


def connect_shop(session: Session, workspace_id: str, platform: str, secret: str) -> None:
    """Store the secret `platform` signs this workspace's webhooks with."""
    if platform not in SHOP_PLATFORMS:
        raise ValueError(f"unknown shop platform {platform!r}; one of {', '.join(SHOP_PLATFORMS)}")
    secret = secret.strip()
    if not secret:
        raise ValueError("the secret is empty")
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"no workspace {workspace_id!r}")
    settings = dict(workspace.settings or {})
    section = settings.get(platform)
    settings[platform] = {**(section if isinstance(section, dict) else {}), "secret": secret}
    workspace.settings = settings  # a new dict: the JSON column does not track changes inside one

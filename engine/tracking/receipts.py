"""Receipts: what providers and tracking links tell us about messages already sent.

Each receipt is stored once: (channel, receipt_key) is unique, so a provider's retry
or a second click on the same link changes nothing. A receipt moves its message only
forward (engine/delivery/states.py), however late or out of order it arrives; one that
cannot move it is still kept, marked not applied. A receipt saying the address is
dead (hard bounce, blocked bot, complaint) suppresses the address on that channel.
Opens, clicks, bounces and complaints also become events on the contact, so journeys
can wait for them and conversions can be attributed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.contacts.consent import apply_claim, persons
from engine.contacts.journal import JournalKind, record_message
from engine.delivery.ports import DeliveryEvent
from engine.delivery.states import next_status
from engine.store.db import JobName, defer
from engine.store.dialect import upsert
from engine.store.models import Contact, Event, Message, MessageReceipt, MessageStatus, Suppression

EVENT_TYPES = {"opened": "message_opened", "clicked": "message_clicked", "bounced": "message_bounced",
               "complained": "message_complained", "failed": "message_failed"}


@dataclass(frozen=True)
class AppliedReceipt:
    receipt_key: str
    message_id: int | None
    status: str | None  # the message's new status, None if it did not move
    duplicate: bool = False


def apply_deliveries(session: Session, workspace_id: str, deliveries: list[DeliveryEvent], *,
                     now: datetime) -> list[AppliedReceipt]:
    return [_apply(session, workspace_id, delivery, now=now) for delivery in deliveries]


def find_message(session: Session, workspace_id: str, delivery: DeliveryEvent) -> Message | None:
    if delivery.message_id is not None:
        query = select(Message).where(Message.id == delivery.message_id)
    elif delivery.provider_id:
        query = select(Message).where(Message.provider_id == delivery.provider_id, Message.channel == delivery.channel)
    else:
        return None
    return session.scalar(query.where(Message.workspace_id == workspace_id).with_for_update())


def _apply(session: Session, workspace_id: str, delivery: DeliveryEvent, *, now: datetime) -> AppliedReceipt:
    message = find_message(session, workspace_id, delivery)
    new_status = next_status(message.status, delivery.status) if message is not None else None
    stored = session.scalar(
        upsert(session, MessageReceipt).values(
            workspace_id=workspace_id, message_id=message.id if message else None, channel=delivery.channel,
            receipt_key=delivery.receipt_key[:200], status=delivery.status, applied=new_status is not None,
            detail=delivery.detail[:500] or None, occurred_at=delivery.occurred_at, received_at=now,
        ).on_conflict_do_nothing(index_elements=["channel", "receipt_key"]).returning(MessageReceipt.id)
    )
    if stored is None:
        return AppliedReceipt(delivery.receipt_key, message.id if message else None, None, duplicate=True)
    if message is None:
        return AppliedReceipt(delivery.receipt_key, None, None)
    if message.sent_at is not None and delivery.occurred_at < message.sent_at:
        # Providers' clocks and minute-precision stamps (Twilio's RawDlrDoneDate) can put a
        # receipt before the send; nothing happens to a message before it is sent.
        delivery = replace(delivery, occurred_at=message.sent_at)
    _stamp(message, delivery)
    if new_status is not None:
        message.status = new_status
        detail = f"{delivery.channel} {delivery.status}" + (f": {delivery.detail}" if delivery.detail else "")
        record_message(session, message, JournalKind(new_status), at=delivery.occurred_at, detail=detail)
    if delivery.address_dead or delivery.status == "complained":
        _suppress(session, message, delivery, now=now)
    if delivery.status in EVENT_TYPES and (new_status is not None or delivery.status == "clicked"):
        _record_event(session, message, delivery, now=now)
    return AppliedReceipt(delivery.receipt_key, message.id, new_status)


def _stamp(message: Message, delivery: DeliveryEvent) -> None:
    """First-seen times, kept even when the status cannot move (a late `delivered`)."""
    at = delivery.occurred_at
    if delivery.status in ("delivered", "opened", "clicked", "replied") and message.delivered_at is None:
        message.delivered_at = at  # an open proves delivery
    if delivery.status in ("opened", "clicked") and message.opened_at is None:
        message.opened_at = at  # a click proves the open, even with images blocked
    if delivery.status == "clicked" and message.clicked_at is None:
        message.clicked_at = at


def _suppress(session: Session, message: Message, delivery: DeliveryEvent, *, now: datetime) -> None:
    address = delivery.address or message.to_address
    if not address:
        return
    reason = {"complained": "marked as spam"}.get(delivery.status, "address dead")
    reason = f"{reason}: {delivery.detail}" if delivery.detail else reason
    session.execute(upsert(session, Suppression).values(
        workspace_id=message.workspace_id, channel=message.channel, address=address, reason=reason[:200],
        created_at=now,
    ).on_conflict_do_nothing(index_elements=["workspace_id", "channel", "address"]))
    if delivery.status == "complained":
        contact = session.get(Contact, message.contact_id, with_for_update=True)
        if contact is not None:  # the person's own word: a shop's stale opt-in cannot undo it
            apply_claim(session, contact, message.channel,
                        persons("opted_out", f"spam complaint on message {message.id}", now=now), now=now)
    record_message(session, message, JournalKind.SUPPRESSED, at=now, detail=f"{message.channel} {address}: {reason}")


def _record_event(session: Session, message: Message, delivery: DeliveryEvent, *, now: datetime) -> None:
    properties: dict[str, Any] = {
        "message_id": message.id, "channel": message.channel, "template": message.template,
        "journey_id": message.journey_id, "step_id": message.step_id, "run_id": message.run_id, "arm": message.arm,
    }
    if delivery.status == "clicked" and delivery.detail:
        properties["url"] = delivery.detail
    event_id = session.scalar(upsert(session, Event).values(
        workspace_id=message.workspace_id, external_id=f"receipt:{delivery.channel}:{delivery.receipt_key}"[:200],
        type=EVENT_TYPES[delivery.status], contact_id=message.contact_id, occurred_at=delivery.occurred_at,
        received_at=now, properties=properties, source=delivery.channel, enqueued_at=now,
    ).on_conflict_do_nothing(index_elements=["workspace_id", "external_id"]).returning(Event.id))
    if event_id is not None:
        defer(session, JobName.EVALUATE_EVENTS, [event_id])


def is_sent(status: str) -> bool:
    return status not in (MessageStatus.SCHEDULED, MessageStatus.CLAIMED, MessageStatus.SENDING, MessageStatus.SKIPPED,
                          MessageStatus.FAILED, MessageStatus.UNKNOWN)

"""What providers' webhooks bring in: receipts for our messages, and messages from contacts.

Receipts go to engine.tracking.receipts. Each inbound message (an SMS reply, a Telegram,
WhatsApp or Viber message) becomes a `message_received` event on the contact who sent
it, so journeys can answer it (triggers/support_bot.py), after its commands are obeyed:
- SMS and WhatsApp keywords STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, СТОП,
  ОТПИСАТЬСЯ opt the sender out of that channel; START, UNSTOP, СТАРТ opt back in
  (the whole text, case-insensitive, surrounding spaces ignored);
- Telegram and Viber `/stop` opts out of that channel; `/start` opts in, and
  `/start <token>` (engine/links/messenger.py; Viber's deep-link `context` arrives the
  same way) first links the chat to the contact the token names. A token that does not
  verify links nothing: the message is kept as one from whoever holds the chat, so a
  forged link gains nothing and nothing is lost.
The sender is found by address: sms by `phone` (E.164, as the provider sends it);
telegram and viber by `messenger_ids[channel]`; whatsapp by `messenger_ids.whatsapp` or
phone "+<wa id>". Commands and `last_inbound_at` apply to every contact with that
address (one STOP must silence the number, however many contacts share it); the event
goes to the oldest of them that the shop knows, else to a contact made for the unknown
sender, external id "<channel>:<sender>", so a reply is never lost.

De-duplication: the event's external id is derived from (channel, receipt key), and
events are unique per workspace, so a provider's retry finds the event and changes
nothing (a concurrent twin is caught by the unique index, and its savepoint undone).
Not `message_receipts`: its key (channel, receipt_key) is global, not per workspace,
and its rows are receipts for messages we sent. A reply also moves the contact's latest
message on that channel (sent within REPLY_WINDOW) to `replied`, as a receipt.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.channels import TEXT_CHANNELS
from engine.contacts.consent import apply_person
from engine.contacts.journal import JournalKind, record
from engine.delivery.ports import DeliveryEvent, InboundMessage, WebhookBatch
from engine.errors import NotFound
from engine.links.messenger import parse_start_token
from engine.store.db import JobName, defer
from engine.store.dialect import upsert
from engine.store.models import Contact, Event, Message, Workspace
from engine.tracking.receipts import AppliedReceipt, apply_deliveries, is_sent

EVENT_TYPE = "message_received"
STOP_KEYWORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "стоп", "отписаться"})
START_KEYWORDS = frozenset({"start", "unstop", "старт"})
KEYWORD_CHANNELS = ("sms", "whatsapp")  # plain-text keywords, as carriers expect
COMMAND_CHANNELS = ("telegram", "viber")  # bot commands
INBOUND_CHANNELS = TEXT_CHANNELS  # each has a provider that posts what contacts write
REPLY_WINDOW = timedelta(days=7)
MAX_KEYWORD = 200


@dataclass(frozen=True)
class Command:
    kind: Literal["stop", "start"]
    token: str | None = None  # /start <token>: link the chat to the contact it names
    word: str = ""  # as the contact wrote it, for the journal ("STOP")


@dataclass(frozen=True)
class InboundOutcome:
    receipts: list[AppliedReceipt]
    event_ids: list[int]  # message_received events stored now
    duplicates: int  # inbound messages seen before


def keyword(text: str) -> str:
    """The text as journeys compare it: trimmed, case-folded, one space between words, no final ?!."""
    return re.sub(r"\s+", " ", text).strip().casefold().rstrip("?!.").strip()[:MAX_KEYWORD]


def read_command(channel: str, text: str) -> Command | None:
    """The command an inbound text gives on `channel`, or None for an ordinary message."""
    if channel in KEYWORD_CHANNELS:
        word = text.strip()
        if word.casefold() in STOP_KEYWORDS:
            return Command("stop", word=word)
        if word.casefold() in START_KEYWORDS:
            return Command("start", word=word)
    if channel in COMMAND_CHANNELS:
        head, _, rest = text.strip().partition(" ")
        name = head.casefold().split("@", 1)[0]  # "/start@shop_bot" in group chats
        if name == "/stop":
            return Command("stop", word=head)
        if name == "/start":
            return Command("start", token=rest.strip() or None, word=head)
    return None


def ensure_workspace(session: Session, workspace_id: str) -> None:
    if session.get(Workspace, workspace_id) is None:
        raise NotFound("no such workspace")


def receive(session: Session, workspace_id: str, batch: WebhookBatch, *, now: datetime,
            link_secret: str = "") -> InboundOutcome:
    """Apply a provider webhook's receipts and inbound messages. The caller commits.

    `link_secret` verifies /start tokens (the app's secret key); empty: none verifies.
    """
    receipts = apply_deliveries(session, workspace_id, batch.deliveries, now=now) if batch.deliveries else []
    event_ids: list[int] = []
    duplicates = 0
    for message in batch.inbound:
        event_id = _receive_message(session, workspace_id, message, now=now, link_secret=link_secret)
        if event_id is None:
            duplicates += 1
        else:
            event_ids.append(event_id)
    if event_ids:
        defer(session, JobName.EVALUATE_EVENTS, event_ids)
    return InboundOutcome(receipts, event_ids, duplicates)


def event_external_id(message: InboundMessage) -> str:
    key = f"inbound:{message.channel}:{message.receipt_key}"
    if len(key) <= 200:
        return key
    return f"inbound:{message.channel}:sha256:{hashlib.sha256(message.receipt_key.encode()).hexdigest()}"


class _Duplicate(Exception):
    """A concurrent delivery of the same message stored its event first."""


def _receive_message(session: Session, workspace_id: str, message: InboundMessage, *, now: datetime,
                     link_secret: str) -> int | None:
    external_id = event_external_id(message)
    seen = session.scalar(select(Event.id).where(Event.workspace_id == workspace_id,
                                                 Event.external_id == external_id))
    if seen is not None:
        return None
    try:
        with session.begin_nested():
            return _store_message(session, workspace_id, message, external_id, now=now, link_secret=link_secret)
    except _Duplicate:
        return None


def _store_message(session: Session, workspace_id: str, message: InboundMessage, external_id: str, *,
                   now: datetime, link_secret: str) -> int:
    channel, sender = message.channel, message.sender
    command = read_command(channel, message.text)
    holders = contacts_at(session, workspace_id, channel, sender)
    linked = None
    if command is not None and command.token:
        linked = _link_chat(session, workspace_id, message, command.token, holders, now=now, link_secret=link_secret)
        if linked is not None:
            holders = [linked] + [c for c in holders if c.id != linked.id]
    if not holders:
        holders = [_contact_for_unknown_sender(session, workspace_id, message, now=now)]
    received_at = min(message.occurred_at, now)
    for contact in holders:
        _note_inbound(contact, channel, received_at, now=now)
        if command is not None:
            _obey(session, contact, channel, command, now=now)
    primary = linked or _primary(holders, channel, sender)
    if command is not None and command.token and linked is None:
        record(session, workspace_id=workspace_id, contact_id=primary.id, kind=JournalKind.LINK_REFUSED, at=now,
               detail=f"{channel} {command.word} with a link that does not verify: chat not linked")
    properties: dict[str, Any] = {
        "channel": channel, "text": message.text, "keyword": keyword(message.text), "sender": sender,
        "provider_message_id": message.receipt_key,
    }
    if message.sender_name:
        properties["sender_name"] = message.sender_name
    if command is not None:
        properties["command"] = command.kind
        if command.token:
            properties["linked"] = linked is not None
    session.flush()
    event_id: int | None = session.scalar(upsert(session, Event).values(
        workspace_id=workspace_id, external_id=external_id, type=EVENT_TYPE, contact_id=primary.id,
        occurred_at=message.occurred_at, received_at=now, properties=properties, source=channel, enqueued_at=now,
    ).on_conflict_do_nothing(index_elements=["workspace_id", "external_id"]).returning(Event.id))
    if event_id is None:
        raise _Duplicate()
    _mark_replied(session, primary, message, now=now)
    return event_id


def contacts_at(session: Session, workspace_id: str, channel: str, sender: str) -> list[Contact]:
    """The workspace's contacts reachable at `sender` on `channel`, oldest first, locked for the update."""
    if channel == "sms":
        where: Any = Contact.phone == sender
    elif channel == "whatsapp":
        where = or_(Contact.messenger_ids["whatsapp"].as_string() == sender,
                    Contact.phone == "+" + sender.removeprefix("+"))
    elif channel in COMMAND_CHANNELS:
        where = Contact.messenger_ids[channel].as_string() == sender
    else:
        raise ValueError(f"no inbound messages on channel {channel!r}")
    query = select(Contact).where(Contact.workspace_id == workspace_id, where).order_by(Contact.id).limit(50)
    return list(session.scalars(query.with_for_update()))


def _primary(holders: list[Contact], channel: str, sender: str) -> Contact:
    """The contact the event belongs to: the shop's own before one made for an unknown sender."""
    placeholder = f"{channel}:{sender}"
    return next((c for c in holders if c.external_id != placeholder), holders[0])


def _link_chat(session: Session, workspace_id: str, message: InboundMessage, token: str, holders: list[Contact],
               *, now: datetime, link_secret: str) -> Contact | None:
    """Give the chat to the contact the token names; None when the token does not verify."""
    contact_id = parse_start_token(link_secret, workspace_id, token) if link_secret else None
    contact = session.get(Contact, contact_id, with_for_update=True) if contact_id else None
    if contact is None or contact.workspace_id != workspace_id:
        return None
    # A chat belongs to one contact: whoever held it before (e.g. the contact made when
    # the chat wrote in unlinked) lets go of it.
    for holder in holders:
        if holder.id != contact.id and message.channel in holder.messenger_ids:
            holder.messenger_ids = {k: v for k, v in holder.messenger_ids.items() if k != message.channel}
            holder.updated_at = now
    contact.messenger_ids = {**contact.messenger_ids, message.channel: message.sender}
    contact.updated_at = now
    record(session, workspace_id=workspace_id, contact_id=contact.id, kind=JournalKind.MESSENGER_LINKED, at=now,
           detail=f"linked {message.channel} chat {message.sender}")
    return contact


def _contact_for_unknown_sender(session: Session, workspace_id: str, message: InboundMessage, *,
                                now: datetime) -> Contact:
    channel, sender = message.channel, message.sender
    external_id = f"{channel}:{sender}"
    values: dict[str, Any] = {"messenger_ids": {}}
    if channel == "sms":
        values["phone"] = sender
    elif channel == "whatsapp":
        values["phone"] = "+" + sender.removeprefix("+")
        values["messenger_ids"] = {"whatsapp": sender}
    else:
        values["messenger_ids"] = {channel: sender}
    session.execute(upsert(session, Contact).values(
        workspace_id=workspace_id, external_id=external_id, first_name=(message.sender_name or None),
        attributes={}, consent={}, created_at=now, updated_at=now, **values,
    ).on_conflict_do_nothing(index_elements=["workspace_id", "external_id"]))
    contact = session.scalar(select(Contact).where(Contact.workspace_id == workspace_id,
                                                   Contact.external_id == external_id).with_for_update())
    assert contact is not None
    record(session, workspace_id=workspace_id, contact_id=contact.id, kind=JournalKind.CONTACT_CREATED, at=now,
           detail=f"an unknown {channel} sender wrote in")
    return contact


def _note_inbound(contact: Contact, channel: str, received_at: datetime, *, now: datetime) -> None:
    """Only forward: a late retry must not reopen or move WhatsApp's 24-hour window."""
    stamps = contact.last_inbound_at or {}
    previous = stamps.get(channel)
    if previous is None or datetime.fromisoformat(previous) < received_at:
        contact.last_inbound_at = {**stamps, channel: received_at.isoformat()}
        contact.updated_at = now


def _obey(session: Session, contact: Contact, channel: str, command: Command, *, now: datetime) -> None:
    """STOP and START are the person's own word: recorded as theirs (engine.contacts.consent)."""
    state = "opted_out" if command.kind == "stop" else "opted_in"
    if not apply_person(session, contact, {channel: state}, f"{channel} {command.word}", now=now):
        return
    verb = "opted out of" if state == "opted_out" else "opted in to"
    record(session, workspace_id=contact.workspace_id, contact_id=contact.id, kind=JournalKind.CONSENT_CHANGED, at=now,
           detail=f"{verb} {channel} by {command.word}")


def _mark_replied(session: Session, contact: Contact, message: InboundMessage, *, now: datetime) -> None:
    """The latest message we sent the contact on this channel was answered: a `replied` receipt."""
    latest = session.scalars(
        select(Message).where(Message.workspace_id == contact.workspace_id, Message.contact_id == contact.id,
                              Message.channel == message.channel, Message.sent_at >= now - REPLY_WINDOW)
        .order_by(Message.sent_at.desc()).limit(1)
    ).first()
    if latest is None or not is_sent(latest.status):
        return
    apply_deliveries(session, contact.workspace_id, [DeliveryEvent(
        channel=message.channel, status="replied", receipt_key=f"reply:{latest.id}:{message.receipt_key}",
        occurred_at=message.occurred_at, message_id=latest.id,
    )], now=now)

"""Unsubscribe and the preference center: what a contact chooses through a signed link.

A link names a message (engine.links.tokens.MessageRef); the message names the contact and
the workspace, and all three must agree with the link, so a link only ever changes its
own contact. Every change is a journal line and an event on the contact
(`unsubscribed`, `preferences_updated`), ingested like any event so journeys can react.
Doing what is already done changes nothing and records nothing: a second one-click
POST is answered the same and leaves no second line.

Consent states are "opted_in", "opted_out" and "pending" (double opt-in unconfirmed);
a channel with no state recorded is shown as the send policy treats it
(engine/delivery/policies.py): subscribed, except SMS and WhatsApp, which need an explicit opt-in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.channels import CHANNELS, Channel
from engine.contacts.consent import OPTED_IN, OPTED_OUT, PENDING, apply_person
from engine.contacts.ingest import ingest_events
from engine.contacts.journal import JournalKind, record
from engine.delivery.policies import OPT_IN_REQUIRED, address_for
from engine.delivery.policies import Recipient as Reachable
from engine.links.tokens import MessageRef
from engine.store.models import Contact, Message, Workspace

DEFAULT_TOPICS = ({"id": "newsletter", "name": "Newsletter"}, {"id": "offers", "name": "Offers and discounts"})
CHANNEL_LABELS: dict[Channel, str] = {"email": "Email", "sms": "Text messages (SMS)", "telegram": "Telegram",
                                      "whatsapp": "WhatsApp", "viber": "Viber"}
# How an unsubscribe arrived (webapp/public/preferences.py), as the consent record names it.
METHOD_SOURCES = {"one_click": "one-click unsubscribe", "page": "unsubscribe page", "post": "unsubscribe link",
                  "mailto": "mailto unsubscribe"}


@dataclass(frozen=True)
class Recipient:
    workspace: Workspace
    contact: Contact
    message: Message


def find_recipient(session: Session, ref: MessageRef, *, lock: bool = False) -> Recipient | None:
    """The message, contact and workspace a link names; None when gone (erased) or not matching."""
    message = session.scalar(select(Message).where(Message.id == ref.message_id,
                                                   Message.workspace_id == ref.workspace_id,
                                                   Message.contact_id == ref.contact_id))
    query = select(Contact).where(Contact.id == ref.contact_id, Contact.workspace_id == ref.workspace_id)
    # Locked: two requests for one contact (a double click) change it one after the other.
    contact = session.scalar(query.with_for_update() if lock else query)
    workspace = session.get(Workspace, ref.workspace_id)
    if message is None or contact is None or workspace is None:
        return None
    return Recipient(workspace, contact, message)


def record_contact_event(session: Session, contact: Contact, event_type: str, properties: dict[str, Any], *,
                         now: datetime, source: str) -> None:
    """Ingest an event on `contact`, so journeys and the timeline see it like any other."""
    session.flush()  # the contact's changes first: ingest's upsert writes the same row
    payload = {"id": f"{event_type}:{contact.id}:{secrets.token_hex(8)}", "type": event_type,
               "occurred_at": now.isoformat(), "contact": {"external_id": contact.external_id},
               "properties": properties}
    [result] = ingest_events(session, contact.workspace_id, [payload], now=now, check_existing=False, source=source)
    if result.status != "accepted":  # our own payload: a contact stored with an id ingest now refuses
        raise ValueError(f"{event_type} event refused: {result.errors}")


@dataclass(frozen=True)
class Unsubscribed:
    workspace_name: str
    channel: str
    changed: bool  # False: was opted out already


def unsubscribe_from_channel(session: Session, ref: MessageRef, *, now: datetime, method: str) -> Unsubscribed | None:
    """Opt the contact out of marketing on the channel the message came by. None when gone."""
    found = find_recipient(session, ref, lock=True)
    if found is None:
        return None
    channel = found.message.channel if found.message.channel in CHANNELS else "email"
    changed = apply_person(session, found.contact, {channel: OPTED_OUT}, METHOD_SOURCES.get(method, method), now=now)
    if changed:
        record(session, workspace_id=found.workspace.id, contact_id=found.contact.id, message_id=found.message.id,
               kind=JournalKind.UNSUBSCRIBED, at=now,
               detail=f"unsubscribed from {channel} ({method}, message {ref.message_id})")
        record_contact_event(session, found.contact, "unsubscribed",
                             {"channel": channel, "message_id": ref.message_id, "method": method},
                             now=now, source="unsubscribe")
    return Unsubscribed(found.workspace.name, channel, bool(changed))


def workspace_topics(settings: dict[str, Any] | None) -> list[dict[str, str]]:
    """The workspace's topics ([{"id", "name"}]); the defaults when none (or a malformed list) are set."""
    topics = (settings or {}).get("topics")
    if isinstance(topics, list) and topics and all(
            isinstance(t, dict) and isinstance(t.get("id"), str) and isinstance(t.get("name"), str) for t in topics):
        return [{"id": t["id"], "name": t["name"]} for t in topics]
    return [dict(t) for t in DEFAULT_TOPICS]


def addresses(contact: Contact) -> dict[Channel, str]:
    """Channel -> address, for the channels routing could send on (WhatsApp falls back to the phone)."""
    reachable = Reachable(email=contact.email, phone=contact.phone, messenger_ids=contact.messenger_ids or {})
    return {channel: address for channel in CHANNELS if (address := address_for(channel, reachable))}


def is_subscribed(channel: str, state: str | None) -> bool:
    """What the send policy would do: no recorded state allows marketing except where opt-in is required."""
    return state == OPTED_IN or (state is None and channel not in OPT_IN_REQUIRED)


def address_hint(channel: str, address: str) -> str:
    """Enough of an address to recognise it, not enough to learn it from a forwarded link."""
    if channel == "email" and "@" in address:
        name, _, domain = address.partition("@")
        return f"{name[:1]}***@{domain}"
    if address.startswith("+"):
        return "*** " + address[-4:]
    return "linked"


@dataclass(frozen=True)
class ChannelChoice:
    channel: str
    label: str
    hint: str
    subscribed: bool
    pending: bool


@dataclass(frozen=True)
class Preferences:
    workspace_name: str
    channels: list[ChannelChoice]
    preferred_channel: str | None
    topics: list[dict[str, Any]]  # {"id", "name", "subscribed"}


def preferences_of(found: Recipient) -> Preferences:
    contact = found.contact
    channels = [ChannelChoice(channel, CHANNEL_LABELS[channel], address_hint(channel, address),
                              is_subscribed(channel, contact.consent.get(channel)),
                              contact.consent.get(channel) == PENDING)
                for channel, address in addresses(contact).items()]
    topics = [{**topic, "subscribed": bool((contact.topics or {}).get(topic["id"], True))}
              for topic in workspace_topics(found.workspace.settings)]
    preferred = contact.preferred_channel if contact.preferred_channel in addresses(contact) else None
    return Preferences(found.workspace.name, channels, preferred, topics)


def show_preferences(session: Session, ref: MessageRef) -> Preferences | None:
    found = find_recipient(session, ref)
    return preferences_of(found) if found else None


@dataclass(frozen=True)
class PreferencesChange:
    subscribed: set[str]  # channels ticked
    preferred_channel: str | None
    topics: set[str]  # topic ids ticked
    everything_off: bool = False  # "unsubscribe from everything"


def update_preferences(session: Session, ref: MessageRef, change: PreferencesChange, *,
                       now: datetime) -> Preferences | None:
    """Store what the form says; only what differs is written, journaled and announced."""
    found = find_recipient(session, ref, lock=True)
    if found is None:
        return None
    contact, shown = found.contact, preferences_of(found)
    consent: dict[str, str] = {}
    for choice in shown.channels:
        wanted = choice.channel in change.subscribed
        if change.everything_off:  # explicit, whatever the state was: "no" to every channel
            consent[choice.channel] = OPTED_OUT
        elif wanted != choice.subscribed and not (choice.pending and not wanted):  # unticked pending stays pending
            consent[choice.channel] = OPTED_IN if wanted else OPTED_OUT
    consent = apply_person(session, contact, consent, "preference center", now=now)
    preferred = change.preferred_channel
    if change.everything_off or (preferred is not None and preferred not in addresses(contact)):
        preferred = contact.preferred_channel
    topics = {t["id"]: t["id"] in change.topics and not change.everything_off for t in shown.topics}
    new_topics = {**(contact.topics or {}), **topics}
    updates: dict[str, Any] = {}
    if consent:
        updates["consent"] = consent
    if preferred != contact.preferred_channel:
        contact.preferred_channel = updates["preferred_channel"] = preferred
    if new_topics != (contact.topics or {}):
        updates["topics"] = {k: v for k, v in topics.items() if (contact.topics or {}).get(k, True) != v}
        contact.topics = new_topics
    if updates:
        contact.updated_at = now
        kind = JournalKind.UNSUBSCRIBED if change.everything_off else JournalKind.PREFERENCES_UPDATED
        record(session, workspace_id=found.workspace.id, contact_id=contact.id, message_id=found.message.id,
               kind=kind, at=now, detail=_describe(updates))
        properties = {**updates, "method": "preference_center", "message_id": ref.message_id}
        if change.everything_off:
            properties["all"] = True
        record_contact_event(session, contact, kind, properties, now=now, source="preference_center")
    return preferences_of(found)


def _describe(updates: dict[str, Any]) -> str:
    parts = [f"{channel}: {state}" for channel, state in updates.get("consent", {}).items()]
    if "preferred_channel" in updates:
        parts.append(f"preferred channel: {updates['preferred_channel'] or 'none'}")
    parts += [f"topic {topic}: {'on' if on else 'off'}" for topic, on in updates.get("topics", {}).items()]
    return "preference center: " + ", ".join(parts)

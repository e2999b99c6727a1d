"""The subscription form and double opt-in.

A form submission upserts the contact and asks to confirm the email address: consent
for email becomes "pending" and a transactional `confirm_subscription` email goes out
with a signed link (engine.links.tokens, valid 7 days). Following it sets email consent to
"opted_in" and records `subscription_confirmed`. SMS consent is given on the form by
its own checkbox, never implied.

The form is public, so it must not let a stranger change a customer's record: an
existing contact (found by email, else by phone) gets only the fields it lacks, and
SMS consent only for the number it already has or is given now. Someone entering
another person's email gets that person a confirmation mail at most once in ten
minutes, and nothing more.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.consent.preferences import record_contact_event, workspace_topics
from engine.contacts.consent import OPTED_IN, PENDING, apply_person
from engine.contacts.ingest import EMAIL_RE, ingest_events
from engine.contacts.journal import JournalKind, record, record_message
from engine.contacts.phones import normalize_phone
from engine.errors import FieldErrors
from engine.links.tokens import ConfirmRef, confirm_url, email_digest
from engine.store.db import JobName, defer
from engine.store.models import Contact, Message, MessageStatus, Workspace

CONFIRM_TEMPLATE = "confirm_subscription"
RESEND_AFTER = timedelta(minutes=10)
FORM_CHANNELS = ("email", "sms")


@dataclass(frozen=True)
class SubscriptionForm:
    email: str | None
    phone: str | None  # E.164
    first_name: str | None
    preferred_channel: str | None
    topics: set[str]
    sms_consent: bool


def read_form(data: Mapping[str, str], topic_ids: list[str]) -> SubscriptionForm:
    """Validate the submitted fields; FieldErrors names each bad one."""
    errors: list[dict[str, str]] = []

    def fail(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    email = (data.get("email") or "").strip().lower() or None
    if email and (len(email) > 320 or not EMAIL_RE.match(email)):
        fail("email", "This is not an email address.")
    raw_phone = (data.get("phone") or "").strip()
    phone = None
    if raw_phone:
        # The same rules as every contact check (engine.contacts.phones): a number accepted here is stored.
        try:
            phone = normalize_phone(raw_phone)
        except ValueError as exc:
            fail("phone", f"This is {exc}. Enter the number in international format, e.g. +44 20 7946 0958.")
    if not email and not raw_phone:
        fail("email", "Enter an email address or a phone number.")
    sms_consent = data.get("sms_consent") == "on"
    if sms_consent and not raw_phone:
        fail("phone", "Enter the number to send text messages to.")
    if raw_phone and not email and not sms_consent:
        fail("sms_consent", "Tick this box to receive text messages, or enter an email address.")
    preferred = data.get("preferred_channel") or None
    if preferred not in (None, *FORM_CHANNELS):
        fail("preferred_channel", "Choose email or text messages.")
    elif preferred == "email" and not email:
        fail("preferred_channel", "Enter an email address to prefer email.")
    elif preferred == "sms" and not sms_consent:
        fail("preferred_channel", "Tick the text message box to prefer text messages.")
    first_name = (data.get("first_name") or "").strip() or None
    if first_name and len(first_name) > 200:
        fail("first_name", "Please keep the name under 200 characters.")
    if errors:
        raise FieldErrors(errors)
    topics = {topic for topic in topic_ids if data.get(f"topic_{topic}") == "on"}
    return SubscriptionForm(email, phone, first_name, preferred, topics, sms_consent)


def form_workspace(session: Session, workspace_id: str) -> tuple[str, list[dict[str, str]]] | None:
    """The workspace's name and topics, for the form; None when there is no such workspace."""
    workspace = session.get(Workspace, workspace_id)
    return (workspace.name, workspace_topics(workspace.settings)) if workspace else None


def _existing(session: Session, workspace_id: str, form: SubscriptionForm) -> Contact | None:
    for column, value in ((Contact.email, form.email), (Contact.phone, form.phone)):
        if value:
            found = session.scalar(select(Contact).where(Contact.workspace_id == workspace_id, column == value)
                                   .order_by(Contact.id).limit(1).with_for_update())
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class Subscribed:
    contact_id: int
    confirmation_id: int | None  # the confirm_subscription message, when one was scheduled


def subscribe(session: Session, workspace_id: str, form: SubscriptionForm, *, now: datetime, secret: str,
              base_url: str) -> Subscribed:
    workspace = session.get_one(Workspace, workspace_id)
    existing = _existing(session, workspace_id, form)
    contact_in: dict[str, object] = {"external_id": existing.external_id if existing else
                                     (f"email:{form.email}" if form.email else f"phone:{form.phone}")}
    for field, value in (("email", form.email), ("phone", form.phone), ("first_name", form.first_name)):
        if value and (existing is None or not getattr(existing, field)):  # fill gaps, never overwrite
            contact_in[field] = value
    stored_phone = (existing.phone if existing else None) or form.phone
    payload = {"id": f"subscription_requested:{secrets.token_hex(10)}", "type": "subscription_requested",
               "occurred_at": now.isoformat(), "contact": contact_in,
               "properties": {"email": bool(form.email), "sms": form.sms_consent, "topics": sorted(form.topics),
                              "preferred_channel": form.preferred_channel}}
    [result] = ingest_events(session, workspace_id, [payload], now=now, check_existing=False, source="form")
    if result.contact_id is None:
        raise ValueError(f"subscription refused: {result.errors}")
    contact = session.get_one(Contact, result.contact_id, populate_existing=True)
    wanted: dict[str, str] = {}
    if form.email and contact.email == form.email and contact.consent.get("email") != OPTED_IN:
        wanted["email"] = PENDING
    if form.sms_consent and stored_phone == form.phone:
        wanted["sms"] = OPTED_IN
    changed = apply_person(session, contact, wanted, "signup form", now=now)
    topics = {topic["id"]: topic["id"] in form.topics for topic in workspace_topics(workspace.settings)}
    contact.topics = {**(contact.topics or {}), **topics}
    if form.preferred_channel and (form.preferred_channel != "sms" or "sms" in wanted):
        contact.preferred_channel = form.preferred_channel
    record(session, workspace_id=workspace_id, contact_id=contact.id, kind=JournalKind.SUBSCRIPTION_REQUESTED, at=now,
           detail="subscription form: " + (", ".join(f"{ch}: {state}" for ch, state in changed.items())
                                           or "no consent change"))
    confirmation = None
    if wanted.get("email") == PENDING and not _recently_asked(session, contact, now=now):
        url = confirm_url(secret, base_url, workspace_id=workspace_id, contact_id=contact.id,
                          email=form.email or "", now=now)
        confirmation = _schedule_confirmation(session, workspace, contact, url, now=now)
    return Subscribed(contact.id, confirmation)


def _recently_asked(session: Session, contact: Contact, *, now: datetime) -> bool:
    return bool(session.scalar(select(func.count()).select_from(Message).where(
        Message.contact_id == contact.id, Message.template == CONFIRM_TEMPLATE,
        Message.created_at > now - RESEND_AFTER)))


def _schedule_confirmation(session: Session, workspace: Workspace, contact: Contact, url: str, *,
                           now: datetime) -> int:
    """A transactional email (consent is pending: that is the point) with the confirm link."""
    message = Message(
        workspace_id=workspace.id, contact_id=contact.id, channel="email", template=CONFIRM_TEMPLATE,
        to_address=contact.email, status=MessageStatus.SCHEDULED.value, transactional=True, attempts=0,
        scheduled_at=now, enqueued_at=now, created_at=now,
        context={"workspace": {"id": workspace.id, "name": workspace.name},
                 "contact": {"external_id": contact.external_id, "email": contact.email,
                             "first_name": contact.first_name},
                 "event": {}, "confirm_url": url},
    )
    session.add(message)
    session.flush()
    record_message(session, message, JournalKind.MESSAGE_SCHEDULED, at=now,
                   detail=f"email: {CONFIRM_TEMPLATE} (double opt-in)")
    defer(session, JobName.DISPATCH_MESSAGES, [message.id])
    return message.id


Confirmation = Literal["confirmed", "already", "changed", "gone"]


@dataclass(frozen=True)
class Confirmed:
    outcome: Confirmation
    workspace_name: str = ""


def confirm_subscription(session: Session, ref: ConfirmRef, *, now: datetime) -> Confirmed:
    """Opt the contact in for email, once; "changed" when the contact's email is no longer the one asked."""
    workspace = session.get(Workspace, ref.workspace_id)
    contact = session.scalar(select(Contact).where(Contact.id == ref.contact_id,
                                                   Contact.workspace_id == ref.workspace_id).with_for_update())
    if workspace is None or contact is None:
        return Confirmed("gone")
    if not contact.email or email_digest(contact.email) != ref.email_digest:
        return Confirmed("changed", workspace.name)
    if not apply_person(session, contact, {"email": OPTED_IN}, "double opt-in confirmation", now=now):
        return Confirmed("already", workspace.name)
    record(session, workspace_id=workspace.id, contact_id=contact.id, kind=JournalKind.SUBSCRIPTION_CONFIRMED, at=now,
           detail="email confirmed through the double opt-in link")
    record_contact_event(session, contact, "subscription_confirmed", {"channel": "email"}, now=now,
                         source="form")
    return Confirmed("confirmed", workspace.name)

"""Routing a send: which channel, which address, and when — the policies applied to one contact.

Used when a journey's send step makes its message (engine/journeys/effects.py) and
again when dispatch falls back to the next channel after a permanent failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.delivery.policies import (
    Recipient,
    candidate_channels,
    cap_hit,
    parse_frequency_caps,
    parse_quiet_hours,
    quiet_until,
    route,
)
from engine.delivery.states import COUNTED
from engine.delivery.templates import Templates
from engine.reasons import Reason
from engine.store.models import ChannelHealth, Contact, Message, Suppression, Workspace


@dataclass(frozen=True)
class Plan:
    """What to write on the message row."""

    channel: str | None  # None: skipped
    address: str | None
    remaining: tuple[str, ...]
    skip_reason: str | None
    send_at: datetime  # now, or when quiet hours end / a frequency cap frees up
    detail: str  # for the timeline
    deferred: bool = False
    held: bool = False  # on a paused channel, for want of another: dispatch holds it until resumed
    reason: Reason | None = None  # why it was skipped, or why it waits (the latest constraint on its time)


def recipient_of(contact: Contact) -> Recipient:
    return Recipient(email=contact.email, phone=contact.phone, messenger_ids=contact.messenger_ids or {},
                     consent=contact.consent or {}, preferred_channel=contact.preferred_channel,
                     topics=contact.topics or {})


def paused_channels(session: Session, workspace_id: str) -> set[str]:
    return set(session.scalars(select(ChannelHealth.channel).where(
        ChannelHealth.workspace_id == workspace_id, ChannelHealth.paused_at.is_not(None))))


def is_suppressed(session: Session, workspace_id: str, channel: str, address: str) -> bool:
    return session.scalar(select(Suppression.id).where(
        Suppression.workspace_id == workspace_id, Suppression.channel == channel,
        Suppression.address == address)) is not None


def recent_marketing(session: Session, contact_id: int, *, since: datetime) -> list[tuple[str, datetime]]:
    """(channel, when) of the contact's marketing messages sent or due since `since`."""
    return [(channel, at) for channel, at in session.execute(
        select(Message.channel, Message.scheduled_at).where(
            Message.contact_id == contact_id, Message.transactional.is_(False), Message.scheduled_at > since,
            Message.status.in_([s.value for s in COUNTED]), Message.channel != "webhook"))]


def plan_send(*, candidates: list[str], recipient: Recipient, transactional: bool, topic: str | None,
              when_capped: str, template: str, templates: Templates, workspace: Workspace, zone: ZoneInfo,
              suppressed: Callable[[str, str], bool], paused: set[str],
              recent: Callable[[], list[tuple[str, datetime]]], now: datetime) -> Plan:
    no_template = {ch: (Reason.NO_TEMPLATE, f"no {ch} template {template!r}")
                   for ch in candidates if not templates.exists(workspace.id, ch, template)}
    unavailable = {**no_template,
                   **{ch: (Reason.CHANNEL_PAUSED, f"{ch} paused after repeated failures") for ch in paused}}
    chosen = route(candidates, recipient, transactional=transactional, topic=topic, suppressed=suppressed,
                   unavailable=unavailable)
    held = False
    if chosen.channel is None and paused:
        # Only a paused channel could take it: it goes there, to be held by dispatch until a
        # person resumes the channel (engine/delivery/channel_health.py), rather than skipped.
        waiting = route(candidates, recipient, transactional=transactional, topic=topic, suppressed=suppressed,
                        unavailable=no_template)
        if waiting.channel is not None:
            chosen, held = waiting, True
    if chosen.channel is None:
        return Plan(None, None, (), chosen.skip_reason[:200], now, chosen.skip_reason, reason=chosen.reason)
    notes = [f"{chosen.channel}: {template}"] + [f"(passed over {p})" for p in chosen.passed_over]
    # Each constraint on the time goes first in the sentence; the reason is the one put there last.
    reason = None
    if held:
        notes.insert(0, f"held: {chosen.channel} is paused after repeated failures, until it is resumed")
        reason = Reason.CHANNEL_PAUSED
    send_at = now
    settings: Mapping[str, Any] = workspace.settings or {}
    if not transactional:
        caps = parse_frequency_caps(settings)
        if caps:
            hit = cap_hit(chosen.channel, recent(), caps, now=now)
            if hit is not None and when_capped == "skip":
                skipped = f"skipped: {hit.reason}"
                return Plan(None, None, (), skipped, now, skipped, reason=Reason.FREQUENCY_CAP)
            if hit is not None:
                send_at = hit.frees_at
                notes.insert(0, f"deferred: {hit.reason} until {hit.frees_at.isoformat()}")
                reason = Reason.FREQUENCY_CAP
        opens = quiet_until(parse_quiet_hours(settings).get(chosen.channel), zone, now=send_at)
        if opens is not None:
            send_at = opens
            local = opens.astimezone(zone).strftime("%H:%M %Z")
            notes.insert(0, f"deferred: quiet hours for {chosen.channel} until {local}")
            reason = Reason.QUIET_HOURS
    return Plan(chosen.channel, chosen.address, chosen.remaining, None, send_at, "; ".join(notes),
                deferred=send_at > now, held=held, reason=reason)


def candidates_for(channel: str, fallback: tuple[str, ...] | list[str], recipient: Recipient,
                   trigger: Mapping[str, Any] | None) -> list[str]:
    reply = (trigger or {}).get("channel")
    return candidate_channels(channel, fallback, recipient, reply_channel=reply if isinstance(reply, str) else None)


def cap_window(workspace: Workspace) -> timedelta | None:
    caps = parse_frequency_caps(workspace.settings or {})
    return timedelta(days=max(days for _, days in caps.values())) if caps else None

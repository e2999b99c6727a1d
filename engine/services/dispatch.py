"""Dispatch: claim scheduled messages, render them, hand them to the channel, record it.

A message is claimed by one conditional UPDATE (scheduled -> sending) whose row
count says who won, so two workers holding the same ids never both send it. The
send is recorded in its own commit right after the provider accepted it; a worker
that dies in between leaves the message in `sending`, which the sweeper marks
`unknown` rather than risking a second copy.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.channels import Channels, OutgoingEmail
from engine.errors import PermanentSendError, TemplateError, TransientSendError
from engine.models import Message, MessageStatus, Workspace
from engine.review_links import review_links
from engine.services.journal import record_message
from engine.signing import sign
from templates.rendering import email_template

MAX_ATTEMPTS = 8


def retry_delay(attempt: int, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter: up to 30 s, 1 min, 2 min ... capped at 1 h."""
    ceiling = min(30 * 2 ** (attempt - 1), 3600)
    return timedelta(seconds=max(5.0, (rng or random).uniform(ceiling / 2, ceiling)))


def dispatch_messages(
    sessions: sessionmaker[Session],
    message_ids: list[int],
    *,
    channels: Channels,
    clock: Callable[[], datetime],
) -> None:
    with sessions.begin() as session:
        now = clock()
        claimed = list(
            session.scalars(
                update(Message)
                .where(
                    Message.id.in_(message_ids),
                    Message.status == MessageStatus.SCHEDULED.value,
                    Message.scheduled_at <= now,
                )
                .values(status=MessageStatus.SENDING.value, claimed_at=now, attempts=Message.attempts + 1)
                .returning(Message.id)
            )
        )
    for message_id in sorted(claimed):
        _send_one(sessions, message_id, channels, clock)


@dataclass(frozen=True)
class Delivered:
    provider_id: str
    summary: str  # for the timeline: the subject, or the webhook's answer
    subject: str | None = None
    template_version: str | None = None


def _deliver(message: Message, signing_secret: str, channels: Channels, *, now: datetime) -> Delivered:
    if message.channel == "webhook":
        body = json.dumps(message.context, default=str).encode()
        receipt = channels.webhook.post(message.to_address or "", body, {
            "Content-Type": "application/json",
            "Rapport-Signature": sign(signing_secret, body, int(now.timestamp())),
            "X-Rapport-Message": str(message.id),
        })
        return Delivered(provider_id=receipt, summary=f"POST {message.to_address}: {receipt}")
    template = email_template(message.template)
    rendered = template.render(_with_links(message, channels))
    provider_id = channels.email.send(
        OutgoingEmail(
            sender=channels.mail_from,
            to=message.to_address or "",
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            headers={"X-Rapport-Workspace": message.workspace_id, "X-Rapport-Message": str(message.id)},
        )
    )
    return Delivered(provider_id, f"{message.channel} to {message.to_address}: {rendered.subject}",
                     rendered.subject, template.version)


def _with_links(message: Message, channels: Channels) -> dict[str, Any]:
    """Add the signed links a template may offer; made at send time, so no secret is stored."""
    context = dict(message.context)
    order_id = (context.get("event") or {}).get("order_id")
    if channels.link_secret and order_id is not None:
        context["review_links"] = review_links(channels.link_secret, channels.base_url,
                                               workspace_id=message.workspace_id, contact_id=message.contact_id,
                                               order_id=str(order_id))
    return context


def _send_one(sessions: sessionmaker[Session], message_id: int, channels: Channels,
              clock: Callable[[], datetime]) -> None:
    """Render and send with no transaction open: no lock is held across network I/O."""
    with sessions() as session:
        message = session.get_one(Message, message_id)
        secret = session.scalar(select(Workspace.signing_secret).where(Workspace.id == message.workspace_id)) or ""
        session.expunge(message)
    outcome: Delivered | Exception
    try:
        outcome = _deliver(message, secret, channels, now=clock())
    except (TemplateError, PermanentSendError, TransientSendError) as exc:
        outcome = exc
    with sessions.begin() as session:
        message = session.get_one(Message, message_id)
        now = clock()
        match outcome:
            case Delivered():
                message.status = MessageStatus.SENT.value
                message.sent_at, message.provider_id, message.error = now, outcome.provider_id, None
                message.subject, message.template_version = outcome.subject, outcome.template_version
                record_message(session, message, "sent", at=now, detail=outcome.summary)
            case TemplateError():
                _fail(session, message, str(outcome), now=now)
            case PermanentSendError():
                _fail(session, message, f"rejected: {outcome}", now=now)
            case TransientSendError() if message.attempts >= MAX_ATTEMPTS:
                _fail(session, message, f"gave up after {message.attempts} attempts: {outcome}", now=now)
            case _:
                _retry_later(session, message, str(outcome), now=now)


def _retry_later(session: Session, message: Message, error: str, *, now: datetime) -> None:
    message.status = MessageStatus.SCHEDULED.value
    message.scheduled_at = now + retry_delay(message.attempts)
    message.enqueued_at = None
    message.error = error
    record_message(session, message, "retrying", at=now,
                   detail=f"attempt {message.attempts}: {error}; next at {message.scheduled_at.isoformat()}")


def _fail(session: Session, message: Message, error: str, *, now: datetime) -> None:
    message.status, message.error = MessageStatus.FAILED.value, error
    record_message(session, message, "failed", at=now, detail=error)

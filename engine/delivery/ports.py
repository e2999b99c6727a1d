"""Channel ports, declared here by their user (the dispatch and receipts services).

Every channel adapter (workers/channels/) is a `MessageSender`: it hands one
`OutgoingMessage` to its provider and returns a `Receipt`, or raises
TransientSendError (retry later, maybe after `retry_after`) or PermanentSendError
(give up; `address_dead` when the address itself is gone: hard bounce, blocked
bot, number not in service) from engine.errors. Before the first byte of the message
itself goes out (SMTP: after 354 to DATA; HTTP: right before the request) it calls
`on_handover()`: dispatch marks the message `sending` there, so a worker killed before
that point leaves a message that is simply sent again. If `on_handover` raises, the
adapter sends nothing and lets the exception through. Once the message is out, a lost
answer is SendInDoubt (the in-doubt policy decides), never a silent retry.

Providers' webhooks are read by a `WebhookReader`, which verifies the signature and
returns what happened as `DeliveryEvent`s (receipts) and `InboundMessage`s (replies,
/start, STOP).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Button:
    text: str
    url: str


@dataclass(frozen=True)
class ProviderTemplate:
    """A pre-approved provider template (WhatsApp outside the 24-hour window)."""

    name: str
    language: str
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered message for one recipient, on one channel."""

    message_id: int
    workspace_id: str
    channel: str
    to: str  # email address, E.164 number, Telegram chat id, WhatsApp id, Viber user id
    text: str
    subject: str = ""  # email
    html: str = ""  # email
    sender: str = ""  # email From, or an SMS sender id
    headers: dict[str, str] = field(default_factory=dict)  # email: List-Unsubscribe, X-Rapport-*
    return_path: str = ""  # email envelope sender (VERP: encodes the message for bounces)
    buttons: tuple[Button, ...] = ()  # messengers: link buttons under the text
    template: ProviderTemplate | None = None  # WhatsApp: send this template instead of free text
    status_callback: str = ""  # where the provider should post delivery receipts


@dataclass(frozen=True)
class Receipt:
    provider_id: str  # the provider's id for the message (Message-ID, SID, message_id, token)
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. SMS segments and encoding


class MessageSender(Protocol):
    def send(self, message: OutgoingMessage, *, on_handover: Callable[[], None] | None = None) -> Receipt:
        """Hand the message to the provider, calling `on_handover` right before the message itself goes
        out; raise TransientSendError / PermanentSendError / SendInDoubt."""
        ...


# Receipt statuses a provider can report; engine/delivery/states.py orders them.
DeliveryStatus = Literal["sent", "delivered", "opened", "clicked", "replied", "bounced", "complained", "failed"]


@dataclass(frozen=True)
class DeliveryEvent:
    """A receipt: what the provider says happened to a message it accepted."""

    channel: str
    status: DeliveryStatus
    receipt_key: str  # unique per receipt, for de-duplication (provider event id or a digest)
    occurred_at: datetime
    provider_id: str | None = None  # find the message by the id the provider gave it…
    message_id: int | None = None  # …or by ours, when the provider echoes it (VERP, metadata)
    detail: str = ""
    address_dead: bool = False  # a hard bounce / unknown number: suppress the address
    address: str | None = None  # the recipient, when the receipt names it


@dataclass(frozen=True)
class InboundMessage:
    """Something a contact sent us: a reply, a command (/start TOKEN, /stop), a STOP keyword."""

    channel: str
    sender: str  # phone number, chat id, WhatsApp id, Viber user id
    text: str
    receipt_key: str
    occurred_at: datetime
    sender_name: str | None = None


@dataclass(frozen=True)
class WebhookBatch:
    deliveries: list[DeliveryEvent] = field(default_factory=list)
    inbound: list[InboundMessage] = field(default_factory=list)
    reply: dict[str, Any] | None = None  # a body the provider expects back (e.g. a verification echo)


class WebhookReader(Protocol):
    def read_webhook(self, *, url: str, headers: Mapping[str, str], body: bytes) -> WebhookBatch:
        """Verify the provider's signature (AuthError if it fails) and parse the payload."""
        ...


class WebhookSender(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], *,
             on_handover: Callable[[], None] | None = None) -> str:
        """POST `body` (calling `on_handover` right before); return a short receipt (e.g. "HTTP 204")."""
        ...


class RateLimiter(Protocol):
    def acquire(self, key: str) -> float:
        """Take one send token for `key` (a provider); return 0.0, or the seconds until one is free."""
        ...


@dataclass(frozen=True)
class Channels:
    """The adapters a dispatcher sends through, and what messages need to say who sent them."""

    senders: Mapping[str, MessageSender]  # channel -> adapter; a channel not here is unavailable
    webhook: WebhookSender
    mail_from: str
    base_url: str = "http://127.0.0.1:8000"  # where links in messages point (unsubscribe, tracking, ratings)
    link_secret: str = ""  # signs those links; empty: no signed links are offered
    bounce_domain: str = ""  # VERP: bounces go to bounce+<message id>-<sig>@bounce_domain; empty: From
    limiter: RateLimiter | None = None  # per-provider token buckets shared by all workers

    def sender(self, channel: str) -> MessageSender | None:
        return self.senders.get(channel)

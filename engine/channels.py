"""Channel ports, declared here by their user (the dispatch service).

Adapters live in workers/; they classify their failures as TransientSendError
(retry later) or PermanentSendError (give up) from engine.errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutgoingEmail:
    sender: str
    to: str
    subject: str
    text: str
    html: str
    headers: dict[str, str] = field(default_factory=dict)


class EmailSender(Protocol):
    def send(self, email: OutgoingEmail) -> str:
        """Hand the email to the provider; return its id (the Message-ID)."""
        ...


class WebhookSender(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> str:
        """POST `body`; return a short receipt (e.g. "HTTP 204")."""
        ...


@dataclass(frozen=True)
class Channels:
    """The adapters a dispatcher sends through, and the From address for email."""

    email: EmailSender
    webhook: WebhookSender
    mail_from: str
    base_url: str = "http://127.0.0.1:8000"  # where links in messages point (rating links)
    link_secret: str = ""  # signs those links; empty: no signed links are offered

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

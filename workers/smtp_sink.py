"""The built-in SMTP sink: a real SMTP server (aiosmtpd) that delivers nowhere.

Embedded mode points SMTP_URL here, and every email it receives is stored in the
outbox table, so a newcomer sees each message that would have gone out at /outbox.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy.orm import Session, sessionmaker

from engine.models import OutboxCapture


def parse_capture(raw: bytes, *, to: str, now: datetime) -> OutboxCapture:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    message_id = msg.get("X-Rapport-Message")
    return OutboxCapture(
        workspace_id=msg.get("X-Rapport-Workspace"),
        message_id=int(message_id) if message_id and message_id.isdigit() else None,
        channel="email",
        to_address=to,
        subject=str(msg.get("Subject", "")),
        text=text.get_content() if text is not None else None,  # type: ignore[attr-defined]
        html=html.get_content() if html is not None else None,  # type: ignore[attr-defined]
        received_at=now,
    )


class SinkHandler:
    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]):
        self.sessions = sessions
        self.clock = clock

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = self.clock()
        with self.sessions.begin() as db:
            for rcpt in envelope.rcpt_tos:
                db.add(parse_capture(envelope.original_content or envelope.content, to=rcpt, now=now))
        return "250 Message accepted for delivery"


def start_sink(sessions: sessionmaker[Session], clock: Callable[[], datetime], *, host: str, port: int) -> Controller:
    controller = Controller(SinkHandler(sessions, clock), hostname=host, port=port, data_size_limit=10 * 2**20)
    controller.start()
    return controller

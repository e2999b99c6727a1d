"""The built-in SMTP sink: a real SMTP server (aiosmtpd) that delivers nowhere.

Embedded mode points SMTP_URL here, and every email it receives is stored in the
outbox table, so a newcomer sees each message that would have gone out at /outbox.

Whatever a message carries is stored (values that do not fit a column are cut or left
out, never a reason to refuse it); when the store itself fails (the database is down or
locked) the sink answers a one-line `451 4.3.0` so the client tries again later. It never
answers a multi-line 500 carrying the error's text: that reply once put a client out of
step with the conversation (issue 10).
"""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy.orm import Session, sessionmaker

from engine.store.models import OutboxCapture

log = logging.getLogger(__name__)

MAX_ID = 2**63 - 1  # outbox_captures.message_id: BIGINT (a 64-bit INTEGER on SQLite)
WORKSPACE_ID_LENGTH = 32
SUBJECT_LENGTH = 998
ADDRESS_LENGTH = 320


def parse_capture(raw: bytes, *, to: str, now: datetime) -> OutboxCapture:
    """The outbox row for one received message; headers that cannot be ours (a message id too large
    for the column, a workspace id too long) are left out rather than failing the store."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    message_id = str(msg.get("X-Rapport-Message", "")).strip()
    workspace_id = str(msg.get("X-Rapport-Workspace", "")).strip()
    return OutboxCapture(
        workspace_id=_storable(workspace_id) if 0 < len(workspace_id) <= WORKSPACE_ID_LENGTH else None,
        message_id=int(message_id) if message_id.isdigit() and int(message_id) <= MAX_ID else None,
        channel="email",
        to_address=_storable(to)[:ADDRESS_LENGTH],
        subject=_storable(str(msg.get("Subject", "")))[:SUBJECT_LENGTH],
        text=_storable(text.get_content()) if text is not None else None,
        html=_storable(html.get_content()) if html is not None else None,
        received_at=now,
    )


def _storable(value: str) -> str:
    """PostgreSQL text cannot hold NUL: shown as the replacement character instead."""
    return value.replace("\x00", "\ufffd")


def _unreadable_capture(raw: bytes, *, to: str, now: datetime, error: Exception) -> OutboxCapture:
    """A message the parser could not take apart is kept as its raw text, saying why."""
    return OutboxCapture(workspace_id=None, message_id=None, channel="email", to_address=_storable(to)[:ADDRESS_LENGTH],
                         subject=f"(unreadable message: {type(error).__name__})",
                         text=_storable(raw.decode("utf-8", errors="replace")), html=None, received_at=now)


class SinkHandler:
    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]):
        self.sessions = sessions
        self.clock = clock

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = self.clock()
        raw = envelope.original_content or envelope.content
        captures = []
        for rcpt in envelope.rcpt_tos:
            try:
                captures.append(parse_capture(raw, to=rcpt, now=now))
            except Exception as exc:  # the email parser's own failures: keep the message anyway
                captures.append(_unreadable_capture(raw, to=rcpt, now=now, error=exc))
        try:
            with self.sessions.begin() as db:
                db.add_all(captures)
        except Exception as exc:  # the database is down, locked, or refused the row: try again later
            log.warning("outbox store failed, answered 451: %s", exc)
            return f"451 4.3.0 Outbox store failed ({type(exc).__name__}), try again later"
        return "250 Message accepted for delivery"

    async def handle_exception(self, error: Exception) -> str:
        """Any other failure inside the sink: one line, try again (aiosmtpd's default is a 500 with the
        error's text, which may span lines)."""
        log.warning("SMTP sink error, answered 451: %r", error)
        return f"451 4.3.0 Sink error ({type(error).__name__}), try again later"


def start_sink(sessions: sessionmaker[Session], clock: Callable[[], datetime], *, host: str, port: int) -> Controller:
    controller = Controller(SinkHandler(sessions, clock), hostname=host, port=port, data_size_limit=10 * 2**20)
    controller.start()
    return controller

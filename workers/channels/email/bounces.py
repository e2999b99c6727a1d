"""Bounces and complaints coming back by email, and the SMTP server that receives them.

Which message: only the signed VERP address says (engine/delivery/verp.py). It is looked for
where each kind of report carries it: the envelope recipient (a DSN is sent to the
envelope sender of the message it reports), the report's own To/Delivered-To, and
for feedback reports (sent to a fixed FBL address) the Original-Mail-From of the
report and the Return-Path of the returned message. Nothing else in a bounce is
trusted to name a message: anyone can write us one.

What happened: flufl.bounce reads the many bounce formats (RFC 3464 DSNs, Exim,
Postfix, qmail...) into temporary and permanent failures; RFC 5965 feedback reports
(ARF) are complaints. The outcome, as `DeliveryEvent`s for engine.tracking.receipts:
- permanent failure -> "bounced"; `address_dead` unless its status code blames the
  message rather than the mailbox (5.7.x policy/spam, 5.6.x content, 5.3.x system,
  5.2.2 mailbox full, 5.2.3 too large), so the address is suppressed only when gone;
- complaint (any feedback type but "not-spam") -> "complained", address dead;
- temporary failure (a 4.x.x "delayed" notice): NO event. The sending MTA is still
  retrying and will send a permanent failure if it gives up, so a delay must not
  move the message or suppress anyone. The bounce server writes it on the message's
  timeline ("bounce_delayed") so it is still visible.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any, Literal

from aiosmtpd.controller import Controller
from flufl.bounce import all_failures
from sqlalchemy.orm import Session, sessionmaker

from engine.consent.preferences import unsubscribe_from_channel
from engine.contacts.journal import JournalKind, record_message
from engine.delivery.ports import DeliveryEvent
from engine.delivery.verp import parse_bounce_address
from engine.links.tokens import verify_mailto_unsubscribe
from engine.store.models import Message
from engine.tracking.receipts import apply_deliveries

log = logging.getLogger(__name__)

STATUS_CODE = re.compile(r"\b([45])\.(\d{1,3})\.(\d{1,3})\b")
MESSAGE_NOT_MAILBOX = ("5.7.", "5.6.", "5.3.", "5.2.2", "5.2.3")  # the message was refused, the mailbox is fine
ADDRESS_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


@dataclass(frozen=True)
class BounceReport:
    """What one bounce message says, before anything is applied."""

    kind: Literal["hard", "soft", "complaint", "none"]  # none: not a bounce (an auto-reply) or not ours
    message_id: int | None
    recipients: tuple[str, ...] = ()
    status: str = ""  # the DSN status code, e.g. "5.1.1", when one is given
    detail: str = ""
    receipt_key: str = ""
    occurred_at: datetime | None = None

    @property
    def address_dead(self) -> bool:
        if self.kind == "complaint":
            return True
        return self.kind == "hard" and not self.status.startswith(MESSAGE_NOT_MAILBOX)

    def deliveries(self) -> list[DeliveryEvent]:
        if self.message_id is None or self.kind not in ("hard", "complaint"):
            return []
        return [DeliveryEvent(channel="email", status="complained" if self.kind == "complaint" else "bounced",
                              receipt_key=self.receipt_key, occurred_at=self.occurred_at or datetime.now(UTC),
                              message_id=self.message_id, detail=self.detail[:500],
                              address_dead=self.address_dead)]


def read_bounce(raw: bytes, *, secret: str, recipients: Sequence[str] = (),
                now: datetime | None = None) -> list[DeliveryEvent]:
    """The receipts a bounce or complaint carries: [] for delays, auto-replies and forgeries."""
    return classify_bounce(raw, secret=secret, recipients=recipients, now=now).deliveries()


def classify_bounce(raw: bytes, *, secret: str, recipients: Sequence[str] = (),
                    now: datetime | None = None) -> BounceReport:
    """Read `raw` (as received); `recipients` are the SMTP envelope's RCPT TO addresses."""
    msg = email.message_from_bytes(raw)  # the compat32 Message that flufl.bounce expects
    message_id = _our_message(msg, secret, recipients)
    key = "bounce:" + hashlib.sha256((msg.get("Message-ID") or "").strip().encode() or raw).hexdigest()[:40]
    occurred_at = _date(msg) or now or datetime.now(UTC)
    if message_id is None:
        return BounceReport("none", None, receipt_key=key, detail="names no message of ours")
    feedback = _feedback_report(msg)
    if feedback is not None:
        feedback_type = (feedback.get("Feedback-Type") or "abuse").strip().lower()
        if feedback_type == "not-spam":
            return BounceReport("none", message_id, receipt_key=key, detail="feedback: not-spam")
        rcpt = parseaddr(feedback.get("Original-Rcpt-To") or "")[1]
        reporter = feedback.get("User-Agent") or parseaddr(msg.get("From") or "")[1] or "a mailbox provider"
        return BounceReport("complaint", message_id, (rcpt,) if rcpt else (), receipt_key=key,
                            occurred_at=occurred_at, detail=f"complaint ({feedback_type}) from {reporter}")
    temporary, permanent = all_failures(msg)
    failed = permanent or temporary
    if not failed:
        return BounceReport("none", message_id, receipt_key=key, detail="no failure reported")
    addresses = tuple(sorted(address.decode("ascii", "replace") for address in failed))
    status, diagnostic = _status(msg)
    kind: Literal["hard", "soft"] = "hard" if permanent else "soft"
    detail = f"{'hard' if permanent else 'soft'} bounce {', '.join(addresses)}" + (f": {status}" if status else "") \
        + (f" {diagnostic}" if diagnostic else "")
    return BounceReport(kind, message_id, addresses, status, detail, key, occurred_at)


def _our_message(msg: email.message.Message, secret: str, recipients: Sequence[str]) -> int | None:
    candidates = list(recipients)
    candidates += [value for name in ADDRESS_HEADERS for value in msg.get_all(name, [])]
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            candidates += [block.get("Original-Mail-From", "") for block in _blocks(part)]
        elif part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            returned = _returned_headers(part)
            if returned is not None:
                candidates += returned.get_all("Return-Path", [])
    for candidate in candidates:
        for _name, address in email.utils.getaddresses([candidate]):
            found = parse_bounce_address(secret, address)
            if found is not None:
                return found
    return None


def _blocks(part: email.message.Message) -> list[email.message.Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, email.message.Message)]
    return [email.message_from_string(payload)] if isinstance(payload, str) else []


def _returned_headers(part: email.message.Message) -> email.message.Message | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload[0] if payload and isinstance(payload[0], email.message.Message) else None
    return email.message_from_string(payload) if isinstance(payload, str) else None


def _feedback_report(msg: email.message.Message) -> email.message.Message | None:
    """The report block of an RFC 5965 feedback report (ARF), if this is one."""
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            blocks = _blocks(part)
            merged = email.message.Message()
            for block in blocks:
                for name, value in block.items():
                    merged[name] = value
            return merged
    return None


def _status(msg: email.message.Message) -> tuple[str, str]:
    """The first permanent (else any) DSN status code and its diagnostic, from the report or its text."""
    found: list[tuple[str, str]] = []
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in _blocks(part):
                code = STATUS_CODE.search(block.get("Status", ""))
                if code:
                    found.append((code.group(0), " ".join((block.get("Diagnostic-Code") or "").split())))
    if not found:  # no DSN part (Exim's and older formats): the SMTP reply quoted in the text
        for part in msg.walk():
            if part.get_content_type() == "text/plain":
                text = part.get_payload(decode=True)
                if isinstance(text, bytes):
                    body = text.decode("utf-8", "replace").split("------ This is a copy", 1)[0]
                    code = STATUS_CODE.search(body)
                    if code:
                        line = next((ln for ln in body.splitlines() if code.group(0) in ln), "")
                        found.append((code.group(0), " ".join(line.split())))
                break
    permanent = [item for item in found if item[0].startswith("5.")]
    return (permanent or found or [("", "")])[0]


def _date(msg: email.message.Message) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(msg.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --- The bounce server ----------------------------------------------------------------------------

def apply_bounce(sessions: sessionmaker[Session], report: BounceReport, *, now: datetime) -> str:
    """Apply one report in one transaction; return a line for the log."""
    if report.message_id is None or report.kind == "none":
        return f"ignored: {report.detail}"
    with sessions.begin() as session:
        message = session.get(Message, report.message_id)
        if message is None:
            return f"ignored: message {report.message_id} no longer exists"
        if report.kind == "soft":
            record_message(session, message, JournalKind.BOUNCE_DELAYED, at=now, detail=report.detail[:500])
            return f"message {message.id}: {report.detail} (recorded; the sender keeps retrying)"
        applied = apply_deliveries(session, message.workspace_id, report.deliveries(), now=now)
    moved = ", ".join(f"{a.status or ('duplicate' if a.duplicate else 'unchanged')}" for a in applied)
    return f"message {report.message_id}: {report.detail} -> {moved}"


def apply_mailto_unsubscribe(sessions: sessionmaker[Session], raw: bytes, *, secret: str, now: datetime) -> str:
    """A mail to the List-Unsubscribe mailto address (unsubscribe@ the bounce domain): the
    signed token in its subject names the message, whose channel the contact leaves."""
    subject = str(email.message_from_bytes(raw).get("Subject", ""))
    ref = verify_mailto_unsubscribe(secret, subject)
    if ref is None:
        return "ignored: unsubscribe mail without a valid token"
    with sessions.begin() as session:
        done = unsubscribe_from_channel(session, ref, now=now, method="mailto")
    return f"message {ref.message_id}: unsubscribed by mail" if done else f"ignored: message {ref.message_id} gone"


@dataclass
class BounceHandler:
    """aiosmtpd handler: accepts mail for the bounce domain(s), reads it, applies it."""

    sessions: sessionmaker[Session]
    secret: str
    clock: Callable[[], datetime]
    domains: tuple[str, ...] = ()  # empty: any domain (the server is only reachable as the bounce MX)
    applied: list[str] = field(default_factory=list)  # log lines, newest last (for tests and debugging)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        domain = address.rpartition("@")[2].lower()
        if self.domains and domain not in self.domains:
            return "550 5.1.2 not a bounce domain served here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        recipients = list(envelope.rcpt_tos)
        try:
            line = await asyncio.get_running_loop().run_in_executor(None, self.process, raw, recipients)
        except Exception:  # the database is away: the sending MTA keeps the bounce and retries
            log.exception("bounce not applied")
            return "451 4.3.0 could not record the bounce, try again later"
        log.info("bounce: %s", line)
        self.applied.append(line)
        return "250 OK"

    def process(self, raw: bytes, recipients: list[str]) -> str:
        now = self.clock()
        if any(r.lower().startswith("unsubscribe@") for r in recipients):
            return apply_mailto_unsubscribe(self.sessions, raw, secret=self.secret, now=now)
        try:
            report = classify_bounce(raw, secret=self.secret, recipients=recipients, now=now)
        except Exception:  # a report no parser can read will not read better when resent: take it, drop it
            log.exception("unreadable bounce")
            return "ignored: unreadable report"
        return apply_bounce(self.sessions, report, now=now)


def start_bounce_server(sessions: sessionmaker[Session], *, secret: str, clock: Callable[[], datetime], host: str,
                        port: int, domains: tuple[str, ...] = ()) -> tuple[Controller, BounceHandler]:
    handler = BounceHandler(sessions, secret, clock, tuple(d.lower() for d in domains if d))
    controller = Controller(handler, hostname=host, port=port, data_size_limit=10 * 2**20)
    controller.start()
    return controller, handler

"""SMTP adapter: the email `MessageSender`, one pooled connection per worker process.

URLs: `smtp://[user:pass@]host[:port]` (STARTTLS when the server offers it) or
`smtps://…` (TLS from the first byte, port 465 by default).

The envelope sender is the message's VERP `return_path` when the dispatcher gives
one (bounces then name the message), else the From address. The wire form comes
from workers/mime.py; with a DKIM key configured, each message is signed over the
headers RFC 8058 asks for (List-Unsubscribe and List-Unsubscribe-Post among them).
"""

from __future__ import annotations

import re
import secrets
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from engine.channels import OutgoingMessage, Receipt
from engine.errors import PermanentSendError, TransientSendError
from engine.settings import Settings
from workers.dkim_signer import DkimSigner
from workers.mime import build_mime, domain_of, envelope_address

# Headers the DKIM signature covers: the ones a receiver shows or acts on. RFC 8058
# requires List-Unsubscribe and List-Unsubscribe-Post to be signed.
DKIM_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
                "List-Unsubscribe", "List-Unsubscribe-Post", "Reply-To")


@dataclass(frozen=True)
class DkimKey:
    """A DKIM signing key: the private key in PEM, published as <selector>._domainkey.<domain>."""

    private_key: bytes
    selector: str
    domain: str

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimKey | None:
        """None unless a key, a selector and a domain are all configured."""
        pem = settings.dkim_private_key
        if not pem and settings.dkim_private_key_file:
            pem = Path(settings.dkim_private_key_file).read_text()
        if not pem:
            return None
        if not settings.dkim_selector or not settings.dkim_domain:
            raise ValueError("DKIM_PRIVATE_KEY needs DKIM_SELECTOR and DKIM_DOMAIN too")
        key = cls(pem.strip().encode() + b"\n", settings.dkim_selector, settings.dkim_domain)
        _signer(key)  # a key that cannot sign is a configuration error at start-up, not at the first send
        return key

    def sign(self, raw: bytes) -> bytes:
        """`raw` with a DKIM-Signature header in front (relaxed/relaxed, rsa-sha256)."""
        return _signer(self).sign(raw)


@lru_cache(maxsize=8)  # the key is parsed once, not for every message
def _signer(key: DkimKey) -> DkimSigner:
    return DkimSigner(key.private_key, selector=key.selector, domain=key.domain, headers=DKIM_HEADERS)


class SmtpSender:
    """Sends over pooled connections: each send takes an idle connection (or opens one) and
    puts it back, so connections outlive the threads that use them (dispatch lanes live
    for one job) and a worker holds at most as many as it sends on at once."""

    IDLE_LIMIT = 60.0  # seconds: an idle connection older than this is closed, not reused (servers drop them)

    def __init__(self, url: str, *, timeout: float = 30.0, dkim: DkimKey | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {parts.scheme}://")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.dkim = dkim
        self._idle: list[tuple[smtplib.SMTP, float]] = []  # (connection, when it was put back)
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None  # made once, when first needed: loading the CA store is slow

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _connect(self) -> smtplib.SMTP:
        conn: smtplib.SMTP
        if self.implicit_tls:
            conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls_context())
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            conn.ehlo()
            if conn.has_extn("starttls"):
                conn.starttls(context=self._tls_context())
                conn.ehlo()
        if self.username:
            conn.login(self.username, self.password or "")
        return conn

    def _checkout(self) -> smtplib.SMTP:
        """The most recently used idle connection that is fresh enough, else a new one."""
        stale = []
        with self._lock:
            conn = None
            while self._idle:
                candidate, since = self._idle.pop()
                if time.monotonic() - since <= self.IDLE_LIMIT:
                    conn = candidate
                    break
                stale.append(candidate)
        for old in stale:
            _quit(old)
        return conn if conn is not None else self._connect()

    def _checkin(self, conn: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append((conn, time.monotonic()))

    def close(self) -> None:
        """Close every idle connection (those in use close when their send fails or are put back)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _since in idle:
            _quit(conn)

    def send(self, message: OutgoingMessage) -> Receipt:
        message_id = f"<{message.message_id}.{secrets.token_hex(8)}@{domain_of(message.sender)}>"
        raw = build_mime(message, message_id)
        if self.dkim is not None:
            raw = self.dkim.sign(raw)
        envelope_from = envelope_address(message.return_path or message.sender)
        self._deliver(envelope_from, envelope_address(message.to), raw)
        return Receipt(provider_id=message_id)

    def _deliver(self, envelope_from: str, to: str, raw: bytes) -> None:
        payload = data_payload(raw, crlf=True)  # built by build_mime
        for attempt in (1, 2):  # a pooled connection may have been dropped by the server
            conn = None
            try:
                conn = self._checkout()
                _send_one(conn, envelope_from, to, payload)
                self._checkin(conn)
                return
            except smtplib.SMTPServerDisconnected as exc:
                if attempt == 2:
                    raise TransientSendError(f"SMTP server disconnected: {exc}") from None
            except smtplib.SMTPRecipientsRefused as exc:
                self._keep_if_open(conn)
                code, reason = next(iter(exc.recipients.values()))
                raise _classify(code, reason) from None
            except smtplib.SMTPSenderRefused as exc:  # our MAIL FROM was refused: never the recipient's fault
                if exc.smtp_code == 421 and attempt == 1:
                    continue  # an idle connection the server timed out ("421 4.4.2 timeout"): nothing was sent
                self._keep_if_open(conn)
                error = f"SMTP {exc.smtp_code} sender {exc.sender} refused: {_text(exc.smtp_error)}"
                raise PermanentSendError(error) if exc.smtp_code >= 500 else TransientSendError(error) from None
            except smtplib.SMTPResponseException as exc:
                self._keep_if_open(conn)
                raise _classify(exc.smtp_code, exc.smtp_error) from None
            except (TimeoutError, OSError, smtplib.SMTPException) as exc:
                if conn is not None:
                    conn.close()
                raise TransientSendError(f"SMTP connection failed: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _keep_if_open(self, conn: smtplib.SMTP | None) -> None:
        """After a refusal the transaction was reset and the connection serves on (unless the server closed it)."""
        if conn is not None and conn.sock is not None:
            self._checkin(conn)


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()


def data_payload(raw: bytes, *, crlf: bool = False) -> bytes:
    """What follows the DATA command: CRLF line ends, a dot doubled at the start of each line,
    the closing CRLF.CRLF (RFC 5321 4.5.2). smtplib does the same with two regular-expression
    passes over the message, a fifth of the sending cost of a 20 KB email. `crlf=True` says
    the lines end in CRLF already (workers/mime.py guarantees it, and the DKIM
    header is written with CRLF): then it is one replace."""
    if not crlf and (raw.count(b"\n") != raw.count(b"\r\n") or raw.count(b"\r") != raw.count(b"\r\n")):
        raw = _LINE_END.sub(b"\r\n", raw)  # bare CR or LF (a signature header, a caller's own raw form)
    if raw.startswith(b"."):
        raw = b"." + raw
    raw = raw.replace(b"\r\n.", b"\r\n..")
    return raw + (b".\r\n" if raw.endswith(b"\r\n") else b"\r\n.\r\n")


_LINE_END = re.compile(rb"\r\n|\r|\n")


# "550 5.1.1 user unknown", "553 no such mailbox": the address is gone, not the message refused.
DEAD_ADDRESS_CODES = (550, 551, 553)
DEAD_ENHANCED = re.compile(r"\b5\.(1\.\d{1,3}|2\.1)\b")
DEAD_WORDS = re.compile(
    r"no such (user|mailbox|recipient|address)|(user|mailbox|recipient|address) (unknown|not found|does not exist"
    r"|doesn't exist|disabled|unavailable)|unknown (user|recipient|mailbox)|does not exist|invalid (recipient|mailbox)"
    r"|not our customer|account (is )?disabled",
    re.IGNORECASE,
)


def _send_one(conn: smtplib.SMTP, envelope_from: str, to: str, payload: bytes) -> None:
    """One message over an open connection: MAIL, RCPT, DATA and `payload` (from data_payload).

    Like smtplib's sendmail for one recipient, without its per-call address parsing
    (quoteaddr runs email's slow parseaddr twice a message; the addresses come bare and
    ASCII from envelope_address) and its regular expressions over the body. Errors are
    raised as sendmail raises them; after a refusal the transaction is reset."""
    code, reply = conn.docmd("MAIL", f"FROM:<{envelope_from}>")
    if code != 250:
        _abandon(conn, code)
        raise smtplib.SMTPSenderRefused(code, reply, envelope_from)
    code, reply = conn.docmd("RCPT", f"TO:<{to}>")
    if code not in (250, 251):
        _abandon(conn, code)
        raise smtplib.SMTPRecipientsRefused({to: (code, reply)})
    code, reply = conn.docmd("DATA")
    if code == 354:
        conn.send(payload)
        code, reply = conn.getreply()
    if code != 250:
        _abandon(conn, code)
        raise smtplib.SMTPDataError(code, reply)


def _abandon(conn: smtplib.SMTP, code: int) -> None:
    """Reset the transaction after a refusal; 421 means the server is closing the connection."""
    if code != 421:
        try:
            conn.rset()
            return
        except (smtplib.SMTPException, OSError):
            pass
    conn.close()


def _classify(code: int, reason: bytes | str) -> TransientSendError | PermanentSendError:
    """5xx is permanent (dead address when the reply says the mailbox is gone); the rest is transient."""
    text = _text(reason)
    error = f"SMTP {code} {text}"
    if not 500 <= code < 600:
        return TransientSendError(error)
    policy = re.search(r"\b5\.7\.\d", text) is not None  # blocked for spam or policy: the address may be fine
    dead = not policy and (code == 551 or DEAD_ENHANCED.search(text) is not None  # 551: user not local (moved)
                           or (code in DEAD_ADDRESS_CODES and DEAD_WORDS.search(text) is not None))
    return PermanentSendError(error, address_dead=dead)


def _text(reason: bytes | str) -> str:
    return reason.decode(errors="replace") if isinstance(reason, bytes) else reason

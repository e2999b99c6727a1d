"""SMTP adapter: the email `MessageSender`, over pooled connections.

URLs: `smtp://[user:pass@]host[:port]` (STARTTLS when the server offers it) or
`smtps://…` (TLS from the first byte, port 465 by default).

The envelope sender is the message's VERP `return_path` when the dispatcher gives
one (bounces then name the message), else the From address. The wire form comes
from workers/channels/email/mime.py; with a DKIM key configured, each message is signed over the
headers RFC 8058 asks for (List-Unsubscribe and List-Unsubscribe-Post among them).

The conversation is smtplib's reply reading, strict (issue 10: a reply whose bare-LF tail
was read as the next replies once put the client a step behind, and one customer's body
went to another). Each command's reply must be one of those its stage allows; anything
else closes the connection. A message is sent only after 250 to its own end of data;
once the whole body has been written, a lost answer is SendInDoubt, never a resend.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

from engine.delivery.ports import OutgoingMessage, Receipt
from engine.errors import PermanentSendError, SendInDoubt, TransientSendError
from engine.settings import Settings
from workers.channels.email.dkim import DkimSigner
from workers.channels.email.mime import build_mime, envelope_address, stable_message_id

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
    for one job) and a worker holds at most as many as it sends on at once.

    The conversation is smtplib's: its reply reading, made stricter (_StrictReplies). A
    connection goes back to the pool only when every reply on it was the one expected at
    its stage; anything else closes it, and a pooled connection with anything unsolicited
    waiting on it is closed instead of reused."""

    IDLE_LIMIT = 60.0  # seconds: an idle connection older than this is closed, not reused (servers drop them)

    def __init__(self, url: str, *, timeout: float = 30.0, dkim: DkimKey | None = None,
                 tls: ssl.SSLContext | None = None):
        """`tls`: what verifies the server's certificate; by default the system's CAs (a test trusts its own)."""
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
        self._tls = tls  # the default is made once, when first needed: loading the CA store is slow

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _connect(self) -> smtplib.SMTP:
        """A new connection, greeted, EHLO'd (STARTTLS when offered) and logged in; any refusal or
        unreadable reply on the way is a TransientSendError (it is not the message's fault)."""
        conn: smtplib.SMTP | None = None
        try:
            if self.implicit_tls:
                conn = _TlsConnection(self.host, self.port, timeout=self.timeout, context=self._tls_context())
            else:
                conn = _Connection(self.host, self.port, timeout=self.timeout)
            _expect(conn, "EHLO", conn.ehlo(), 250)
            if not self.implicit_tls and conn.has_extn("starttls"):
                _expect(conn, "STARTTLS", conn.starttls(context=self._tls_context()), 220)
                _expect(conn, "EHLO", conn.ehlo(), 250)
            if self.username:
                conn.login(self.username, self.password or "")
            if not _nothing_waiting(conn):  # more lines than the replies asked for: out of step from the start
                raise smtplib.SMTPResponseException(-1, "unsolicited reply lines after the greeting")
            return conn
        except (OSError, smtplib.SMTPException) as exc:
            if conn is not None:
                conn.close()
            raise TransientSendError(f"SMTP connection failed: {_describe(exc)}") from None

    def _checkout(self) -> smtplib.SMTP:
        """The most recently used idle connection that is fresh enough and quiet, else a new one."""
        while True:
            with self._lock:
                if not self._idle:
                    break
                conn, since = self._idle.pop()
            if time.monotonic() - since > self.IDLE_LIMIT:
                _quit(conn)
            elif _nothing_waiting(conn):
                return conn
            else:  # a reply nobody asked for: whatever the server thinks we said, we cannot tell
                conn.close()
        return self._connect()

    def _checkin(self, conn: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append((conn, time.monotonic()))

    def close(self) -> None:
        """Close every idle connection (those in use close when their send fails or are put back)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _since in idle:
            _quit(conn)

    def send(self, message: OutgoingMessage, *, on_handover: Callable[[], None] | None = None) -> Receipt:
        """Deliver one message. `on_handover` is called exactly once, when the server has answered
        354 to DATA and before the first byte of the body is written; if it raises, nothing of the
        body is sent, the connection is closed (which aborts the transaction: RSET cannot be sent
        in the middle of DATA) and its exception propagates unchanged. It is not called when the
        message is refused or the connection fails before that point.

        Raises TransientSendError / PermanentSendError when the server refused the message or
        could not be reached (nothing delivered), SendInDoubt when the whole body was written
        and its answer was lost (the message may have been delivered: never resent here)."""
        message_id = stable_message_id(message)
        raw = build_mime(message, message_id)
        if self.dkim is not None:
            raw = self.dkim.sign(raw)
        envelope_from = envelope_address(message.return_path or message.sender)
        self._deliver(envelope_from, envelope_address(message.to), raw, on_handover)
        return Receipt(provider_id=message_id)

    def _deliver(self, envelope_from: str, to: str, raw: bytes, on_handover: Callable[[], None] | None) -> None:
        payload = data_payload(raw, crlf=True)  # built by build_mime
        for attempt in (1, 2):  # a pooled connection may have been dropped by the server
            conn = self._checkout()
            try:
                _transaction(conn, envelope_from, to, payload, on_handover)
            except _Reconnect as exc:  # nothing was sent: the connection was gone or closing
                if attempt == 2:
                    raise TransientSendError(str(exc)) from None
                continue
            except (TransientSendError, PermanentSendError):
                if conn.sock is not None:  # a refusal answered by a clean RSET: the connection serves on
                    self._checkin(conn)
                raise
            except BaseException:  # anything else (the hand-over's error, an interrupt): a reply may be due
                conn.close()
                raise
            self._checkin(conn)
            return


class _Reconnect(Exception):
    """MAIL found the connection dropped or closing (421): nothing was sent, try a new one."""


def _transaction(conn: smtplib.SMTP, envelope_from: str, to: str, payload: bytes,
                 on_handover: Callable[[], None] | None) -> None:
    """One message over an open connection: MAIL, RCPT, DATA and `payload` (from data_payload).

    Like smtplib's sendmail for one recipient, without its per-call address parsing
    (quoteaddr runs email's slow parseaddr twice a message; the addresses come bare and
    ASCII from envelope_address) and its regular expressions over the body. Returns only
    after 250 to the end of this message's own data. Raises with the connection either
    closed or reset by a clean RSET (then it may serve the next message)."""
    code, reply = _command(conn, "MAIL", f"FROM:<{envelope_from}>")
    if code != 250:
        if code == 421:
            conn.close()
            raise _Reconnect(f"SMTP 421 to MAIL FROM: {_text(reply)}")
        _refused(conn, "MAIL FROM", code, reply, sender=envelope_from)
    code, reply = _command(conn, "RCPT", f"TO:<{to}>")
    if code not in (250, 251):
        _refused(conn, "RCPT TO", code, reply)
    code, reply = _command(conn, "DATA")
    if code != 354:
        _refused(conn, "DATA", code, reply)
    if not _nothing_waiting(conn):  # more than the 354 arrived: its meaning is not ours to guess
        conn.close()
        raise TransientSendError("SMTP server answered DATA with more than one reply; connection closed")
    if on_handover is not None:
        try:
            on_handover()
        except BaseException:
            conn.close()  # the server is reading a body now: only a hang-up (no end-of-data) abandons it
            raise
    _send_body(conn, payload)


def _command(conn: smtplib.SMTP, verb: str, args: str = "") -> tuple[int, bytes]:
    """Send one command and read its reply; a dropped connection at MAIL (the first command on a
    pooled connection) is _Reconnect, any other failure a TransientSendError."""
    try:
        return conn.docmd(verb, args)
    except smtplib.SMTPServerDisconnected as exc:
        conn.close()
        if verb == "MAIL":
            raise _Reconnect(f"SMTP server disconnected: {exc}") from None
        raise TransientSendError(f"SMTP server disconnected at {verb}: {exc}") from None
    except (OSError, smtplib.SMTPException) as exc:  # a timeout, a reset, a reply line too long
        conn.close()
        raise TransientSendError(f"SMTP connection failed at {verb}: {_describe(exc)}") from None


def _send_body(conn: smtplib.SMTP, payload: bytes) -> None:
    """Write the body and read the answer to its end-of-data: 250 or a refusal, else SendInDoubt."""
    sock = conn.sock
    assert sock is not None
    try:
        sock.sendall(payload)
    except OSError as exc:
        # The body ends with CRLF.CRLF, which this write never finished: the server cannot have
        # accepted the message (a transaction without its end-of-data is dropped), so it may go again.
        conn.close()
        raise TransientSendError(f"SMTP connection lost before the end of the body: {_describe(exc)}") from None
    try:
        code, reply = conn.getreply()
    except (OSError, smtplib.SMTPException) as exc:
        conn.close()
        raise SendInDoubt(f"SMTP connection lost after the whole message was sent: {_describe(exc)}") from None
    if code == 250:
        return
    if not _is_refusal(code):
        conn.close()
        raise SendInDoubt(f"SMTP server answered the end of the message with {_unexpected(code, reply)}")
    if code == 421:
        conn.close()
    raise classify_reply(code, reply)  # the transaction is over either way: no RSET needed


def _refused(conn: smtplib.SMTP, stage: str, code: int, reply: bytes, *, sender: str = "") -> NoReturn:
    """A reply other than the expected one before any of the body was sent. A 4xx/5xx is the
    server refusing (reset the transaction, keep the connection if RSET answers 250); anything
    else is a conversation out of step, and the connection is closed."""
    if not _is_refusal(code):
        conn.close()
        raise TransientSendError(f"SMTP server answered {stage} with {_unexpected(code, reply)}; connection closed")
    if code == 421:
        conn.close()
    else:
        _reset(conn)
    if sender:  # our MAIL FROM was refused: never the recipient's fault
        error = f"SMTP {code} sender {sender} refused: {_text(reply)}"
        raise PermanentSendError(error) if code >= 500 else TransientSendError(error)
    raise classify_reply(code, reply)


def _reset(conn: smtplib.SMTP) -> None:
    """RSET after a refusal; the connection stays open only if it answered exactly 250."""
    try:
        code, _reply = conn.docmd("RSET")
    except (OSError, smtplib.SMTPException):
        code = -1
    if code != 250:
        conn.close()


def _is_refusal(code: int) -> bool:
    return 400 <= code < 600


def _unexpected(code: int, reply: bytes) -> str:
    if code == -1:
        return f"a reply it could not read ({_text(reply)[:200]!r})"
    return f"an unexpected {code} ({_text(reply)[:200]})"


def _expect(conn: smtplib.SMTP, stage: str, answer: tuple[int, bytes], code: int) -> None:
    if answer[0] != code:
        raise smtplib.SMTPResponseException(answer[0], f"to {stage}: {_text(answer[1])}")


def _nothing_waiting(conn: smtplib.SMTP) -> bool:
    """True when no byte the server sent is waiting unread, in smtplib's buffer or on the socket.

    One non-blocking read: the buffered reader returns what it holds without a system call,
    else tries the socket once. A closed connection reads as nothing; the next command finds out."""
    sock, file = conn.sock, conn.file
    if sock is None:
        return False
    if file is None:  # nothing was ever read on it
        return True
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        return not file.peek(1)
    except (BlockingIOError, ssl.SSLWantReadError):
        return True
    except OSError:
        return False
    finally:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass


class _StrictReplies(smtplib.SMTP):
    """smtplib's reply reading, refusing what it lets pass: a reply whose lines disagree on the
    code, lack the separator after it, carry a code outside 2xx-5xx, or end in anything but CRLF
    (RFC 5321 4.2; a bare LF is how a reply's tail turns into the next "reply") reads as code -1
    (unparsable), like a line smtplib itself cannot parse."""

    file: Any

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            self.file = _LineLog(self.sock.makefile("rb"))
        lines: list[bytes] = self.file.lines if isinstance(self.file, _LineLog) else []
        lines.clear()
        code, reply = super().getreply()
        if code != -1 and lines and not _well_formed(lines):
            return -1, reply
        return code, reply


def _well_formed(lines: list[bytes]) -> bool:
    code = lines[-1][:3]
    if not (code.isdigit() and b"2" <= code[:1] <= b"5" and code[1:2] <= b"5"):
        return False
    if lines[-1][3:4] not in (b" ", b"\r") or not all(line.endswith(b"\r\n") for line in lines):
        return False
    return all(line[:3] == code and line[3:4] == b"-" for line in lines[:-1])


class _LineLog:
    """smtplib's socket file, keeping the lines of the reply being read (for _StrictReplies)."""

    __slots__ = ("file", "lines")

    def __init__(self, file: Any):
        self.file = file
        self.lines: list[bytes] = []

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self.file.readline(limit)
        self.lines.append(line)
        return line

    def peek(self, size: int = 0) -> bytes:
        return self.file.peek(size)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.file.close()


class _Connection(_StrictReplies, smtplib.SMTP):
    pass


class _TlsConnection(_StrictReplies, smtplib.SMTP_SSL):
    pass


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()


def data_payload(raw: bytes, *, crlf: bool = False) -> bytes:
    """What follows the DATA command: CRLF line ends, a dot doubled at the start of each line,
    the closing CRLF.CRLF (RFC 5321 4.5.2). smtplib does the same with two regular-expression
    passes over the message, a fifth of the sending cost of a 20 KB email. `crlf=True` says
    the lines end in CRLF already (workers/channels/email/mime.py guarantees it, and the DKIM
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


def classify_reply(code: int, reason: bytes | str) -> TransientSendError | PermanentSendError:
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return str(exc) or type(exc).__name__

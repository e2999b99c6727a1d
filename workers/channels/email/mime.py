"""The wire form of an email, written directly: multipart/alternative, text then HTML.

The stdlib builders cost more than the send (EmailMessage ~700 messages/s, email.mime
~1,900/s, DESIGN.md); this writes the same bytes with string joins and the C encoders
in `binascii`, tens of thousands per second. What it must get right, and the tests
check by parsing the output back with the stdlib's strict parser:
- CRLF everywhere, no line over 998 octets (header lines folded at 78 where they can
  be, bodies quoted-printable with soft breaks at 76);
- non-ASCII subjects and display names as RFC 2047 encoded words, each under 76
  characters and cut on character boundaries, so the header stays ASCII;
- display names with specials (commas, quotes) quoted, so the address is not lost;
- header values cannot inject headers (CR and LF become spaces).
"""

from __future__ import annotations

import binascii
import hashlib
import re
import secrets
import time
from email.utils import formatdate, parseaddr
from functools import lru_cache

from engine.delivery.ports import OutgoingMessage
from engine.errors import PermanentSendError

CRLF = "\r\n"
FOLD_AT = 78  # RFC 5322's SHOULD; 998 is the MUST, which only an unbreakable word can reach
LONGEST_WORD = 900  # a longer word in a header is written as encoded words, so no line passes 998
ENCODED_WORD_BYTES = 45  # 45 bytes -> 60 base64 chars -> "=?utf-8?b?...?=" of 72 characters
NAME_AND_ADDRESS = re.compile(r"^(.*?)\s*<([^<>]+)>\s*$", re.DOTALL)
ATEXT_AND_SPACE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~ ")


def build_mime(message: OutgoingMessage, message_id: str, *, extra_headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """The whole message, ready for SMTP DATA (smtplib adds the dot-stuffing)."""
    lines = [
        header("From", format_address(message.sender)),
        header("To", format_address(message.to)),
        header("Subject", message.subject),
        f"Date: {rfc5322_date()}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
    ]
    lines += [header(name, value) for name, value in extra_headers]
    lines += [header(name, value) for name, value in message.headers.items()]
    if not message.html:
        lines += ['Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: quoted-printable", ""]
        return (CRLF.join(lines) + CRLF).encode("ascii") + quoted_printable(message.text)
    boundary = f"=_rapport_{secrets.token_hex(12)}"  # "=_" never occurs in quoted-printable text
    lines += [f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"', ""]
    part_head = ('--{b}\r\nContent-Type: text/{kind}; charset="utf-8"\r\n'
                 'Content-Transfer-Encoding: quoted-printable\r\n\r\n')
    return b"".join((
        (CRLF.join(lines) + CRLF).encode("ascii"),
        part_head.format(b=boundary, kind="plain").encode("ascii"),
        quoted_printable(message.text),
        CRLF.encode("ascii"),  # the CRLF before a delimiter belongs to the delimiter (RFC 2046)
        part_head.format(b=boundary, kind="html").encode("ascii"),
        quoted_printable(message.html),
        f"{CRLF}--{boundary}--{CRLF}".encode("ascii"),
    ))


def quoted_printable(text: str) -> bytes:
    """UTF-8, CRLF line ends, quoted-printable (C encoder: soft breaks at 76, '=' and 8-bit escaped)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    data = text.replace("\n", CRLF).encode("utf-8")
    # b2a_qp writes its soft line breaks with CRLF only if the first line end it sees is
    # one: a text of one (long) line gets a CRLF to see, taken off again after.
    if b"\n" not in data:
        return binascii.b2a_qp(data + b"\r\n", istext=True, header=False)[:-2]
    return binascii.b2a_qp(data, istext=True, header=False)


_date_cache: tuple[int, str] = (0, "")


def rfc5322_date() -> str:
    """The Date header value, made once a second (formatdate is the slowest header)."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def header(name: str, value: str) -> str:
    """One header field, folded; unstructured non-ASCII text becomes encoded words."""
    if "\r" in value or "\n" in value:  # a header value never spans lines it did not fold itself
        value = " ".join(value.splitlines())
    if not value.isascii() or (len(value) > LONGEST_WORD and any(len(w) > LONGEST_WORD for w in value.split(" "))):
        # Non-ASCII text, or a word no fold can break (RFC 5322's hard limit is 998 a line):
        # encoded words, which split anywhere.
        return fold(name, encoded_words(value, first=FOLD_AT - len(name) - 2))
    line = f"{name}: {value}"
    if len(line) <= FOLD_AT:
        return line
    return fold(name, value.split(" "))


def fold(name: str, words: list[str]) -> str:
    """Join words with spaces, breaking lines (CRLF + space) before one would pass 78 characters."""
    lines: list[str] = []
    current = f"{name}:"
    for word in words:
        if not word:
            continue
        if len(current) + 1 + len(word) > FOLD_AT and current != f"{name}:":
            lines.append(current)
            current = " " + word
        else:
            current += " " + word
    lines.append(current)
    return "\r\n".join(lines)


def encoded_words(text: str, *, first: int = FOLD_AT) -> list[str]:
    """RFC 2047 'b' encoded words of at most 45 UTF-8 bytes each, never splitting a character.

    `first` is the room on the header's first line, so that line stays within 78 too.
    """
    data = text.encode("utf-8")
    words: list[str] = []
    start = 0
    limit = max(3, min(ENCODED_WORD_BYTES, (first - 13) // 4 * 3))
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and end > start + 1 and 0x80 <= data[end] < 0xC0:
            end -= 1  # back off to the first byte of a character
        words.append(f"=?utf-8?b?{binascii.b2a_base64(data[start:end], newline=False).decode('ascii')}?=")
        start, limit = end, ENCODED_WORD_BYTES
    return words


def format_address(value: str) -> str:
    """A mailbox for From/To: `addr`, `Name <addr>`, `"Doe, Jane" <addr>` or `=?utf-8?b?...?= <addr>`."""
    if value.isascii() and "<" not in value and " " not in value and "," not in value and "@" in value:
        return value  # the common bare address: nothing to parse or quote
    return _format_mailbox(value)


@lru_cache(maxsize=256)  # the From address is the same for every message of a workspace
def _format_mailbox(value: str) -> str:
    name, addr = parseaddr(value)
    if "@" not in addr and (bracketed := NAME_AND_ADDRESS.match(value)):
        # 'Doe, Jane <jane@x>' is a list to a strict parser; people write it meaning one name.
        name, addr = bracketed[1].strip().strip('"'), bracketed[2].strip()
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise PermanentSendError(f"not an email address: {value!r}")
    if not local.isascii():
        raise PermanentSendError(f"{addr!r} needs SMTPUTF8, which is not supported")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise PermanentSendError(f"{addr!r} has an invalid domain") from None
    addr = f"{local}@{domain}"
    if not name:
        return addr
    if not name.isascii():
        return " ".join(encoded_words(name)) + f" <{addr}>"
    if set(name) <= ATEXT_AND_SPACE:
        return f"{name} <{addr}>"
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}" <{addr}>'


def envelope_address(value: str) -> str:
    """The bare address for MAIL FROM / RCPT TO (the same IDNA form as the headers use)."""
    mailbox = format_address(value)
    return mailbox[mailbox.rfind("<") + 1 : -1] if mailbox.endswith(">") else mailbox


def stable_message_id(message: OutgoingMessage) -> str:
    """The Message-ID, `<message id>.<digest>@<sender's domain>`: the same for every attempt at one
    message (a resend of a message whose first copy may have arrived carries the same id, and
    mailbox providers that fold duplicates show it once), different for every message, workspace
    and sending domain. Derived, not random, for that reason."""
    domain = domain_of(message.sender)
    seed = f"{message.workspace_id}\x00{message.message_id}\x00{domain}".encode()
    return f"<{message.message_id}.{hashlib.sha256(seed).hexdigest()[:16]}@{domain}>"


@lru_cache(maxsize=256)  # parseaddr is slow, and the sender is the same for every message
def domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "rapport.localhost"

"""DKIM signatures (RFC 6376, relaxed/relaxed canonicalization) made by OpenSSL through `cryptography`.

dkimpy parses the PEM key and does the RSA arithmetic in pure Python on every call,
about 9 ms for a 20 KB email with a 2,048-bit key: with DKIM on, signing would cost
more than everything else dispatch does. Here the key is loaded once, OpenSSL signs,
and the message is canonicalized with C-level byte operations: about 0.8 ms, most of
it the RSA signature itself (bench/dkim.py measures both). RSA keys, rsa-sha256: what every receiver verifies.
Receivers verify the result; the tests do so with dkimpy's verifier.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_WSP_RUN = re.compile(rb"[ \t]+")
_SPACE_RUN = re.compile(rb"  +")  # the same without tabs: a literal prefix, twenty times faster
_WSP_BEFORE_CRLF = re.compile(rb"[ \t]+\r\n")
FOLD_AT = 78


class DkimSigner:
    """Signs messages for `domain` with the key published at `<selector>._domainkey.<domain>`."""

    def __init__(self, private_key_pem: bytes, *, selector: str, domain: str, headers: Iterable[str]):
        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the DKIM key is not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the DKIM key must be an RSA key")
        if key.key_size < 1024:
            raise ValueError(f"receivers refuse a {key.key_size}-bit DKIM key: use 2,048 bits")
        self.key = key
        self.selector, self.domain = selector, domain
        self.headers = tuple(headers)

    def sign(self, raw: bytes, *, now: float | None = None) -> bytes:
        """`raw` (CRLF line ends) with a DKIM-Signature header in front, over the configured
        headers that the message has (the last of each, as verifiers pick them) and its body."""
        head, blank, body = raw.partition(b"\r\n\r\n")
        if not blank:  # a message of headers only
            head, body = raw.removesuffix(b"\r\n"), b""
        fields = _fields(head)
        names = [name for name in self.headers if name.lower().encode() in fields]
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
        tags = ["v=1;", "a=rsa-sha256;", "c=relaxed/relaxed;", f"d={self.domain};", f"s={self.selector};",
                f"t={int(time.time() if now is None else now)};", f"h={':'.join(names).lower()};",
                f"bh={body_hash};"]
        field = _folded("DKIM-Signature", tags) + "\r\n b="
        # What is signed: the chosen headers, then this header as a verifier will see it once it
        # empties the b= value, all canonicalized.
        signed = b"".join(relaxed_header(*fields[name.lower().encode()]) for name in names)
        signed += relaxed_header(*field.encode("ascii").split(b":", 1))[:-2]  # without its CRLF
        signature = base64.b64encode(self._sign(signed)).decode("ascii")
        chunks = "\r\n ".join(signature[at:at + 72] for at in range(0, len(signature), 72))
        return f"{field}{chunks}\r\n".encode("ascii") + raw

    def _sign(self, data: bytes) -> bytes:
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _fields(head: bytes) -> dict[bytes, tuple[bytes, bytes]]:
    """Header name (lowercase) -> (name, value) of its last occurrence, continuation lines kept."""
    fields: dict[bytes, tuple[bytes, bytes]] = {}
    name = value = b""
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and name:
            value += b"\r\n" + line
            fields[name.lower()] = (name, value)
            continue
        name, _colon, value = line.partition(b":")
        if name:
            fields[name.strip().lower()] = (name.strip(), value)
    return fields


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2: lowercase name, unfolded, whitespace runs as one space, none around the colon."""
    value = _WSP_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value + b"\r\n"


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: no whitespace at line ends, runs of it as one space, no empty lines at the end."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    # The substitutions only where they change something: a quoted-printable body seldom
    # has whitespace to touch, and a regex pass stops at every space.
    if b" \r\n" in body or b"\t" in body:
        body = _WSP_BEFORE_CRLF.sub(b"\r\n", body)
    if b"\t" in body:
        body = _WSP_RUN.sub(b" ", body)
    elif b"  " in body:
        body = _SPACE_RUN.sub(b" ", body)
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def _folded(name: str, tags: list[str]) -> str:
    """`name: tag tag ...`, folded before a tag that would pass 78 characters (a fold at a
    space canonicalizes back to that space)."""
    lines, line = [], f"{name}:"
    for tag in tags:
        if len(line) + 1 + len(tag) > FOLD_AT and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + tag
    return "\r\n".join([*lines, line])

"""Request and webhook signatures, Stripe style: `Rapport-Signature: t=<unix>,v1=<hex hmac>`.

The HMAC-SHA256 is keyed with the workspace's signing secret and is over "<t>." + the
signed content: for event ingestion (and the webhooks Rapport sends) the raw body; for
every other write of the API, `request_content`: the method, the path and the body,
so that a captured DELETE of one contact cannot be replayed as the DELETE of another.
Timestamps more than five minutes from now are refused, so a captured request cannot
be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from engine.errors import AuthError

TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def request_content(method: str, target: str, body: bytes) -> bytes:
    """What a write other than event ingestion signs: `<METHOD> <path[?query]>\n<body>`."""
    return f"{method.upper()} {target}\n".encode() + body


def sign_request(secret: str, method: str, target: str, body: bytes, timestamp: int) -> str:
    """The Rapport-Signature of an API write: `target` is the path as sent, with its query string if any."""
    return sign(secret, request_content(method, target, body), timestamp)


def verify(header: str | None, secret: str, body: bytes, *, now: datetime) -> None:
    """Raise AuthError unless `header` signs `body` with `secret` recently enough."""
    verify_any(header, secret, [body], now=now)


def verify_any(header: str | None, secret: str, contents: list[bytes], *, now: datetime,
               mismatch: str = "Rapport-Signature does not match the body") -> None:
    """Raise AuthError (saying `mismatch` when no MAC fits) unless `header` signs one of
    `contents` with `secret` recently enough."""
    if not header:
        raise AuthError("missing Rapport-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise AuthError("Rapport-Signature has a malformed timestamp") from None
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise AuthError("Rapport-Signature must look like t=<unix seconds>,v1=<hex hmac>")
    # Compared, not subtracted: float minus a huge int raises OverflowError.
    if not now.timestamp() - TOLERANCE_SECONDS <= timestamp <= now.timestamp() + TOLERANCE_SECONDS:
        raise AuthError("Rapport-Signature timestamp is more than 5 minutes off; resend with a fresh one")
    expected = [sign(secret, content, timestamp).split("v1=", 1)[1].encode() for content in contents]
    # Several v1 values are allowed so a secret can be rotated without downtime.
    # Compared as bytes: compare_digest raises TypeError on non-ASCII str input.
    if not any(hmac.compare_digest(e, c.encode()) for e in expected for c in candidates):
        raise AuthError(mismatch)

"""Webhook signatures, Stripe style: `Rapport-Signature: t=<unix>,v1=<hex hmac>`.

The HMAC-SHA256 is over "<t>." + the raw request body, keyed with the workspace's
signing secret. Timestamps more than five minutes from now are refused, so a
captured request cannot be replayed later.
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


def verify(header: str | None, secret: str, body: bytes, *, now: datetime) -> None:
    """Raise AuthError unless `header` signs `body` with `secret` recently enough."""
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
    expected = sign(secret, body, timestamp).split("v1=", 1)[1].encode()
    # Several v1 values are allowed so a secret can be rotated without downtime.
    # Compared as bytes: compare_digest raises TypeError on non-ASCII str input.
    if not any(hmac.compare_digest(expected, c.encode()) for c in candidates):
        raise AuthError("Rapport-Signature does not match the body")

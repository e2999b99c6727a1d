"""VERP bounce addresses: the envelope sender of each email names the message it carries.

A bounce comes back to `bounce+<message id>-<sig>@<bounce domain>`, so the bounce
server knows which message bounced without trusting anything inside the bounce,
whose format varies by MTA. The short HMAC (`sig`) makes the address unforgeable:
anyone can send us mail that looks like a bounce, but only we can name a message
in a way that is believed, so nobody can suppress an address by writing to us.

Local parts are case-sensitive by the RFC, yet some MTAs lowercase them: the
signature is lowercase hex and compared case-insensitively.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_CHARS = 12  # 48 bits of HMAC-SHA256: each guess costs the forger one email to us


def _signature(secret: str, message_id: int) -> str:
    # The "verp:" prefix keeps these MACs apart from any other use of the same secret.
    mac = hmac.new(secret.encode(), f"verp:{message_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:SIGNATURE_CHARS]


def bounce_address(secret: str, message_id: int, domain: str, local: str = "bounce") -> str:
    """`bounce+42-1f2e3d4c5b6a@bounces.shop.example` for message 42."""
    if message_id < 0:
        raise ValueError("a message id is not negative")
    if not domain or "@" in domain:
        raise ValueError(f"bounce domain must be a bare domain, not {domain!r}")
    if not local or "+" in local or "@" in local:
        raise ValueError(f"bounce local part must not contain '+' or '@', not {local!r}")
    return f"{local}+{message_id}-{_signature(secret, message_id)}@{domain}"


def parse_bounce_address(secret: str, address: str) -> int | None:
    """The message id a signed bounce address names, or None if it is not one of ours.

    Accepts the address as an SMTP envelope gives it (`<...>`) or bare; the domain is
    not checked here (the server receiving it decides which domains it serves).
    """
    address = address.strip().strip("<>").strip()
    local, at, _domain = address.rpartition("@")
    if not at:
        return None
    _tag, plus, tail = local.partition("+")
    number, dash, signature = tail.rpartition("-")
    if not plus or not dash or not number.isascii() or not number.isdigit() or len(number) > 19:
        return None
    message_id = int(number)
    expected = _signature(secret, message_id)
    if not signature.isascii() or not hmac.compare_digest(expected, signature.lower()):
        return None
    return message_id

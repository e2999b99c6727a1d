"""Signed rating links for review requests: one link per score, safe to put in an email.

A link's token carries what the rating needs (workspace, contact, order, score) and an
HMAC over it, so the click needs no lookup table and a changed score, order or contact
is refused. Tokens are `<payload>.<mac>`, both base64url without padding: the payload
is a compact JSON array `[version, workspace_id, contact_id, order_id, score]`.

The contact is named by its internal id, not its external id: the token is readable
(signed, not encrypted), and external ids are often email addresses. The MAC key is
derived from the app's secret key for this one purpose, so a MAC made here can never
be replayed as any other signed value of the app. Links do not expire: a customer may
rate an order weeks after the email.

Pure: no database, no web framework.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

VERSION = 1
SCORES = range(1, 6)
MAC_BYTES = 16  # 128 bits: more than enough against forgery, and keeps links short
MAX_ORDER_ID = 200
LINK_PATH = "/r/review/"


@dataclass(frozen=True)
class ReviewLink:
    workspace_id: str
    contact_id: int
    order_id: str
    score: int

    @property
    def event_id(self) -> str:
        """The review_submitted event's id: the same rating clicked twice (or from two emails) is one event."""
        return "review:" + _digest(self.workspace_id, str(self.contact_id), self.order_id, str(self.score))

    def comment_event_id(self, comment: str) -> str:
        """The review_comment event's id: the same comment sent twice is one event."""
        return "review-comment:" + _digest(self.workspace_id, str(self.contact_id), self.order_id,
                                           str(self.score), comment)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"rapport review link", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(_key(secret), payload.encode(), hashlib.sha256).digest()[:MAC_BYTES])


def make_token(secret: str, workspace_id: str, contact_id: int, order_id: str, score: int) -> str:
    if score not in SCORES:
        raise ValueError(f"score must be 1 to 5, not {score!r}")
    if not order_id or len(order_id) > MAX_ORDER_ID:
        raise ValueError("order_id must be 1 to 200 characters")
    data = [VERSION, workspace_id, contact_id, order_id, score]
    payload = _b64(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_mac(secret, payload)}"


def read_token(secret: str, token: str) -> ReviewLink | None:
    """The link a token stands for, or None when it was not made with `secret` or is malformed."""
    payload, dot, mac = token.partition(".")
    if not dot or not payload or not mac or len(token) > 1000:
        return None
    # Compared as bytes: compare_digest raises TypeError on non-ASCII str input.
    if not hmac.compare_digest(_mac(secret, payload).encode(), mac.encode()):
        return None
    try:
        data: Any = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        return None
    match data:
        case [1, str(workspace_id), int(contact_id), str(order_id), int(score)] if score in SCORES:
            return ReviewLink(workspace_id, contact_id, order_id, score)
        case _:
            return None


def review_links(secret: str, base_url: str, *, workspace_id: str, contact_id: int,
                 order_id: str) -> list[dict[str, Any]]:
    """The five rating links of one order, lowest score first, for a template's context.

    A list of {"score", "url"} rather than a dict keyed by score: message contexts are
    stored as JSON, where integer keys would come back as strings.
    """
    base = base_url.rstrip("/") + LINK_PATH
    return [{"score": score, "url": base + make_token(secret, workspace_id, contact_id, order_id, score)}
            for score in SCORES]

"""Signed rating links for review requests: one link per score, safe to put in an email.

A link's token carries what the rating needs (workspace, contact, order, score) and an
HMAC over it, so the click needs no lookup table and a changed score, order or contact
is refused. Tokens are made by engine.links.tokens (`<payload>.<mac>`, base64url) for the
purpose "review": the payload is `[version, workspace_id, contact_id, order_id, score]`.

The contact is named by its internal id, not its external id: the token is readable
(signed, not encrypted), and external ids are often email addresses. The MAC key is
derived from the app's secret key for this one purpose, so a MAC made here can never
be replayed as any other signed value of the app. Links do not expire: a customer may
rate an order weeks after the email.

Pure: no database, no web framework.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from engine.links.tokens import read_token as read_signed
from engine.links.tokens import sign_token

PURPOSE = "review"
SCORES = range(1, 6)
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


def make_token(secret: str, workspace_id: str, contact_id: int, order_id: str, score: int) -> str:
    if score not in SCORES:
        raise ValueError(f"score must be 1 to 5, not {score!r}")
    if not order_id or len(order_id) > MAX_ORDER_ID:
        raise ValueError("order_id must be 1 to 200 characters")
    return sign_token(secret, PURPOSE, [workspace_id, contact_id, order_id, score])


def read_token(secret: str, token: str) -> ReviewLink | None:
    """The link a token stands for, or None when it was not made with `secret` or is malformed."""
    data = read_signed(secret, PURPOSE, token) if len(token) <= 1000 else None
    match data:
        case [str(workspace_id), int(contact_id), str(order_id), int(score)] if score in SCORES:
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

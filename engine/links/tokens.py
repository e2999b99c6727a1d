"""Signed links in messages: unsubscribe, preference center, open pixel, click redirect,
double opt-in confirmation; and the signed form tokens of the pages they lead to.

Every link carries what its page needs and an HMAC over it, so the page needs no login
and no lookup table, and a changed byte is refused. Tokens are `<payload>.<mac>`, both
base64url without padding; the payload is a compact JSON array that starts with a
version. The MAC key is derived from the app's secret for each purpose, so an open-pixel
token can never be replayed as an unsubscribe token (or as a review link: see
engine/links/reviews.py, the same scheme).

Tokens are signed, not encrypted: they name contacts by internal id, never by email.
A click token holds the original URL, which the redirect needs anyway.

Pure: no database, no web framework.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from html import unescape as unescape_html
from typing import Any
from urllib.parse import quote

VERSION = 1
MAC_BYTES = 16  # 128 bits: plenty against forgery, and keeps links short
MAX_TOKEN = 8000  # a click token holds its URL; anything longer is not ours
MAX_URL = 4000
CONFIRM_MAX_AGE = timedelta(days=7)

UNSUBSCRIBE_PATH = "/u/"
PREFERENCES_PATH = "/p/"
OPEN_PATH = "/t/o/"
CLICK_PATH = "/t/c/"
CONFIRM_PATH = "/s/confirm/"

# Purposes: each derives its own MAC key.
UNSUBSCRIBE, PREFERENCES, OPEN, CLICK, CONFIRM = "unsubscribe", "preferences", "open", "click", "confirm"


@dataclass(frozen=True)
class MessageRef:
    """What an unsubscribe, preferences or open token names: one message to one contact."""

    workspace_id: str
    contact_id: int
    message_id: int


@dataclass(frozen=True)
class ClickRef:
    workspace_id: str
    message_id: int
    url: str


@dataclass(frozen=True)
class ConfirmRef:
    """A double opt-in confirmation: this contact, for the email address whose digest is given."""

    workspace_id: str
    contact_id: int
    email_digest: str
    issued_at: int  # unix seconds

    def is_expired(self, *, now: datetime) -> bool:
        return now.timestamp() - self.issued_at > CONFIRM_MAX_AGE.total_seconds()


@dataclass(frozen=True)
class MessageLinks:
    """The links the dispatcher puts into one message (and its List-Unsubscribe header)."""

    unsubscribe_url: str
    preferences_url: str
    open_pixel_url: str
    unsubscribe_token: str

    def mailto_unsubscribe(self, domain: str) -> str:
        """The mailto form of List-Unsubscribe (RFC 2369): the token travels in the subject,
        because a 60-character token does not fit an address's 64-character local part."""
        return f"mailto:unsubscribe@{domain}?subject=" + quote(f"unsubscribe {self.unsubscribe_token}")


@lru_cache(maxsize=64)  # derived once per purpose: every message signs four or five links
def _key(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), f"rapport link: {purpose}".encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, payload: str) -> str:
    return _b64(hmac.digest(_key(secret, purpose), payload.encode(), "sha256")[:MAC_BYTES])


def sign_token(secret: str, purpose: str, data: list[Any]) -> str:
    """A URL-safe token carrying `data` (JSON), signed for one purpose (a token for one
    purpose is refused for every other)."""
    return _sign(secret, purpose, data)


def read_token(secret: str, purpose: str, token: str) -> Any:
    """The data `sign_token` put in, or None when the token is not ours for `purpose`."""
    return _read(secret, purpose, token)


def _sign(secret: str, purpose: str, data: list[Any]) -> str:
    return _token(secret, purpose, _payload(data))


def _token(secret: str, purpose: str, payload: str) -> str:
    return f"{payload}.{_mac(secret, purpose, payload)}"


def _payload(data: list[Any]) -> str:
    return _b64(json.dumps([VERSION, *data], separators=(",", ":"), ensure_ascii=False).encode())


def _read(secret: str, purpose: str, token: str) -> Any:
    """The signed array after its version, or None when the token is not ours for `purpose`."""
    payload, dot, mac = token.partition(".")
    if not dot or not payload or not mac or len(token) > MAX_TOKEN:
        return None
    # Compared as bytes: compare_digest raises TypeError on non-ASCII str input.
    if not hmac.compare_digest(_mac(secret, purpose, payload).encode(), mac.encode()):
        return None
    try:
        data: Any = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        return None
    match data:
        case [1, *rest]:
            return rest
        case _:
            return None


def _base(base_url: str) -> str:
    return base_url.rstrip("/")


def message_token(secret: str, purpose: str, *, workspace_id: str, contact_id: int, message_id: int) -> str:
    return _sign(secret, purpose, [workspace_id, contact_id, message_id])


def message_links(secret: str, base_url: str, *, workspace_id: str, contact_id: int,
                  message_id: int) -> MessageLinks:
    payload = _payload([workspace_id, contact_id, message_id])  # the same for each purpose; the MAC differs

    def token(purpose: str) -> str:
        return _token(secret, purpose, payload)

    base, unsubscribe = _base(base_url), token(UNSUBSCRIBE)
    return MessageLinks(
        unsubscribe_url=base + UNSUBSCRIBE_PATH + unsubscribe,
        preferences_url=base + PREFERENCES_PATH + token(PREFERENCES),
        open_pixel_url=base + OPEN_PATH + token(OPEN) + ".gif",
        unsubscribe_token=unsubscribe,
    )


def _verify_message(secret: str, purpose: str, token: str) -> MessageRef | None:
    match _read(secret, purpose, token):
        case [str(workspace_id), int(contact_id), int(message_id)]:
            return MessageRef(workspace_id, contact_id, message_id)
        case _:
            return None


def verify_unsubscribe(secret: str, token: str) -> MessageRef | None:
    return _verify_message(secret, UNSUBSCRIBE, token)


def verify_preferences(secret: str, token: str) -> MessageRef | None:
    return _verify_message(secret, PREFERENCES, token)


def verify_open(secret: str, token: str) -> MessageRef | None:
    return _verify_message(secret, OPEN, token)


UNSUBSCRIBE_SUBJECT = re.compile(r"unsubscribe\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")


def verify_mailto_unsubscribe(secret: str, subject: str) -> MessageRef | None:
    """The message a mail to the List-Unsubscribe mailto address names (from its subject)."""
    found = UNSUBSCRIBE_SUBJECT.search(subject)
    return verify_unsubscribe(secret, found.group(1)) if found else None


def is_trackable(url: str) -> bool:
    return url.lower().startswith(("http://", "https://")) and len(url) <= MAX_URL and not any(
        c in url for c in "\r\n\0")


def click_url(secret: str, base_url: str, *, workspace_id: str, message_id: int, url: str) -> str:
    """The redirect that records a click and leads to `url` (an http(s) URL, kept exactly)."""
    if not is_trackable(url):
        raise ValueError(f"only http(s) URLs of up to {MAX_URL} characters can be tracked")
    return _base(base_url) + CLICK_PATH + _sign(secret, CLICK, [workspace_id, message_id, url])


def verify_click(secret: str, token: str) -> ClickRef | None:
    match _read(secret, CLICK, token):
        case [str(workspace_id), int(message_id), str(url)] if is_trackable(url):
            return ClickRef(workspace_id, message_id, url)
        case _:
            return None


# An <a ...> start tag, quoted attribute values allowed to hold '>'; and its href attribute.
_A_TAG = re.compile(r"""<a\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_HREF = re.compile(r"""(\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)


def track_clicks(html: str, secret: str, base_url: str, *, workspace_id: str, message_id: int) -> str:
    """Point every http(s) link of `html` at the click redirect.

    Left alone: mailto:, tel: and other schemes, our own unsubscribe and preference
    links (a click there is not interest in the message, and they must work as they
    are), links already tracked, and anchors. Entities in href (`&amp;`) are decoded
    first, so the redirect leads to the URL the browser would have opened.
    """
    own = (_base(base_url) + "/",)  # our own pages (ratings, unsubscribe...) record their own visits

    def rewrite_href(match: re.Match[str]) -> str:
        raw = match.group(2) if match.group(2) is not None else match.group(3)
        url = unescape_html(raw.strip())
        if not is_trackable(url) or url.startswith(own):
            return match.group(0)
        tracked = click_url(secret, base_url, workspace_id=workspace_id, message_id=message_id, url=url)
        return f'{match.group(1)}"{tracked}"'

    return _A_TAG.sub(lambda tag: _HREF.sub(rewrite_href, tag.group(0), count=1), html)


def email_digest(email: str) -> str:
    """A short digest of an address, so a confirmation is void once the contact's email changes."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16]


def confirm_token(secret: str, *, workspace_id: str, contact_id: int, email: str, now: datetime) -> str:
    return _sign(secret, CONFIRM, [workspace_id, contact_id, email_digest(email), int(now.timestamp())])


def confirm_url(secret: str, base_url: str, *, workspace_id: str, contact_id: int, email: str,
                now: datetime) -> str:
    return _base(base_url) + CONFIRM_PATH + confirm_token(secret, workspace_id=workspace_id,
                                                          contact_id=contact_id, email=email, now=now)


def verify_confirm(secret: str, token: str) -> ConfirmRef | None:
    """The confirmation a token stands for (check `is_expired` too), or None when it is not ours."""
    match _read(secret, CONFIRM, token):
        case [str(workspace_id), int(contact_id), str(digest), int(issued_at)]:
            return ConfirmRef(workspace_id, contact_id, digest, issued_at)
        case _:
            return None


# Form tokens: the pages reached through these links carry forms. A form token is an
# HMAC over (purpose, subject, nonce, issue time): the subject is what the form is about
# (a link token, a workspace), the nonce ties it to a cookie when there is one
# (double submit, as webapp/public/reviews.py), and the issue time lets it expire.
FORM_NONCE = re.compile(r"^[0-9a-f]{32}$")
CLOCK_SKEW = 300


def form_token(secret: str, purpose: str, subject: str, nonce: str, issued_at: int) -> str:
    mac = hmac.new(_key(secret, f"form {purpose}"), f"{subject}|{nonce}|{issued_at}".encode(), hashlib.sha256)
    return f"{issued_at}.{mac.hexdigest()[:32]}"


def form_token_is_valid(secret: str, purpose: str, subject: str, nonce: str, given: str | None, *,
                        now: datetime, max_age: timedelta) -> bool:
    if not given or (nonce and not FORM_NONCE.match(nonce)):
        return False
    issued, _, _mac = given.partition(".")
    if not re.fullmatch(r"[0-9]{1,12}", issued):
        return False
    # A little negative age is allowed: the page may come from a web process whose clock runs ahead.
    age = now.timestamp() - int(issued)
    if not -CLOCK_SKEW <= age <= max_age.total_seconds():
        return False
    return hmac.compare_digest(form_token(secret, purpose, subject, nonce, int(issued)).encode(), given.encode())

"""Deep links that connect a messenger chat to a known contact: Telegram and Viber.

A shop shows a contact "Get order updates in Telegram" with a link such as
`https://t.me/<bot>?start=<token>`. When the contact presses Start, Telegram sends the
bot `/start <token>`; Viber's deep link `viber://pa?chatURI=<uri>&context=<token>`
arrives as a `conversation_started` carrying the same token. The token says which
contact to link the chat to, and is signed so nobody can link their chat to someone
else's contact by guessing ids.

Telegram allows at most 64 characters of [A-Za-z0-9_-] in a start parameter, so the
token is compact binary in unpadded base64url: a version byte, the contact id (8 bytes,
big-endian) and 16 bytes of HMAC-SHA256 — 34 characters. The workspace is not in the
token but in the MAC: the webhook's URL names the workspace, and a token made for one
workspace never verifies in another. The MAC key is derived from the app's secret for
this one purpose. Tokens do not expire: a link may sit in an email for months, and
linking a chat the contact holds is harmless.

Pure: no database, no web framework.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from urllib.parse import quote, urlencode

VERSION = 1
MAC_BYTES = 16  # 128 bits: plenty against forgery, and keeps the token short
CONTACT_ID_BYTES = 8
TOKEN_BYTES = 1 + CONTACT_ID_BYTES + MAC_BYTES
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what Telegram accepts as a start parameter
BOT_USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"rapport messenger link", hashlib.sha256).digest()


def _mac(secret: str, workspace_id: str, payload: bytes) -> bytes:
    message = workspace_id.encode() + b"\0" + payload
    return hmac.new(_key(secret), message, hashlib.sha256).digest()[:MAC_BYTES]


def start_token(secret: str, workspace_id: str, contact_id: int) -> str:
    """The signed start parameter that links a chat to contact `contact_id` of `workspace_id`."""
    if not 0 < contact_id < 2 ** (8 * CONTACT_ID_BYTES):
        raise ValueError(f"contact_id must be a positive 64-bit integer, not {contact_id!r}")
    payload = bytes([VERSION]) + contact_id.to_bytes(CONTACT_ID_BYTES, "big")
    return _b64(payload + _mac(secret, workspace_id, payload))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def parse_start_token(secret: str, workspace_id: str, token: str) -> int | None:
    """The contact id a token links to, or None if it is malformed, tampered or from elsewhere."""
    if not TOKEN_RE.match(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    # Re-encoding must give the token back: base64 ignores the last character's spare
    # bits, and one contact must have exactly one token.
    if len(raw) != TOKEN_BYTES or raw[0] != VERSION or _b64(raw) != token:
        return None
    payload, mac = raw[: 1 + CONTACT_ID_BYTES], raw[1 + CONTACT_ID_BYTES:]
    if not hmac.compare_digest(_mac(secret, workspace_id, payload), mac):
        return None
    contact_id = int.from_bytes(payload[1:], "big")
    return contact_id or None


def telegram_link(bot_username: str, token: str) -> str:
    """https://t.me/<bot>?start=<token>: opens the bot; pressing Start sends `/start <token>`."""
    bot = bot_username.removeprefix("@")
    if not BOT_USERNAME_RE.match(bot):
        raise ValueError(f"not a Telegram bot username: {bot_username!r}")
    return f"https://t.me/{bot}?start={token}"


def viber_link(chat_uri: str, token: str) -> str:
    """viber://pa?chatURI=<uri>&context=<token>: Viber passes `context` in conversation_started."""
    if not chat_uri:
        raise ValueError("the Viber bot's chat URI is empty")
    return "viber://pa?" + urlencode({"chatURI": chat_uri, "context": token}, quote_via=quote)


def contact_links(secret: str, workspace_id: str, contact_id: int, *, telegram_bot: str,
                  viber_chat_uri: str) -> dict[str, str | None]:
    """Both links for one contact; None for a messenger this installation has no bot for."""
    token = start_token(secret, workspace_id, contact_id)
    return {
        "telegram": telegram_link(telegram_bot, token) if telegram_bot else None,
        "viber": viber_link(viber_chat_uri, token) if viber_chat_uri else None,
    }

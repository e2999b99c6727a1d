"""Signed deep-link tokens that link a Telegram or Viber chat to a contact."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from engine.links.messenger import (
    contact_links,
    parse_start_token,
    start_token,
    telegram_link,
    viber_link,
)

SECRET = "test-secret-key"


@pytest.mark.parametrize("contact_id", [1, 42, 2**63 - 1])
def test_a_token_round_trips_to_its_contact(contact_id: int) -> None:
    """parse_start_token gives back the contact id start_token signed, for small and huge ids."""
    token = start_token(SECRET, "ws_1", contact_id)
    assert parse_start_token(SECRET, "ws_1", token) == contact_id


def test_a_token_fits_telegrams_start_parameter() -> None:
    """At most 64 characters of A-Z, a-z, 0-9, _ and -, as Telegram requires."""
    token = start_token(SECRET, "ws_" + "f" * 29, 2**63 - 1)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", token)
    assert len(token) == 34


def test_a_token_from_another_workspace_or_secret_is_refused() -> None:
    """The workspace and the secret are in the MAC: a token only verifies where it was made."""
    token = start_token(SECRET, "ws_1", 7)
    assert parse_start_token(SECRET, "ws_2", token) is None
    assert parse_start_token("another-secret", "ws_1", token) is None


def test_a_tampered_token_is_refused() -> None:
    """Changing the contact id inside the token, or any character of it, breaks the signature."""
    token = start_token(SECRET, "ws_1", 7)
    raw = bytearray(base64.urlsafe_b64decode(token + "=="))
    raw[8] = 8  # contact 7 -> 8
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert parse_start_token(SECRET, "ws_1", forged) is None
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert parse_start_token(SECRET, "ws_1", flipped) is None


@pytest.mark.parametrize("token", ["", "abc", "not a token", "x" * 65, "ä" * 10, "AAAA" * 9])
def test_malformed_tokens_are_refused_without_raising(token: str) -> None:
    """Garbage, wrong lengths and foreign characters give None, never an exception."""
    assert parse_start_token(SECRET, "ws_1", token) is None


def test_a_token_with_another_version_byte_is_refused() -> None:
    """A token of a future format is not read as this one."""
    raw = bytearray(base64.urlsafe_b64decode(start_token(SECRET, "ws_1", 7) + "=="))
    raw[0] = 2
    assert parse_start_token(SECRET, "ws_1", base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()) is None


def test_contact_ids_outside_64_bits_are_refused_when_signing() -> None:
    """Zero, negative and oversized ids raise ValueError instead of making a bad token."""
    for contact_id in (0, -1, 2**64):
        with pytest.raises(ValueError):
            start_token(SECRET, "ws_1", contact_id)


def test_the_telegram_link_opens_the_bot_with_the_token() -> None:
    """https://t.me/<bot>?start=<token>, with a leading @ of the username dropped."""
    assert telegram_link("@shop_bot", "abc_DEF-1") == "https://t.me/shop_bot?start=abc_DEF-1"
    with pytest.raises(ValueError):
        telegram_link("no spaces bot", "abc")


def test_the_viber_link_carries_the_token_as_context() -> None:
    """viber://pa?chatURI=<uri>&context=<token>, both query-encoded."""
    link = viber_link("demo shop", "abc")
    assert link == "viber://pa?chatURI=demo%20shop&context=abc"
    assert parse_qs(urlsplit(link).query) == {"chatURI": ["demo shop"], "context": ["abc"]}


def test_contact_links_leave_out_messengers_without_a_bot() -> None:
    """No bot username or chat URI configured: that messenger's link is None."""
    links = contact_links(SECRET, "ws_1", 7, telegram_bot="shop_bot", viber_chat_uri="")
    assert links["viber"] is None
    assert links["telegram"] is not None
    token = links["telegram"].split("start=", 1)[1]
    assert parse_start_token(SECRET, "ws_1", token) == 7
    assert contact_links(SECRET, "ws_1", 7, telegram_bot="", viber_chat_uri="shop") == {
        "telegram": None, "viber": f"viber://pa?chatURI=shop&context={token}"}

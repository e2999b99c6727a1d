"""Signed message links: each verifies only for its purpose and secret, and any changed byte is refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest

from engine.links.tokens import (
    ClickRef,
    MessageRef,
    click_url,
    confirm_token,
    email_digest,
    form_token,
    form_token_is_valid,
    message_links,
    track_clicks,
    verify_click,
    verify_confirm,
    verify_mailto_unsubscribe,
    verify_open,
    verify_preferences,
    verify_unsubscribe,
)

SECRET = "s3cret"
BASE = "https://rapport.example/"
IDS = {"workspace_id": "ws_0123456789abcdef", "contact_id": 41, "message_id": 987654}
NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def token_of(url: str, prefix: str) -> str:
    assert url.startswith("https://rapport.example" + prefix), url
    return url.removeprefix("https://rapport.example" + prefix).removesuffix(".gif")


def test_message_links_round_trip_to_the_message_they_were_made_for() -> None:
    """Unsubscribe, preferences and open links each name the workspace, contact and message."""
    links = message_links(SECRET, BASE, **IDS)
    expected = MessageRef(**IDS)
    assert verify_unsubscribe(SECRET, token_of(links.unsubscribe_url, "/u/")) == expected
    assert verify_preferences(SECRET, token_of(links.preferences_url, "/p/")) == expected
    assert links.open_pixel_url.endswith(".gif")
    assert verify_open(SECRET, token_of(links.open_pixel_url, "/t/o/")) == expected


def test_links_are_url_safe_and_short() -> None:
    """Tokens use only base64url characters and a dot, and stay under 90 characters."""
    links = message_links(SECRET, BASE, **IDS)
    for url, prefix in ((links.unsubscribe_url, "/u/"), (links.preferences_url, "/p/"),
                        (links.open_pixel_url, "/t/o/")):
        token = token_of(url, prefix)
        assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
        assert len(token) < 90


def test_a_token_made_for_one_purpose_does_not_verify_for_another() -> None:
    """An open-pixel token (in every email's HTML) cannot be replayed as an unsubscribe or preferences token."""
    links = message_links(SECRET, BASE, **IDS)
    pixel = token_of(links.open_pixel_url, "/t/o/")
    assert verify_unsubscribe(SECRET, pixel) is None
    assert verify_preferences(SECRET, pixel) is None
    assert verify_open(SECRET, token_of(links.unsubscribe_url, "/u/")) is None


def test_changing_any_byte_of_a_token_is_refused() -> None:
    """Every single-character change anywhere in the token, payload or MAC, fails verification."""
    token = token_of(message_links(SECRET, BASE, **IDS).unsubscribe_url, "/u/")
    for index, char in enumerate(token):
        for replacement in {"A", "b", "-", "_"} - {char}:
            tampered = token[:index] + replacement + token[index + 1:]
            assert verify_unsubscribe(SECRET, tampered) is None, (index, replacement)


@pytest.mark.parametrize("token", ["", ".", "abc", "abc.", ".abc", "a.b.c", "é.é", "x" * 9000 + ".y"])
def test_malformed_tokens_are_refused(token: str) -> None:
    """Garbage never raises: it is simply not a token."""
    assert verify_unsubscribe(SECRET, token) is None
    assert verify_click(SECRET, token) is None
    assert verify_confirm(SECRET, token) is None


def test_a_token_signed_with_another_secret_is_refused() -> None:
    """Another installation's links do not verify here."""
    links = message_links("another-secret", BASE, **IDS)
    assert verify_unsubscribe(SECRET, token_of(links.unsubscribe_url, "/u/")) is None


def test_the_mailto_unsubscribe_carries_the_token_in_its_subject() -> None:
    """The List-Unsubscribe mailto form fits any address rule, and its subject leads back to the message."""
    links = message_links(SECRET, BASE, **IDS)
    mailto = links.mailto_unsubscribe("shop.example")
    assert mailto.startswith("mailto:unsubscribe@shop.example?subject=")
    subject = unquote(mailto.split("subject=", 1)[1])
    assert verify_mailto_unsubscribe(SECRET, "Re: " + subject) == MessageRef(**IDS)
    assert verify_mailto_unsubscribe(SECRET, "unsubscribe please") is None


def test_a_click_url_keeps_the_original_url_exactly() -> None:
    """Query strings, fragments and non-ASCII characters come back byte for byte."""
    original = "https://shop.example/p/tasse?utm_source=rapport&x=1%202&ü=ö#details"
    url = click_url(SECRET, BASE, workspace_id="ws_1", message_id=7, url=original)
    assert verify_click(SECRET, token_of(url, "/t/c/")) == ClickRef("ws_1", 7, original)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "mailto:a@b.c", "ftp://x", "https://x\r\nSet-Cookie: a=b"])
def test_only_http_urls_can_become_click_links(url: str) -> None:
    """No click token is made for other schemes or header-breaking URLs: the redirect can only go to the web."""
    with pytest.raises(ValueError):
        click_url(SECRET, BASE, workspace_id="ws_1", message_id=7, url=url)


def test_track_clicks_rewrites_web_links_and_leaves_the_rest() -> None:
    """http(s) hrefs go through the redirect (entities decoded); mailto, tel, anchors and our own links stay."""
    links = message_links(SECRET, BASE, **IDS)
    html = (
        '<p><a href="https://shop.example/cart?a=1&amp;b=2" class="btn">Cart</a>'
        "<A HREF='http://shop.example/x'>X</A>"
        '<a class="x" title="a > b" href="https://shop.example/y">Y</a>'
        '<a href="mailto:help@shop.example">Mail</a><a href="tel:+4930123">Call</a><a href="#top">Top</a>'
        f'<a href="{links.unsubscribe_url}">Unsubscribe</a><a href="{links.preferences_url}">Preferences</a>'
        '<img src="https://shop.example/logo.png"></p>'
    )
    tracked = track_clicks(html, SECRET, BASE, workspace_id=IDS["workspace_id"], message_id=IDS["message_id"])
    hrefs = re.findall(r"""href=["']([^"']*)["']""", tracked, flags=re.IGNORECASE)
    clicks = [verify_click(SECRET, token_of(h, "/t/c/")) for h in hrefs if "/t/c/" in h]
    assert [c.url for c in clicks if c] == ["https://shop.example/cart?a=1&b=2", "http://shop.example/x",
                                             "https://shop.example/y"]
    for kept in ("mailto:help@shop.example", "tel:+4930123", "#top", links.unsubscribe_url, links.preferences_url,
                 'src="https://shop.example/logo.png"', 'class="btn"', 'title="a > b"'):
        assert kept in tracked
    again = track_clicks(tracked, SECRET, BASE, workspace_id=IDS["workspace_id"], message_id=IDS["message_id"])
    assert again == tracked  # tracked links are not wrapped twice


def test_a_confirmation_token_names_contact_and_address_and_expires_after_seven_days() -> None:
    """The confirm token carries a digest of the email it was sent to and its issue time."""
    token = confirm_token(SECRET, workspace_id="ws_1", contact_id=5, email="Ada@Example.com", now=NOW)
    ref = verify_confirm(SECRET, token)
    assert ref is not None and ref.contact_id == 5 and ref.email_digest == email_digest("ada@example.com")
    assert not ref.is_expired(now=NOW + timedelta(days=6, hours=23))
    assert ref.is_expired(now=NOW + timedelta(days=7, seconds=1))
    assert verify_unsubscribe(SECRET, token) is None


def test_a_form_token_is_valid_for_its_subject_and_nonce_until_it_expires() -> None:
    """A form token fails for another subject or nonce, after max_age, or when altered."""
    nonce = "0123456789abcdef0123456789abcdef"
    token = form_token(SECRET, "prefs", "link-token", nonce, int(NOW.timestamp()))
    day = timedelta(days=1)
    assert form_token_is_valid(SECRET, "prefs", "link-token", nonce, token, now=NOW + timedelta(hours=1), max_age=day)
    assert not form_token_is_valid(SECRET, "prefs", "other-link", nonce, token, now=NOW, max_age=day)
    assert not form_token_is_valid(SECRET, "prefs", "link-token", "f" * 32, token, now=NOW, max_age=day)
    assert not form_token_is_valid(SECRET, "other", "link-token", nonce, token, now=NOW, max_age=day)
    assert not form_token_is_valid(SECRET, "prefs", "link-token", nonce, token, now=NOW + 2 * day, max_age=day)
    altered = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert not form_token_is_valid(SECRET, "prefs", "link-token", nonce, altered, now=NOW, max_age=day)
    assert not form_token_is_valid(SECRET, "prefs", "link-token", nonce, None, now=NOW, max_age=day)

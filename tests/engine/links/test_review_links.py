"""Signed rating links: what a token carries, and that nothing else is accepted."""

from __future__ import annotations

import base64
import json

import pytest

from engine.links.reviews import ReviewLink, make_token, read_token, review_links

SECRET = "app-secret"


def test_a_token_reads_back_as_the_rating_it_was_made_for() -> None:
    """Workspace, contact, order and score survive the round trip, order ids of any characters too."""
    token = make_token(SECRET, "ws-1", 42, "#1001/ä ß", 4)
    assert read_token(SECRET, token) == ReviewLink("ws-1", 42, "#1001/ä ß", 4)
    assert token.isascii() and "/" not in token and "+" not in token and "=" not in token


def test_a_token_made_with_another_secret_is_refused() -> None:
    """Only the app that made a link can read it."""
    assert read_token("other-secret", make_token(SECRET, "ws-1", 42, "1001", 4)) is None


def _payload(data: list[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def test_a_changed_score_or_order_is_refused_even_with_the_old_signature() -> None:
    """Swapping the payload under a valid MAC (a 1 made into a 5) does not verify."""
    token = make_token(SECRET, "ws-1", 42, "1001", 1)
    mac = token.split(".")[1]
    assert read_token(SECRET, _payload([1, "ws-1", 42, "1001", 5]) + "." + mac) is None
    assert read_token(SECRET, _payload([1, "ws-1", 42, "1002", 1]) + "." + mac) is None


@pytest.mark.parametrize("token", ["", ".", "abc", "abc.", ".abc", "a.b.c", "é.é", "x" * 2000])
def test_malformed_tokens_are_refused_without_raising(token: str) -> None:
    """Garbage from a mangled URL is simply not a link."""
    assert read_token(SECRET, token) is None


def test_scores_outside_one_to_five_cannot_be_made() -> None:
    with pytest.raises(ValueError):
        make_token(SECRET, "ws-1", 42, "1001", 6)
    with pytest.raises(ValueError):
        make_token(SECRET, "ws-1", 42, "", 3)


def test_review_links_are_five_urls_lowest_score_first_under_the_base_url() -> None:
    """The template context gets a JSON-safe list: [{score, url}] for 1..5."""
    links = review_links(SECRET, "https://rapport.example/", workspace_id="ws-1", contact_id=42, order_id="1001")
    assert [link["score"] for link in links] == [1, 2, 3, 4, 5]
    for link in links:
        assert link["url"].startswith("https://rapport.example/r/review/")
        token = link["url"].rsplit("/", 1)[1]
        assert read_token(SECRET, token) == ReviewLink("ws-1", 42, "1001", link["score"])
    assert json.loads(json.dumps(links)) == links


def test_event_ids_are_the_same_for_the_same_rating_and_differ_otherwise() -> None:
    """A double click is one event; another score or another comment is another event."""
    four, five = ReviewLink("ws-1", 42, "1001", 4), ReviewLink("ws-1", 42, "1001", 5)
    assert four.event_id == ReviewLink("ws-1", 42, "1001", 4).event_id != five.event_id
    assert four.comment_event_id("great") != four.comment_event_id("great!")
    assert len(four.comment_event_id("x" * 5000)) < 200

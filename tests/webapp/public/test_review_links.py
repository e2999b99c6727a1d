"""Rating links from review emails: one event per rating, tampering refused, comments behind a CSRF token."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.links.reviews import make_token
from engine.settings import Settings
from engine.store.models import Contact, Event
from tests.conftest import FakeClock, Shop


def add_contact(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, external_id: str = "c-1") -> int:
    payload = {"id": f"delivered-{external_id}", "type": "order_delivered",
               "contact": {"external_id": external_id, "email": f"{external_id}@example.com"},
               "properties": {"order_id": "1001"}}
    with sessions.begin() as session:
        [result] = ingest_events(session, shop.id, [payload], now=clock())
    assert result.contact_id is not None
    return result.contact_id


def events_of(sessions: sessionmaker[Session], shop: Shop, event_type: str) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).where(Event.workspace_id == shop.id, Event.type == event_type)
                                    .order_by(Event.id)))


@pytest.fixture
def contact_id(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> int:
    return add_contact(sessions, shop, clock)


def link(settings: Settings, shop: Shop, contact_id: int, score: int, order_id: str = "1001") -> str:
    return "/r/review/" + make_token(settings.secret_key, shop.id, contact_id, order_id, score)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the thank-you page has no comment form"
    return found.group(1)


def test_a_signed_link_records_one_review_submitted_event_even_when_clicked_twice(
    client: FlaskClient, settings: Settings, sessions, shop, contact_id: int
) -> None:
    """Two clicks on the 4 show the thank-you page twice and record one rating of 4 for that order."""
    url = link(settings, shop, contact_id, 4)
    for _ in range(2):
        page = client.get(url)
        assert page.status_code == 200
        assert "Thank you for your rating" in page.text and "Test Shop received your rating" in page.text
        assert page.headers["Cache-Control"] == "no-store"
    [event] = events_of(sessions, shop, "review_submitted")
    assert event.properties == {"order_id": "1001", "score": 4}
    assert event.contact_id == contact_id and event.source == "review_link"


def test_another_score_for_the_same_order_is_another_event(
    client: FlaskClient, settings: Settings, sessions, shop, contact_id: int
) -> None:
    """Changing one's mind is recorded too; which rating counts is the follow-up journey's rule."""
    assert client.get(link(settings, shop, contact_id, 2)).status_code == 200
    assert client.get(link(settings, shop, contact_id, 5)).status_code == 200
    assert [e.properties["score"] for e in events_of(sessions, shop, "review_submitted")] == [2, 5]


@pytest.mark.parametrize("tamper", [
    lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # another MAC
    lambda token: token.split(".")[0] + "." + make_token("other-secret", "x", 1, "1", 1).split(".")[1],
    lambda token: token.split(".")[0],  # no MAC at all
    lambda token: "not-a-token",
])
def test_a_tampered_link_is_refused_and_records_nothing(
    client: FlaskClient, settings: Settings, sessions, shop, contact_id: int, tamper: Any
) -> None:
    """A link whose signature does not match is a 400 page, and no event is stored."""
    token = link(settings, shop, contact_id, 1).rsplit("/", 1)[1]
    page = client.get("/r/review/" + tamper(token))
    assert page.status_code == 400 and "not valid" in page.text
    assert events_of(sessions, shop, "review_submitted") == []


def test_a_link_signed_with_another_secret_is_refused(
    client: FlaskClient, shop, sessions, contact_id: int
) -> None:
    """Another installation's (or a forger's) link does not verify here."""
    page = client.get("/r/review/" + make_token("not-our-secret", shop.id, contact_id, "1001", 5))
    assert page.status_code == 400
    assert events_of(sessions, shop, "review_submitted") == []


def test_a_head_request_from_a_link_scanner_records_nothing(
    client: FlaskClient, settings: Settings, sessions, shop, contact_id: int
) -> None:
    """Mail scanners probe URLs with HEAD: the rating is recorded only on a real visit."""
    assert client.head(link(settings, shop, contact_id, 1)).status_code == 200
    assert events_of(sessions, shop, "review_submitted") == []


def test_a_link_for_a_contact_of_another_workspace_or_an_erased_one_records_nothing(
    client: FlaskClient, settings: Settings, sessions, shop, second_shop, clock, contact_id: int
) -> None:
    """A contact id is only valid in its own workspace; an erased contact's link is gone (410)."""
    foreign = add_contact(sessions, second_shop, clock, "other")
    assert client.get(link(settings, shop, foreign, 5)).status_code == 410
    with sessions.begin() as session:
        session.execute(delete(Event).where(Event.contact_id == contact_id))
        session.execute(delete(Contact).where(Contact.id == contact_id))
    page = client.get(link(settings, shop, contact_id, 5))
    assert page.status_code == 410 and "no longer works" in page.text
    assert events_of(sessions, shop, "review_submitted") == events_of(sessions, second_shop, "review_submitted") == []


def test_the_comment_form_requires_its_csrf_token(
    client: FlaskClient, settings: Settings, sessions, shop, contact_id: int
) -> None:
    """Without the form's token, or with another's, a comment is refused; with it, it is recorded once."""
    url = link(settings, shop, contact_id, 2)
    token = csrf_of(client.get(url).text)

    assert client.post(url + "/comment", data={"comment": "Box was crushed"}).status_code == 400
    assert client.post(url + "/comment", data={"comment": "Box was crushed", "csrf_token": "1." + "0" * 64}
                       ).status_code == 400
    other_order = link(settings, shop, contact_id, 2, order_id="1002")
    assert client.post(other_order + "/comment", data={"comment": "x", "csrf_token": token}).status_code == 400
    assert events_of(sessions, shop, "review_comment") == []

    for _ in range(2):  # a resent form is one comment
        page = client.post(url + "/comment", data={"comment": "  Box was crushed  ", "csrf_token": token})
        assert page.status_code == 200 and "We received your comment" in page.text
    [event] = events_of(sessions, shop, "review_comment")
    assert event.properties == {"order_id": "1001", "score": 2, "comment": "Box was crushed"}


def test_the_csrf_token_is_bound_to_the_browser_cookie(
    app, client: FlaskClient, settings: Settings, sessions, shop, contact_id: int
) -> None:
    """A page's form token used from another browser (no nonce cookie: a cross-site post) is refused."""
    url = link(settings, shop, contact_id, 2)
    token = csrf_of(client.get(url).text)
    stranger = app.test_client()
    page = stranger.post(url + "/comment", data={"comment": "spam", "csrf_token": token})
    assert page.status_code == 400 and "expired" in page.text
    assert events_of(sessions, shop, "review_comment") == []


def test_the_form_token_expires_after_two_days(
    client: FlaskClient, settings: Settings, sessions, shop, clock: FakeClock, contact_id: int
) -> None:
    """A page left open for days asks to open the link again rather than accept a stale form."""
    url = link(settings, shop, contact_id, 3)
    token = csrf_of(client.get(url).text)
    clock.advance(days=2, seconds=1)
    assert client.post(url + "/comment", data={"comment": "late", "csrf_token": token}).status_code == 400
    assert events_of(sessions, shop, "review_comment") == []


def test_an_empty_or_too_long_comment_shows_the_form_again(
    client: FlaskClient, settings: Settings, sessions, shop, contact_id: int
) -> None:
    """Nothing to record: the page explains and keeps a fresh form."""
    url = link(settings, shop, contact_id, 3)
    token = csrf_of(client.get(url).text)
    for text in ("   ", "x" * 2001):
        page = client.post(url + "/comment", data={"comment": text, "csrf_token": token})
        assert page.status_code == 400 and "up to 2000 characters" in page.text
        assert csrf_of(page.text)
    assert events_of(sessions, shop, "review_comment") == []


def test_the_contacts_ratings_and_comments_are_visible_on_its_timeline(
    client: FlaskClient, settings: Settings, shop: Shop, contact_id: int
) -> None:
    """After a click and a comment, the contact's timeline lists the order's score and the comment."""
    url = link(settings, shop, contact_id, 2)
    token = csrf_of(client.get(url).text)
    assert client.post(url + "/comment", data={"comment": "Box was crushed", "csrf_token": token}).status_code == 200
    timeline = client.get("/api/v1/contacts/c-1/timeline",
                          headers={"Authorization": f"Bearer {shop.credentials.api_key}"}).get_json()
    assert [(r["order_id"], r["score"], r["comments"]) for r in timeline["reviews"]] == [
        ("1001", 2, ["Box was crushed"])]

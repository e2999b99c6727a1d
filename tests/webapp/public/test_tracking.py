"""Open pixel and click redirect: signed, recorded once through the receipts service, never an open redirect."""

from __future__ import annotations

import html
import re

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.links.tokens import click_url
from engine.settings import Settings
from engine.store.db import JobName, defer
from engine.store.models import Message, MessageReceipt
from tests.conftest import FakeClock, Shop, drain
from tests.webapp.public.test_unsubscribe import Recipient, events_of, links_for, make_recipient, path_of

SHOP_URL = "https://shop.example/new?utm_source=rapport&utm_medium=email&q=caf%C3%A9#top"


def message_of(sessions: sessionmaker[Session], message_id: int) -> Message:
    with sessions() as session:
        return session.get_one(Message, message_id)


def receipts_of(sessions: sessionmaker[Session], message_id: int) -> list[MessageReceipt]:
    with sessions() as session:
        return list(session.scalars(select(MessageReceipt).where(MessageReceipt.message_id == message_id)))


def click_path(settings: Settings, shop: Shop, recipient: Recipient, url: str = SHOP_URL) -> str:
    return path_of(click_url(settings.secret_key, settings.base_url, workspace_id=shop.id,
                             message_id=recipient.message_id, url=url))


def test_the_open_pixel_records_one_open(
    client: FlaskClient, settings: Settings, sessions, shop: Shop, clock: FakeClock
) -> None:
    """A valid pixel is a 1x1 GIF that is never cached; the message is opened once, with one event."""
    recipient = make_recipient(sessions, shop, clock)
    url = path_of(links_for(settings, shop, recipient).open_pixel_url)
    for _ in range(2):
        answer = client.get(url)
        assert answer.status_code == 200 and answer.mimetype == "image/gif" and answer.data.startswith(b"GIF89a")
        assert "no-store" in answer.headers["Cache-Control"]
    message = message_of(sessions, recipient.message_id)
    assert message.status == "opened" and message.opened_at == clock()
    assert [r.receipt_key for r in receipts_of(sessions, recipient.message_id)] == [f"open:{recipient.message_id}"]
    [event] = events_of(sessions, recipient.contact_id, "message_opened")
    assert event.properties["message_id"] == recipient.message_id


def test_a_bad_pixel_token_still_answers_a_gif_and_records_nothing(
    client: FlaskClient, settings: Settings, sessions, shop: Shop, clock: FakeClock
) -> None:
    """A broken image would show in the email: any token gets the GIF, only a valid one records."""
    recipient = make_recipient(sessions, shop, clock)
    token = path_of(links_for(settings, shop, recipient).open_pixel_url).removeprefix("/t/o/").removesuffix(".gif")
    unsubscribe = path_of(links_for(settings, shop, recipient).unsubscribe_url).removeprefix("/u/")
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "garbage", unsubscribe):
        answer = client.get(f"/t/o/{bad}.gif")
        assert answer.status_code == 200 and answer.mimetype == "image/gif"
    assert client.head(path_of(links_for(settings, shop, recipient).open_pixel_url)).status_code == 200
    assert receipts_of(sessions, recipient.message_id) == []
    assert message_of(sessions, recipient.message_id).status == "sent"


def test_a_click_redirects_to_the_exact_original_url_and_is_recorded_once(
    client: FlaskClient, settings: Settings, sessions, shop: Shop, clock: FakeClock
) -> None:
    """302 to the URL byte for byte (query string, encoding, fragment); clicked once per link, with the URL."""
    recipient = make_recipient(sessions, shop, clock)
    for _ in range(2):
        answer = client.get(click_path(settings, shop, recipient))
        assert answer.status_code == 302 and answer.headers["Location"] == SHOP_URL
    client.get(click_path(settings, shop, recipient, "https://shop.example/other"))
    message = message_of(sessions, recipient.message_id)
    assert message.status == "clicked" and message.clicked_at == clock() and message.opened_at == clock()
    assert len(receipts_of(sessions, recipient.message_id)) == 2  # one per link
    events = events_of(sessions, recipient.contact_id, "message_clicked")
    assert sorted(e.properties["url"] for e in events) == sorted(["https://shop.example/other", SHOP_URL])


def test_a_tampered_click_link_is_refused_without_a_redirect(
    client: FlaskClient, settings: Settings, sessions, shop: Shop, clock: FakeClock
) -> None:
    """No valid signature, no Location header: nobody can use us to redirect to their site."""
    recipient = make_recipient(sessions, shop, clock)
    path = click_path(settings, shop, recipient)
    evil = click_url("not-our-secret", settings.base_url, workspace_id=shop.id, message_id=recipient.message_id,
                     url="https://evil.example/")
    for bad in (path[:-2] + ("AA" if not path.endswith("AA") else "BB"), "/t/c/garbage", path_of(evil)):
        answer = client.get(bad)
        assert answer.status_code == 400 and "Location" not in answer.headers
    assert receipts_of(sessions, recipient.message_id) == []


def test_a_link_checkers_head_request_redirects_but_records_nothing(
    client: FlaskClient, settings: Settings, sessions, shop: Shop, clock: FakeClock
) -> None:
    """HEAD is answered like GET and leaves the message as it was."""
    recipient = make_recipient(sessions, shop, clock)
    answer = client.head(click_path(settings, shop, recipient))
    assert answer.status_code == 302 and answer.headers["Location"] == SHOP_URL
    assert receipts_of(sessions, recipient.message_id) == []


def test_a_sent_email_tracks_its_links_and_opens_end_to_end(
    client: FlaskClient, settings: Settings, sessions, shop: Shop, clock: FakeClock, runtime, smtp_server
) -> None:
    """The dispatched HTML has a pixel and tracked links; following them from the received email records both."""
    recipient = make_recipient(sessions, shop, clock, status="scheduled", sent_at=None, context={
        "workspace": {"id": shop.id, "name": "Test Shop"}, "contact": {"first_name": "Ada"},
        "event": {"shop_url": SHOP_URL}})
    with sessions.begin() as session:
        defer(session, JobName.DISPATCH_MESSAGES, [recipient.message_id])
    drain(runtime)
    [mail] = smtp_server.messages
    body = mail.get_body(("html",)).get_content()
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', body)]
    tracked = [h for h in hrefs if "/t/c/" in h]
    assert tracked and SHOP_URL not in hrefs
    assert any("/u/" in h for h in hrefs) and any("/p/" in h for h in hrefs)  # footer links stay direct
    pixel = re.search(r'<img src="http://127\.0\.0\.1:8000(/t/o/[^"]+\.gif)"', body)
    assert pixel, "no open pixel in the HTML"
    assert client.get(pixel.group(1)).status_code == 200
    answer = client.get(path_of(tracked[0]))
    assert answer.status_code == 302 and answer.headers["Location"] == SHOP_URL
    assert message_of(sessions, recipient.message_id).status == "clicked"

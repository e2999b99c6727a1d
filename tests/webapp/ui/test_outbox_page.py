"""The outbox (page and API): previews that count no opens or clicks, readable titles, a refresh that keeps
what the reader opened.

Messages reach the outbox the way they do in `make run`: dispatched by the worker over SMTP, and the
received bytes stored by the sink's own parser.
"""

from __future__ import annotations

import html
import re
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.settings import Settings
from engine.store.db import JobName, defer
from engine.store.models import Message, MessageReceipt, OutboxCapture
from tests.conftest import FakeClock, Shop, SmtpServer, drain
from tests.webapp.conftest import auth_headers
from tests.webapp.public.test_unsubscribe import make_recipient, path_of
from workers.dev.smtp_sink import parse_capture
from workers.runtime import Runtime

SHOP_URL = "https://shop.example/new?utm_source=rapport&q=caf%C3%A9"
OURS = "http://127.0.0.1:8000"


def dispatch_to_outbox(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, runtime: Runtime,
                       smtp_server: SmtpServer, external_id: str) -> tuple[int, int]:
    """One welcome email sent for real and stored as the sink stores it: its message id and capture id."""
    recipient = make_recipient(sessions, shop, clock, external_id=external_id, status="scheduled", sent_at=None,
                               context={"workspace": {"id": shop.id, "name": "Test Shop"},
                                        "contact": {"first_name": "Ada"}, "event": {"shop_url": SHOP_URL}})
    with sessions.begin() as session:
        defer(session, JobName.DISPATCH_MESSAGES, [recipient.message_id])
    drain(runtime)
    mail = smtp_server.messages[-1]
    with sessions.begin() as session:
        capture = parse_capture(mail.as_bytes(), to=mail["To"], now=clock())
        session.add(capture)
        session.flush()
        return recipient.message_id, capture.id


def load_like_a_browser(client: FlaskClient, preview: str) -> None:
    """Fetch every image and stylesheet URL of `preview` that points at us, as a browser showing it would."""
    for url in re.findall(r"""(?:src|background)\s*=\s*["']([^"']+)["']|url\(["']?([^"')]+)""", preview):
        url = next(u for u in url if u)
        if url.startswith(OURS):
            client.get(path_of(url))


def tracking_of(sessions: sessionmaker[Session], message_id: int) -> tuple[str, list[str]]:
    with sessions() as session:
        status = session.get_one(Message, message_id).status
        keys = session.scalars(select(MessageReceipt.receipt_key).where(MessageReceipt.message_id == message_id))
        return status, list(keys)


def cards_on_the_page(page: str, capture_ids: list[int]) -> list[str]:
    """The cards of these captures, in page order (the page shows every workspace's, and the tests share a database)."""
    cards = {int(n): card for n, card in re.findall(r'<div class="card" id="capture-(\d+)">(.*?)\n</div>', page, re.S)}
    return [cards[n] for n in sorted(capture_ids, reverse=True) if n in cards]


def previews_on_the_page(client: FlaskClient, capture_ids: list[int]) -> list[str]:
    """What the page's iframes of these captures show."""
    page = client.get("/outbox")
    assert page.status_code == 200
    return [html.unescape(srcdoc) for card in cards_on_the_page(page.get_data(as_text=True), capture_ids)
            for srcdoc in re.findall(r'srcdoc="([^"]*)"', card)]


def test_viewing_the_outbox_page_counts_no_open(
    client: FlaskClient, settings: Settings, sessions, shop: Shop, clock: FakeClock, runtime, smtp_server
) -> None:
    """Loading /outbox and everything its previews show leaves three sent emails unopened; a real open still counts."""
    sent = [dispatch_to_outbox(sessions, shop, clock, runtime, smtp_server, f"c-{n}") for n in range(3)]
    ids = [message_id for message_id, _ in sent]
    previews = previews_on_the_page(client, [capture_id for _, capture_id in sent])
    assert len(previews) == 3
    for preview in previews:
        load_like_a_browser(client, preview)
    assert [tracking_of(sessions, i) for i in ids] == [("sent", [])] * 3
    assert not [preview for preview in previews if "/t/o/" in preview]
    sent_images = len(re.findall(r"<img\b", smtp_server.messages[0].get_body(("html",)).get_content()))
    assert [len(re.findall(r"<img\b", preview)) for preview in previews] == [sent_images - 1] * 3  # the pixel's tag too

    received = smtp_server.messages[0].get_body(("html",)).get_content()
    pixel = re.search(r'<img src="(http://127\.0\.0\.1:8000/t/o/[^"]+\.gif)"', received)
    assert pixel, "the email itself still carries its pixel"
    client.get(path_of(pixel.group(1)))
    assert tracking_of(sessions, ids[0])[0] == "opened"


def test_links_in_an_outbox_preview_lead_straight_to_their_destination(
    client: FlaskClient, settings: Settings, sessions, shop: Shop, clock: FakeClock, runtime, smtp_server
) -> None:
    """No preview link goes through the click redirect; the shop link is the URL the email was made with."""
    message_id, capture_id = dispatch_to_outbox(sessions, shop, clock, runtime, smtp_server, "c-1")
    [preview] = previews_on_the_page(client, [capture_id])
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', preview)]
    assert SHOP_URL in hrefs
    assert not [h for h in hrefs if "/t/c/" in h]
    assert tracking_of(sessions, message_id) == ("sent", [])


def test_the_outbox_api_serves_previews_without_tracking(
    client: FlaskClient, settings: Settings, sessions, shop: Shop, clock: FakeClock, runtime, smtp_server
) -> None:
    """GET /api/v1/outbox: the html has no pixel and no click redirect, so a UI showing it counts nothing."""
    message_id, _ = dispatch_to_outbox(sessions, shop, clock, runtime, smtp_server, "c-1")
    [mail] = client.get("/api/v1/outbox", headers=auth_headers(shop.credentials)).get_json()["messages"]
    load_like_a_browser(client, mail["html"])
    assert "/t/o/" not in mail["html"] and "/t/c/" not in mail["html"]
    assert SHOP_URL in html.unescape(mail["html"])
    assert tracking_of(sessions, message_id) == ("sent", [])


def add_capture(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, **fields: Any) -> int:
    values: dict[str, Any] = {"workspace_id": shop.id, "channel": "email", "to_address": "ada@example.com",
                              "subject": None, "text": None, "html": None, "received_at": clock(), **fields}
    with sessions.begin() as session:
        capture = OutboxCapture(**values)
        session.add(capture)
        session.flush()
        return capture.id


def card_titles(page: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r"<div><strong>(.*?)</strong></div>", page)]


def test_a_text_message_is_titled_by_its_channel_and_first_words(client: FlaskClient, sessions, shop: Shop,
                                                                  clock: FakeClock) -> None:
    """An SMS has no subject: its card says "SMS: <first words>", never "None"."""
    sms = add_capture(sessions, shop, clock, channel="sms", to_address="+4915112345678",
                      text="Hi Ada, you left a Dripper and two filters in your cart. Finish your order here: "
                           "https://shop.example/cart/c-1")
    telegram = add_capture(sessions, shop, clock, channel="telegram", to_address="12345", text="")
    cards = cards_on_the_page(client.get("/outbox").get_data(as_text=True), [sms, telegram])
    assert [title for card in cards for title in card_titles(card)] == [
        "Telegram to 12345", "SMS: Hi Ada, you left a Dripper and two filters in your cart…"]
    assert not [card for card in cards if "None" in card]


def test_the_outbox_refresh_fetches_only_new_cards(client: FlaskClient, sessions, shop: Shop,
                                                   clock: FakeClock) -> None:
    """The page no longer reloads itself; /outbox/new?after=<newest shown> answers just the newer cards."""
    first = add_capture(sessions, shop, clock, subject="First")
    page = client.get("/outbox").get_data(as_text=True)
    assert "location.reload" not in page and 'src="/static/outbox.js"' in page
    assert f'data-latest="{first}"' in page
    assert "location.reload" not in client.get("/static/outbox.js").get_data(as_text=True)

    nothing_new = client.get(f"/outbox/new?after={first}")
    assert nothing_new.status_code == 200 and card_titles(nothing_new.get_data(as_text=True)) == []
    second = add_capture(sessions, shop, clock, subject="Second")
    fresh = client.get(f"/outbox/new?after={first}")
    assert card_titles(fresh.get_data(as_text=True)) == ["Second"]
    assert fresh.headers["X-Outbox-Latest"] == str(second)


def test_the_outbox_page_is_not_served_outside_embedded_mode(client: FlaskClient, settings: Settings) -> None:
    """Without RAPPORT_OUTBOX_PAGE both the page and its refresh are 404 (they show every workspace)."""
    object.__setattr__(settings, "outbox_page", False)
    assert client.get("/outbox").status_code == 404
    assert client.get("/outbox/new?after=0").status_code == 404

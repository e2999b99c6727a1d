"""The library's recipes driven with events and a moved clock through real RQ jobs, SMTP and HTTP:
what is sent, when, and what is skipped and why."""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.journeys import effects
from engine.journeys.versions import create_journey
from engine.links.reviews import review_links
from engine.settings import Settings
from engine.store.models import Contact, JournalEntry, Message, Run, Suppression
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, SmtpServer, drain
from tests.webapp.conftest import close_app
from triggers import (
    abandoned_cart_series,
    browse_abandonment,
    loyalty_tier,
    order_status,
    referral_reward,
    review_follow_up,
    review_request,
    welcome_series,
    wishlist,
)
from webapp.app import create_app
from workers.runtime import Runtime
from workers.scheduler import run_once

EVENT_NUMBERS = itertools.count(1)
CART = {"cart_id": "k1", "items": [{"name": "Moka pot", "price": 39, "quantity": 1}], "currency": "EUR",
        "total": 39, "recovery_url": "https://shop.example/cart/k1"}
PRODUCT = {"product_id": "p-7", "name": "Moka pot", "url": "https://shop.example/p/moka", "price": 39,
           "currency": "EUR"}


def ingest(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, event_type: str, *,
           customer: str = "c-1", email: str | None = None, properties: dict[str, Any] | None = None,
           contact: dict[str, Any] | None = None) -> None:
    payload = {
        "id": f"{event_type}-{next(EVENT_NUMBERS)}", "type": event_type, "occurred_at": clock().isoformat(),
        "contact": {"external_id": customer, "email": email or f"{customer}@example.com", **(contact or {})},
        "properties": properties or {},
    }
    with sessions.begin() as session:
        [result] = ingest_events(session, shop.id, [payload], now=clock())
    assert result.status == "accepted", result


def journey(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, name: str,
            definition: dict[str, Any]) -> int:
    with sessions.begin() as session:
        return create_journey(session, shop.id, name, definition, templates=SEED_TEMPLATES, now=clock()).id


def tick(rt: Runtime) -> None:
    """What the scheduler does each tick, then what the workers do with it."""
    run_once(rt)
    drain(rt)


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def html_of(mail: EmailMessage) -> str:
    body = mail.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def sent(smtp: SmtpServer) -> list[tuple[str, str]]:
    return [(str(m["To"]), str(m["Subject"])) for m in smtp.messages]


def messages(sessions: sessionmaker[Session], shop: Shop) -> list[Message]:
    with sessions() as session:
        return list(session.scalars(select(Message).where(Message.workspace_id == shop.id).order_by(Message.id)))


def runs(sessions: sessionmaker[Session], shop: Shop, journey_id: int) -> dict[str, Run]:
    """The journey's runs by contact external id."""
    with sessions() as session:
        rows = session.execute(select(Contact.external_id, Run).join(Contact, Contact.id == Run.contact_id)
                               .where(Run.workspace_id == shop.id, Run.journey_id == journey_id))
        return {external_id: run for external_id, run in rows}


def journal(sessions: sessionmaker[Session], shop: Shop, kind: str) -> list[str]:
    with sessions() as session:
        return [e.detail or "" for e in session.scalars(
            select(JournalEntry).where(JournalEntry.workspace_id == shop.id, JournalEntry.kind == kind)
            .order_by(JournalEntry.id))]


def attributes_of(sessions: sessionmaker[Session], shop: Shop, external_id: str) -> dict[str, Any]:
    with sessions() as session:
        contact = session.scalar(select(Contact).where(Contact.workspace_id == shop.id,
                                                       Contact.external_id == external_id))
        assert contact is not None
        return dict(contact.attributes)


# --- abandoned cart series -------------------------------------------------------------------------


def test_the_cart_series_sends_two_reminders_then_stops_when_the_order_arrives(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """1 h: first reminder; 24 h: second; an order for that cart at 30 h means no third, with the reason."""
    journey_id = journey(sessions, shop, clock, "Cart series", abandoned_cart_series.recipe(discount_code="SAVE10"))
    ingest(sessions, shop, clock, "cart_updated", contact={"first_name": "Ada"}, properties=CART)
    drain(runtime)

    clock.advance(minutes=59)
    tick(runtime)
    assert smtp_server.messages == []
    clock.advance(minutes=2)
    tick(runtime)
    assert sent(smtp_server) == [("c-1@example.com", "Ada, you left something in your cart")]

    clock.advance(hours=22, minutes=57)  # 23:58 after the cart
    tick(runtime)
    assert len(smtp_server.messages) == 1
    clock.advance(minutes=3)
    tick(runtime)
    second = smtp_server.messages[1]
    assert second["Subject"] == "Ada, still thinking it over? Your cart is saved"
    assert "- Moka pot: €39.00" in text_of(second) and "https://shop.example/cart/k1" in text_of(second)

    clock.advance(hours=6)
    ingest(sessions, shop, clock, "order_placed", properties={"cart_id": "k1", "order_id": "o-1", "total": 39})
    drain(runtime)
    clock.advance(days=3)
    tick(runtime)
    assert len(smtp_server.messages) == 2
    run = runs(sessions, shop, journey_id)["c-1"]
    assert (run.status, run.exit_reason) == ("exited", "goal reached: order placed")
    assert "cart_discount_code" not in attributes_of(sessions, shop, "c-1")


def test_the_cart_series_offers_the_discount_code_in_a_third_reminder_at_72_hours(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """Without an order, the third reminder comes 72 h after the cart, with the code set on the contact."""
    journey(sessions, shop, clock, "Cart series", abandoned_cart_series.recipe(discount_code="SAVE10"))
    ingest(sessions, shop, clock, "checkout_started", properties=CART)
    drain(runtime)
    clock.advance(hours=1, seconds=1)
    tick(runtime)
    clock.advance(hours=23)
    tick(runtime)
    assert len(smtp_server.messages) == 2
    clock.advance(hours=47, minutes=59)
    tick(runtime)
    assert len(smtp_server.messages) == 2
    clock.advance(minutes=2)
    tick(runtime)
    third = smtp_server.messages[2]
    assert third["Subject"] == "A discount for your cart: SAVE10"
    assert "Your discount code: SAVE10" in text_of(third) and "SAVE10" in html_of(third)
    assert attributes_of(sessions, shop, "c-1")["cart_discount_code"] == "SAVE10"


# --- browse abandonment ----------------------------------------------------------------------------


def test_browse_abandonment_emails_the_product_unless_a_cart_follows(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """A viewer who adds anything to a cart within 4 h, or starts a checkout, gets nothing; one who does
    neither gets the product email, once a week whatever else they look at."""
    journey_id = journey(sessions, shop, clock, "Browse", browse_abandonment.recipe(wait_hours=4))
    ingest(sessions, shop, clock, "product_viewed", customer="carter", properties=PRODUCT)
    ingest(sessions, shop, clock, "product_viewed", customer="browser", properties=PRODUCT)
    ingest(sessions, shop, clock, "product_viewed", customer="checker", properties=PRODUCT)
    ingest(sessions, shop, clock, "product_viewed", customer="nameless", properties={"product_id": "p-9"})
    drain(runtime)
    clock.advance(hours=1)
    ingest(sessions, shop, clock, "cart_updated", customer="carter", properties={**CART, "cart_id": "other"})
    ingest(sessions, shop, clock, "checkout_started", customer="checker", properties={**CART, "cart_id": "c9"})
    ingest(sessions, shop, clock, "product_viewed", customer="browser",
           properties={**PRODUCT, "product_id": "p-8", "name": "Grinder"})
    drain(runtime)

    clock.advance(hours=2, minutes=59)
    tick(runtime)
    assert smtp_server.messages == []
    clock.advance(minutes=2)
    tick(runtime)
    [mail] = smtp_server.messages
    assert (mail["To"], mail["Subject"]) == ("browser@example.com", "Moka pot caught your eye?")
    assert "https://shop.example/p/moka" in text_of(mail) and "€39.00" in text_of(mail)

    by_contact = runs(sessions, shop, journey_id)
    assert (by_contact["carter"].status, by_contact["carter"].exit_reason) == (
        "exited", "added to cart: no browse email")
    assert (by_contact["checker"].status, by_contact["checker"].exit_reason) == (
        "exited", "started a checkout or ordered: no browse email")
    assert by_contact["browser"].status == "completed" and "nameless" not in by_contact
    assert journal(sessions, shop, "not_enrolled") == [
        "Browse: entry filter not met: event.name exists and event.url exists",
        "Browse: re-entry rule at most once per 7 days",
    ]


# --- review request and follow-up ------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A shop's HTTP endpoint for alert webhooks, keeping the JSON bodies it receives."""
    handler = type("AlertReceiver", (Receiver,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", handler.received
    server.shutdown()
    server.server_close()


@pytest.fixture
def web(settings: Settings, clock: FakeClock) -> Iterator[FlaskClient]:
    """The web app on this test's database, queues and clock: where rating links land."""
    app = create_app(settings, clock=clock)
    app.config.update(TESTING=True)
    yield app.test_client()
    close_app(app)


@pytest.fixture
def wired_review_links(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Put `review_links` into message contexts, as the lead is to wire it (when the event has an order id)."""
    original = effects.message_context

    def with_links(session: Session, run: Run, contact: Contact, *, batch: effects.Batch) -> dict[str, Any]:
        context = original(session, run, contact, batch=batch)
        order_id = context["event"].get("order_id")
        if "review_links" not in context and order_id is not None:
            context["review_links"] = review_links(settings.secret_key, settings.base_url,
                                                   workspace_id=run.workspace_id, contact_id=run.contact_id,
                                                   order_id=str(order_id))
        return context

    monkeypatch.setattr(effects, "message_context", with_links)


def test_a_review_request_goes_out_after_three_days_and_a_low_rating_gets_an_apology_and_an_alert(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer, web: FlaskClient,
    receiver, wired_review_links: None
) -> None:
    """Delivery, 3 days, the request; a click on 2 records the rating, ends the request (no reminder)
    and starts the follow-up: an apology email and a signed alert to the shop with order and score."""
    url, alerts = receiver
    request_id = journey(sessions, shop, clock, "Review request",
                         review_request.recipe(after_days=3, reminder_after_days=4))
    journey(sessions, shop, clock, "Review follow-up", review_follow_up.recipe(alert_url=url))
    ingest(sessions, shop, clock, "order_delivered", contact={"first_name": "Ada"},
           properties={"order_id": "1001", "order_number": "#1001", "items": [{"name": "Moka pot"}]})
    drain(runtime)
    clock.advance(days=2, hours=23, minutes=59)
    tick(runtime)
    assert smtp_server.messages == []
    clock.advance(minutes=2)
    tick(runtime)
    [request] = smtp_server.messages
    assert request["Subject"] == "How was your order #1001?"
    link = re.search(r"^2 - fair: (\S+)$", text_of(request), re.MULTILINE)
    assert link is not None and link.group(1) in html_of(request)

    clock.advance(hours=5)
    page = web.get(urlsplit(link.group(1)).path)
    assert page.status_code == 200 and "Thank you for your rating" in page.text
    drain(runtime)

    assert sent(smtp_server)[1] == ("c-1@example.com", "We are sorry about your recent order")
    [alert] = alerts
    assert alert["journey"] == "Review follow-up" and alert["data"] == {"alert": "low_review_score"}
    assert alert["event"] == {"order_id": "1001", "score": 2} and alert["contact"]["external_id"] == "c-1"
    run = runs(sessions, shop, request_id)["c-1"]
    assert (run.status, run.exit_reason) == ("exited", "goal reached: reviewed")
    clock.advance(days=5)
    tick(runtime)
    assert len(smtp_server.messages) == 2  # no reminder after the rating


def test_an_unanswered_review_request_is_reminded_once_with_the_same_links(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer, wired_review_links: None
) -> None:
    """With a reminder configured and no rating, the request goes out again 4 days later, then the run ends."""
    request_id = journey(sessions, shop, clock, "Review request",
                         review_request.recipe(on="order_fulfilled", after_days=7, reminder_after_days=4))
    ingest(sessions, shop, clock, "order_fulfilled", properties={"order_id": "1001"})
    drain(runtime)
    clock.advance(days=7, seconds=1)
    tick(runtime)
    clock.advance(days=4)
    tick(runtime)
    first, reminder = smtp_server.messages
    assert first["Subject"] == reminder["Subject"] == "How was your order 1001?"
    rating_links = re.compile(r"^\d - [a-z ]+: \S+$", re.MULTILINE)  # the same order: the same rating links
    assert rating_links.findall(text_of(first)) == rating_links.findall(text_of(reminder))
    assert len(rating_links.findall(text_of(first))) == 5
    assert runs(sessions, shop, request_id)["c-1"].status == "completed"


def test_review_follow_up_branches_on_the_score_and_the_first_rating_of_an_order_decides(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """1: apology; 3: nothing ("neutral score"); 5: a thank-you with the public review link.
    Changing a 1 into a 5 later sends nothing more for that order."""
    journey_id = journey(sessions, shop, clock, "Review follow-up",
                         review_follow_up.recipe(public_review_url="https://reviews.example/shop"))
    for customer, score in (("low", 1), ("mid", 3), ("high", 5)):
        ingest(sessions, shop, clock, "review_submitted", customer=customer,
               properties={"order_id": f"o-{customer}", "score": score})
    drain(runtime)
    ingest(sessions, shop, clock, "review_submitted", customer="low", properties={"order_id": "o-low", "score": 5})
    drain(runtime)

    assert sorted(sent(smtp_server)) == [
        ("high@example.com", "Thank you! Would you share that with others?"),
        ("low@example.com", "We are sorry about your recent order"),
    ]
    ask = next(m for m in smtp_server.messages if m["To"] == "high@example.com")
    assert "Write a review: https://reviews.example/shop" in text_of(ask)
    assert "5 out of 5" in text_of(ask)
    by_contact = runs(sessions, shop, journey_id)
    assert (by_contact["mid"].status, by_contact["mid"].exit_reason) == ("exited", "neutral score: no follow-up")
    assert by_contact["low"].status == by_contact["high"].status == "completed"
    branches = journal(sessions, shop, "branch")
    assert "yes: event.score lte 2: true" in branches and "no: event.score gte 4: false" in branches


# --- welcome series --------------------------------------------------------------------------------


def test_the_welcome_series_skips_the_first_order_nudge_for_a_contact_who_already_ordered(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """Day 0 welcome, day 2 brand story, day 4 nudge with the code: only for the one who has not ordered."""
    journey_id = journey(sessions, shop, clock, "Welcome", welcome_series.recipe(discount_code="HELLO5"))
    for customer in ("buyer", "looker"):
        ingest(sessions, shop, clock, "subscribed", customer=customer,
               contact={"consent": {"email": "opted_in"}}, properties={"shop_url": "https://shop.example/"})
    drain(runtime)
    assert [s for _, s in sent(smtp_server)] == ["Welcome to Test Shop!"] * 2

    clock.advance(days=1)
    ingest(sessions, shop, clock, "order_placed", customer="buyer", properties={"order_id": "o-1", "total": 20})
    ingest(sessions, shop, clock, "subscribed", customer="looker")  # again: once ever
    drain(runtime)
    clock.advance(days=1, seconds=1)
    tick(runtime)
    assert [s for _, s in sent(smtp_server)[2:]] == ["The story behind Test Shop"] * 2

    clock.advance(days=2)
    tick(runtime)
    [nudge] = smtp_server.messages[4:]
    assert (nudge["To"], nudge["Subject"]) == ("looker@example.com", "Your welcome gift: HELLO5")
    assert "Start shopping: https://shop.example/" in text_of(nudge)
    by_contact = runs(sessions, shop, journey_id)
    assert (by_contact["buyer"].status, by_contact["buyer"].exit_reason) == (
        "exited", "already ordered: no first-order nudge")
    assert "welcome_code" not in attributes_of(sessions, shop, "buyer")
    assert journal(sessions, shop, "not_enrolled") == ["Welcome: re-entry rule once ever"]


# --- order status (transactional) ------------------------------------------------------------------


def test_order_emails_reach_customers_who_opted_out_of_marketing_but_never_suppressed_addresses(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """Placed, shipped (with tracking; a repeated webhook sends nothing more), delivered: all three go
    to an opted-out customer, while a marketing email to them is skipped; a suppressed address gets none."""
    for build in (order_status.confirmation_recipe, order_status.shipped_recipe, order_status.delivered_recipe):
        journey(sessions, shop, clock, build.__name__, build())
    journey(sessions, shop, clock, "Back in stock", wishlist.back_in_stock_recipe())
    with sessions.begin() as session:
        session.add(Suppression(workspace_id=shop.id, channel="email", address="bounced@example.com",
                                reason="hard bounce", created_at=clock()))
    opted_out = {"consent": {"email": "opted_out"}, "first_name": "Ada"}
    order = {"order_id": "1001", "order_number": "#1001", "total": 39, "currency": "EUR",
             "items": [{"name": "Moka pot", "price": 39}]}
    ingest(sessions, shop, clock, "order_placed", contact=opted_out, properties=order)
    ingest(sessions, shop, clock, "order_placed", customer="bounced", properties={**order, "order_id": "2002"})
    ingest(sessions, shop, clock, "back_in_stock", properties=PRODUCT)
    drain(runtime)
    clock.advance(days=1)
    shipped = {"order_id": "1001", "order_number": "#1001", "tracking_url": "https://track.example/1Z",
               "carrier": "UPS"}
    ingest(sessions, shop, clock, "order_fulfilled", properties=shipped)
    ingest(sessions, shop, clock, "order_shipped", properties=shipped)  # the same shipment, told twice
    drain(runtime)
    clock.advance(days=2)
    ingest(sessions, shop, clock, "order_delivered", properties={"order_id": "1001"})
    drain(runtime)

    assert sent(smtp_server) == [
        ("c-1@example.com", "Order #1001 confirmed"),
        ("c-1@example.com", "Your order #1001 is on its way"),
        ("c-1@example.com", "Your order 1001 has arrived"),
    ]
    assert "Track your parcel: https://track.example/1Z" in text_of(smtp_server.messages[1])
    skipped = {(m.to_address, m.template): m.skip_reason for m in messages(sessions, shop) if m.status == "skipped"}
    assert skipped == {
        ("bounced@example.com", "order_confirmation"): "skipped: email address is suppressed",
        ("c-1@example.com", "wishlist_back_in_stock"): "skipped: contact opted out of email",
    }


# --- wishlist, loyalty, referral -------------------------------------------------------------------


def test_wishlist_loyalty_and_referral_emails_go_out_once_per_product_tier_and_reward(
    runtime: Runtime, sessions, shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """Each alert is sent once per key however often the shop repeats it; a tier lost is not celebrated."""
    for name, definition in (("Back in stock", wishlist.back_in_stock_recipe()),
                             ("Price drop", wishlist.price_drop_recipe()),
                             ("Tier", loyalty_tier.recipe()), ("Referral", referral_reward.recipe())):
        journey(sessions, shop, clock, name, definition)
    for _ in range(2):
        ingest(sessions, shop, clock, "back_in_stock", properties=PRODUCT)
        ingest(sessions, shop, clock, "referral_converted", properties={"friend_name": "Grace", "reward_code": "R-1"})
    ingest(sessions, shop, clock, "price_dropped", properties={**PRODUCT, "old_price": 49, "new_price": 39})
    ingest(sessions, shop, clock, "loyalty_tier_changed",
           properties={"from": "connoisseur", "to": "star", "direction": "up", "total_spent": 1200.0})
    ingest(sessions, shop, clock, "loyalty_tier_changed",
           properties={"from": "star", "to": "connoisseur", "direction": "down", "total_spent": 900.0})
    ingest(sessions, shop, clock, "referral_converted", properties={"reward_code": "R-2"})
    drain(runtime)

    assert sorted(s for _, s in sent(smtp_server)) == [
        "Back in stock: Moka pot",
        "Congratulations: you are now Star",
        "Price drop: Moka pot now €39.00",
        "Your friend ordered: here is your reward",
        "Your friend ordered: here is your reward",
    ]
    rewards = [text_of(m) for m in smtp_server.messages if m["Subject"].startswith("Your friend")]
    assert "Grace just placed" in rewards[0] and "R-1" in rewards[0] and "R-2" in rewards[1]
    assert journal(sessions, shop, "not_enrolled") == [
        "Tier: entry filter not met: event.direction eq 'up' and event.to in ['connoisseur', 'star', 'guru']",
    ]

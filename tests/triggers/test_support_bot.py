"""The support bot answers "status" with the last order on the channel it was asked on, and hands off the rest."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.journeys.definition import ConditionStep, JourneyDefinition, SendStep, Trigger, WebhookStep
from engine.journeys.versions import create_journey, validate_definition
from engine.links.messenger import start_token
from engine.segments.conditions import Facts, holds
from engine.settings import ProviderSettings, Settings
from engine.store.models import Message
from engine.tracking.inbound import keyword
from templates.texts import has_text_template, load_text_template
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, drain
from tests.webapp.conftest import close_app
from triggers import library, support_bot
from webapp.app import create_app
from workers.runtime import Runtime
from workers.supervisor import free_port

TELEGRAM_SECRET = "tg-webhook-secret"
BOT_TOKEN = "123456:ABC-DEF"
CHAT_ID = 4242
INBOUND_CHANNELS = ("sms", "telegram", "whatsapp", "viber")
ORDER = {"order_id": "1001", "status": "shipped", "total": 49.0, "currency": "EUR",
         "occurred_at": "2030-01-06T10:00:00+00:00"}


def facts(properties: dict[str, Any]) -> Facts:
    return Facts(attributes={}, metrics={}, properties=properties, count_events=lambda _t, _s: 0,
                 now=datetime(2030, 1, 7, tzinfo=UTC))


def validated(definition: dict[str, Any]) -> JourneyDefinition:
    return validate_definition(definition, templates=SEED_TEMPLATES, workspace_id="any")


def test_the_recipe_validates_bare_and_with_a_support_webhook() -> None:
    """Listed in the library; a valid definition with and without support_url."""
    assert library.RECIPES["support_bot"].build is support_bot.recipe
    bare = validated(support_bot.recipe())
    full = validated(support_bot.recipe(support_url="https://shop.example/support"))
    assert bare.entry_events == full.entry_events == ("message_received",)
    assert isinstance(bare.trigger, Trigger) and bare.trigger.key == "provider_message_id"
    [ask, reply, exit_step] = bare.all_steps()
    assert isinstance(reply, SendStep) and reply.channel == "reply" and reply.transactional
    assert exit_step.type == "exit"
    assert any(isinstance(s, WebhookStep) and s.url == "https://shop.example/support" for s in full.all_steps())


def test_status_questions_match_in_any_case_and_with_spaces_around() -> None:
    """The condition compares the event's keyword: "Status", " СТАТУС? " match; other text does not."""
    step = validated(support_bot.recipe()).all_steps()[0]
    assert isinstance(step, ConditionStep)
    for text in ("status", " Status ", "STATUS?", "Статус", " статус! "):
        assert holds(step.condition, facts({"keyword": keyword(text)})), text
    for text in ("status of my refund", "where is my order", ""):
        assert not holds(step.condition, facts({"keyword": keyword(text)})), text


def test_commands_do_not_start_the_bot() -> None:
    """STOP, /start and /stop carry a `command` property, which the entry filter turns away."""
    definition = validated(support_bot.recipe())
    assert definition.entry_filter is not None
    assert holds(definition.entry_filter, facts({"keyword": "status"}))
    assert not holds(definition.entry_filter, facts({"keyword": "stop", "command": "stop"}))


def test_the_recipe_refuses_nonsense_options() -> None:
    """No keywords, or a support URL that is not http(s), fail when the recipe is built."""
    with pytest.raises(ValueError, match="keywords"):
        support_bot.recipe(keywords=[" "])
    with pytest.raises(ValueError, match="support_url"):
        support_bot.recipe(support_url="ftp://shop.example/")
    assert support_bot.recipe(keywords=["Where is my order"])["steps"][0]["condition"]["value"] == [
        "where is my order"]


@pytest.mark.parametrize("channel", INBOUND_CHANNELS)
def test_the_reply_template_exists_and_renders_with_and_without_an_order(channel: str) -> None:
    """Every channel a message can come in on has the reply; no order on record reads sensibly."""
    assert has_text_template(channel, support_bot.TEMPLATE)
    template = load_text_template(channel, support_bot.TEMPLATE)
    assert template.render({"last_order": ORDER}).text == "Your order #1001 is on its way (€49.00)."
    assert template.render({"last_order": {**ORDER, "total": None, "status": "placed"}}).text == (
        "Your order #1001 is confirmed.")
    assert template.render({"last_order": None}).text.startswith("We found no order for this")


def test_whatsapp_has_an_approved_template_for_outside_the_window() -> None:
    """Outside the 24-hour window the reply goes as template order_status_reply with two parameters."""
    template = load_text_template("whatsapp", support_bot.TEMPLATE)
    rendered = template.render({"last_order": ORDER}, free_text=False)
    assert rendered.provider_template is not None
    assert (rendered.provider_template.name, rendered.provider_template.language) == ("order_status_reply", "en")
    assert rendered.provider_template.parameters == ("1001", "on its way")
    assert template.render({"last_order": None}, free_text=False).provider_template.parameters == (  # type: ignore[union-attr]
        "-", "not on record")


# --- end to end: Telegram webhook -> event -> journey -> Telegram sendMessage / support webhook ---

@dataclass
class FakeProvider:
    """A local HTTP server answering Telegram's sendMessage and the shop's support webhook."""

    url: str
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    port = free_port()
    fake = FakeProvider(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            fake.requests.append((self.path, body))
            if self.path == f"/bot{BOT_TOKEN}/sendMessage":
                answer = {"ok": True, "result": {"message_id": len(fake.requests), "date": 1_893_999_600,
                                                 "chat": {"id": int(body["chat_id"]), "type": "private"},
                                                 "text": body["text"]}}
                self._answer(200, answer)
            elif self.path == "/support":
                self._answer(204, None)
            else:
                self._answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def settings(settings: Settings, provider: FakeProvider) -> Settings:
    """Telegram pointed at the local fake; its webhook secret set."""
    return replace(settings, providers=ProviderSettings(
        telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=TELEGRAM_SECRET, telegram_api_url=provider.url))


@pytest.fixture
def client(settings: Settings, clock: FakeClock) -> Iterator[FlaskClient]:
    """The web app (gunicorn's factory) on this test's database, queues, clock and settings."""
    app = create_app(settings, clock=clock)
    yield app.test_client()
    close_app(app)


def telegram_says(client: FlaskClient, shop: Shop, update_id: int, text: str) -> None:
    update = {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1_893_999_600, "text": text,
        "from": {"id": CHAT_ID, "is_bot": False, "first_name": "Ada"},
        "chat": {"id": CHAT_ID, "first_name": "Ada", "type": "private"}}}
    response = client.post(f"/api/v1/providers/telegram/{shop.id}", json=update,
                           headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    assert response.status_code == 200, response.json


def test_a_telegram_status_question_is_answered_in_telegram_and_the_rest_goes_to_support(
        client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock, runtime: Runtime,
        provider: FakeProvider) -> None:
    """Through the webhook route and real workers: "Status?" gets the order status, a question the shop."""
    with sessions.begin() as session:
        create_journey(session, shop.id, support_bot.NAME,
                       support_bot.recipe(support_url=f"{provider.url}/support"), templates=SEED_TEMPLATES,
                       now=clock())
        [order] = ingest_events(session, shop.id, [{
            "id": "evt-order-1001", "type": "order_fulfilled",
            "contact": {"external_id": "cust-1", "email": "ada@example.com"},
            "properties": {"order_id": "1001", "total": 49.0, "currency": "EUR"}}], now=clock())
    assert order.contact_id is not None
    drain(runtime)
    telegram_says(client, shop, 1, f"/start {start_token('test-secret-key', shop.id, order.contact_id)}")
    clock.advance(seconds=5)
    telegram_says(client, shop, 2, "  Status? ")
    drain(runtime)
    sends = [body for path, body in provider.requests if path.endswith("/sendMessage")]
    assert sends == [{"chat_id": str(CHAT_ID), "text": "Your order #1001 is on its way (€49.00)."}]

    clock.advance(seconds=5)
    telegram_says(client, shop, 3, "Do you ship to Norway?")
    telegram_says(client, shop, 3, "Do you ship to Norway?")  # Telegram's redelivery: one hand-off
    drain(runtime)
    handed = [body for path, body in provider.requests if path == "/support"]
    assert len(handed) == 1
    assert handed[0]["event"]["text"] == "Do you ship to Norway?" and handed[0]["event"]["channel"] == "telegram"
    assert handed[0]["contact"]["external_id"] == "cust-1" and handed[0]["data"] == {"reason": "customer_message"}
    with sessions() as session:
        channels = session.scalars(select(Message.channel).where(Message.workspace_id == shop.id,
                                                                 Message.contact_id == order.contact_id)
                                   .order_by(Message.id)).all()
    assert channels == ["telegram", "webhook"]

"""Shared pieces for channel tests: the fake providers fixture, a webhook receiver, adapter harnesses.

Import the fixtures you use into a test module (`from tests.providers import fake_providers`).

`HARNESSES` is the conformance registry: channel adapter name -> a factory that, given
the pytest request, returns a `Harness` (build the adapter, read what the provider
received, inject faults). tests/workers/channels/test_channel_conformance.py runs every entry
through the same protocol tests; to add an adapter (e.g. email over SMTP), add a
factory here whose harness wraps that adapter and its local server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pytest
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from engine.delivery.ports import MessageSender, OutgoingMessage
from workers.channels.http import text_with_links
from workers.channels.sms_gateway import HttpSmsGateway
from workers.channels.telegram import TelegramBot
from workers.channels.twilio import TwilioSms
from workers.channels.viber import ViberBot
from workers.channels.whatsapp import WhatsAppCloud
from workers.dev.fake_providers import FakeCredentials, FakeProviders
from workers.dev.fake_providers import telegram as fake_telegram
from workers.dev.fake_providers import twilio as fake_twilio
from workers.dev.fake_providers import viber as fake_viber
from workers.dev.fake_providers import whatsapp as fake_whatsapp

WRONG = FakeCredentials(
    twilio_auth_token="wrong-token", gateway_token="wrong-token", telegram_bot_token="1000000001:wrong-token",
    whatsapp_token="wrong-token", viber_auth_token="wrong-token",
)


@pytest.fixture
def fake_providers() -> Iterator[FakeProviders]:
    """The fake provider server on a free port, receipts posted at once; stopped after the test."""
    with FakeProviders(callback_delay=0) as fake:
        yield fake


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    url: str


@dataclass
class WebhookReceiver:
    """A real HTTP server standing in for our web app's provider webhook route: it keeps what it gets."""

    requests: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    server: BaseWSGIServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        with self.changed:
            self.requests.append(Received(request.path, dict(request.headers), request.get_data(), request.url))
            self.changed.notify_all()
        return Response("", status=200)(environ, start_response)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.requests) >= count, timeout), self.requests
            return list(self.requests)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.server = make_server("127.0.0.1", 0, receiver, threaded=True)
    thread = threading.Thread(target=receiver.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
    thread.join(5)


# --- conformance harnesses -------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """What the provider received, in channel-neutral terms."""

    to: str
    text: str
    buttons: list[dict[str, str]]
    message_id: int | None
    workspace_id: str | None


class Harness(Protocol):
    recipient: str
    dead_recipient: str | None  # None: the provider cannot say an address is dead
    reports_retry_after: bool  # the provider's rate-limit answer says how long to wait

    def adapter(self, *, valid_credentials: bool = True, api_url: str | None = None,
                timeout: float = 5.0) -> MessageSender: ...
    def sent(self) -> list[Sent]: ...
    def expected(self, message: OutgoingMessage) -> Sent: ...
    def fail_next(self, status: int = 500) -> None: ...
    def rate_limit_next(self, retry_after: float) -> None: ...
    def delay_next(self, seconds: float) -> None: ...


Builder = Callable[[FakeCredentials, str, float], MessageSender]


@dataclass
class FakeProviderHarness:
    fake: FakeProviders
    provider: str
    build: Builder
    recipient: str
    dead_recipient: str | None
    reports_retry_after: bool
    shows_buttons: bool  # messengers show buttons; SMS puts the links under the text
    normalize_to: Callable[[str], str] = str

    def adapter(self, *, valid_credentials: bool = True, api_url: str | None = None,
                timeout: float = 5.0) -> MessageSender:
        credentials = self.fake.credentials if valid_credentials else WRONG
        return self.build(credentials, api_url or self.fake.url, timeout)

    def sent(self) -> list[Sent]:
        return [Sent(m.to, m.text, m.meta.get("buttons", []), m.message_id, m.workspace_id)
                for m in self.fake.messages_for(self.provider)]

    def expected(self, message: OutgoingMessage) -> Sent:
        buttons = [{"text": b.text, "url": b.url} for b in message.buttons]
        text = message.text if self.shows_buttons else text_with_links(message.text, message.buttons)
        return Sent(self.normalize_to(message.to), text, buttons if self.shows_buttons else [],
                    message.message_id, message.workspace_id)

    def fail_next(self, status: int = 500) -> None:
        self.fake.fail_next(self.provider, status=status)

    def rate_limit_next(self, retry_after: float) -> None:
        self.fake.rate_limit_next(self.provider, retry_after=retry_after)

    def delay_next(self, seconds: float) -> None:
        self.fake.delay_next(self.provider, seconds=seconds)


def _twilio(c: FakeCredentials, url: str, timeout: float) -> MessageSender:
    return TwilioSms(account_sid=c.twilio_account_sid, auth_token=c.twilio_auth_token, sender=c.twilio_from,
                     api_url=url, timeout=timeout)


def _gateway(c: FakeCredentials, url: str, timeout: float) -> MessageSender:
    return HttpSmsGateway(url_template=f"{url}/gateway/send?to={{to}}&text={{text}}&from={{sender}}",
                          token=c.gateway_token, id_path="id", sender="Shop", timeout=timeout)


def _telegram(c: FakeCredentials, url: str, timeout: float) -> MessageSender:
    return TelegramBot(bot_token=c.telegram_bot_token, api_url=url, timeout=timeout)


def _whatsapp(c: FakeCredentials, url: str, timeout: float) -> MessageSender:
    return WhatsAppCloud(token=c.whatsapp_token, phone_number_id=c.whatsapp_phone_number_id, api_url=url,
                         timeout=timeout)


def _viber(c: FakeCredentials, url: str, timeout: float) -> MessageSender:
    return ViberBot(auth_token=c.viber_auth_token, sender_name="Test Shop", api_url=url, timeout=timeout)


def _fake_harness(provider: str, build: Builder, **kwargs: Any) -> Callable[[pytest.FixtureRequest], Harness]:
    def factory(request: pytest.FixtureRequest) -> Harness:
        return FakeProviderHarness(request.getfixturevalue("fake_providers"), provider, build, **kwargs)
    return factory


HARNESSES: dict[str, Callable[[pytest.FixtureRequest], Harness]] = {
    "twilio": _fake_harness("twilio", _twilio, recipient="+14155552671", dead_recipient=fake_twilio.INVALID_NUMBER,
                            reports_retry_after=True, shows_buttons=False),
    "gateway": _fake_harness("gateway", _gateway, recipient="+14155552671", dead_recipient=None,
                             reports_retry_after=True, shows_buttons=False),
    "telegram": _fake_harness("telegram", _telegram, recipient="123456789", dead_recipient=fake_telegram.BLOCKED_CHAT,
                              reports_retry_after=True, shows_buttons=True),
    "whatsapp": _fake_harness("whatsapp", _whatsapp, recipient="+14155552671",
                              dead_recipient=fake_whatsapp.UNDELIVERABLE, reports_retry_after=False,
                              shows_buttons=True, normalize_to=lambda to: to.removeprefix("+")),
    "viber": _fake_harness("viber", _viber, recipient="01234567890A=", dead_recipient=fake_viber.UNSUBSCRIBED,
                           reports_retry_after=False, shows_buttons=True),
}


def message_to(recipient: str, **changes: Any) -> OutgoingMessage:
    base = OutgoingMessage(message_id=4242, workspace_id="ws-conformance", channel="test", to=recipient,
                           text="Your cart misses you: 2 items, 49,90 €")
    return replace(base, **changes)

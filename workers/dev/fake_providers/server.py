"""One local HTTP server that speaks Twilio, an SMS gateway, Telegram, WhatsApp Cloud and Viber.

Every API lives at its real path, so an adapter only changes its base URL. The server
checks credentials and payloads as the provider does and answers with the provider's
own success and error bodies; it records each accepted message, plays injected faults
(`fail_next`, `rate_limit_next`, `delay_next`), and, given a database URL (embedded
mode), writes each message to `outbox_captures` so /outbox shows every channel. Given
a callback URL (our web app), it posts signed receipts back like the provider would,
and `inbound()` plays a user writing to us.

    with FakeProviders(port=0) as fake:
        adapter = TelegramBot(bot_token=fake.credentials.telegram_bot_token, api_url=fake.url)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from engine.clock import utcnow
from engine.store.db import make_engine, make_sessionmaker
from engine.store.models import OutboxCapture
from workers.dev.fake_providers import control, gateway, telegram, twilio, viber, whatsapp
from workers.dev.fake_providers.answers import json_response
from workers.dev.fake_providers.callbacks import Callback, CallbackPoster
from workers.dev.fake_providers.state import CHANNEL_OF, FakeCredentials, FakeMessage, FakeState, Fault

log = logging.getLogger("rapport.fake_providers")
MODULES = {"twilio": twilio, "gateway": gateway, "telegram": telegram, "whatsapp": whatsapp, "viber": viber}


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # a line per provider call drowns the worker's own logs


class FakeProviders:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, credentials: FakeCredentials | None = None,
                 database_url: str | None = None, sessions: sessionmaker[Session] | None = None,
                 callback_url: str | None = None, callback_delay: float = 1.0,
                 clock: Callable[[], datetime] = utcnow):
        self.host, self.port = host, port
        self.credentials = credentials or FakeCredentials()
        self.state = FakeState()
        self.sessions = sessions or (make_sessionmaker(make_engine(database_url)) if database_url else None)
        self.callback_base = callback_url.rstrip("/") if callback_url else None
        self.callbacks = CallbackPoster(delay=callback_delay)
        self.clock = clock
        self.url_map = Map([rule for module in (*MODULES.values(), control) for rule in module.rules()])
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- life ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeProviders:
        self._server = make_server(self.host, self.port, self, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        # A short poll interval makes stop() quick (tests start and stop a server each).
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-providers", daemon=True)
        self._thread.start()
        self.callbacks.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends injected delays early
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.callbacks.stop()

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- for tests: what was sent, and faults to play ------------------------------------

    @property
    def messages(self) -> list[FakeMessage]:
        return self.state.messages()

    def messages_for(self, provider: str) -> list[FakeMessage]:
        return self.state.messages(provider)

    def fail_next(self, provider: str, *, status: int = 500, times: int = 1) -> None:
        self.state.add_fault(provider, Fault("error", times=times, status=status))

    def rate_limit_next(self, provider: str, *, retry_after: float = 1, times: int = 1) -> None:
        self.state.add_fault(provider, Fault("rate_limit", times=times, status=429, retry_after=retry_after))

    def delay_next(self, provider: str, *, seconds: float, times: int = 1) -> None:
        """Answer only after `seconds` (then normally): the client's timeout fires first."""
        self.state.add_fault(provider, Fault("delay", times=times, seconds=seconds))

    def inbound(self, provider: str, *, workspace_id: str, sender: str, text: str,
                sender_name: str | None = None) -> int:
        """Post a signed inbound message from `sender` to our webhook route now; return its HTTP status."""
        url = self.callback_url(provider, workspace_id)
        if url is None:
            raise RuntimeError("the fake providers were started without a callback URL")
        body, headers = MODULES[provider].inbound_request(self, url, sender=sender, text=text,
                                                          sender_name=sender_name)
        return self.callbacks.post_now(Callback(url, body, headers))

    # --- for the provider modules ----------------------------------------------------------

    def injected(self, provider: str, render: Callable[[Fault], Response]) -> Response | None:
        """Play the next fault for `provider`: an error answer, or a delay before the normal one."""
        fault = self.state.take_fault(provider)
        if fault is None:
            return None
        if fault.kind == "delay":
            deadline = time.monotonic() + fault.seconds
            while time.monotonic() < deadline and not self._stopping.wait(0.05):
                pass
            return None
        return render(fault)

    def accept(self, request: Request, *, provider: str, to: str, text: str, provider_id: str,
               meta: dict[str, Any] | None = None) -> FakeMessage:
        raw_id = request.headers.get("X-Rapport-Message", "")
        message = FakeMessage(
            provider=provider, channel=CHANNEL_OF[provider], to=to, text=text, provider_id=provider_id,
            received_at=self.clock(),
            meta={"provider": provider, **{k: v for k, v in (meta or {}).items() if v is not None}},
            workspace_id=request.headers.get("X-Rapport-Workspace") or None,
            message_id=int(raw_id) if raw_id.isdigit() else None)
        if self.sessions is not None:
            with self.sessions.begin() as session:
                session.add(OutboxCapture(
                    workspace_id=message.workspace_id, message_id=message.message_id, channel=message.channel,
                    to_address=to[:320], subject=None, text=text, html=None, meta=message.meta,
                    received_at=message.received_at))
        self.state.record(message)
        return message

    def callback_url(self, provider: str, workspace_id: str | None) -> str | None:
        """Our app's provider webhook route for this workspace (built by the web app's provider routes)."""
        if self.callback_base is None or not workspace_id:
            return None
        return f"{self.callback_base}/api/v1/providers/{CHANNEL_OF[provider]}/{workspace_id}"

    def post_later(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.callbacks.post_later(Callback(url, body, headers))

    # --- WSGI ---------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, values = adapter.match()
            response = endpoint(self, request, **values)
        except NotFound:
            response = self._not_found(request)
        except HTTPException as exc:
            response = exc.get_response(environ)
        except Exception:
            log.exception("fake provider failed on %s", request.path)
            response = json_response({"error": "the fake provider failed; see its log"}, status=500)
        return response(environ, start_response)

    def _not_found(self, request: Request) -> Response:
        for name, module in MODULES.items():
            if module.owns(request.path):
                log.debug("unknown %s path %s", name, request.path)
                answer: Response = module.not_found(request)
                return answer
        return json_response({"error": f"no fake provider serves {request.path}"}, status=404)

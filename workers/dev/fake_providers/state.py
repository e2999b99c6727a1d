"""What the fake providers know and remember: their credentials, the messages they took, faults to play.

The credentials are deliberately fake-looking; embedded `rapport run` hands the same
values to the adapters (see `fake_provider_env`), so every channel works locally.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

PROVIDERS = ("twilio", "gateway", "telegram", "whatsapp", "viber")
CHANNEL_OF = {"twilio": "sms", "gateway": "sms", "telegram": "telegram", "whatsapp": "whatsapp", "viber": "viber"}


@dataclass(frozen=True)
class FakeCredentials:
    twilio_account_sid: str = "ACfake00000000000000000000000000"
    twilio_auth_token: str = "fake-twilio-auth-token"
    twilio_from: str = "+15005550006"  # Twilio's own magic "valid sender" test number
    gateway_token: str = "fake-gateway-token"
    telegram_bot_token: str = "1000000001:FAKE-telegram-bot-token-for-local-use"
    telegram_webhook_secret: str = "fake-telegram-webhook-secret"
    whatsapp_token: str = "FAKEwhatsappAccessToken"
    whatsapp_phone_number_id: str = "100000000000001"
    whatsapp_app_secret: str = "fake-whatsapp-app-secret"
    whatsapp_verify_token: str = "fake-whatsapp-verify-token"
    viber_auth_token: str = "fake-viber-auth-token-0000000000"


def fake_provider_env(base_url: str, credentials: FakeCredentials | None = None) -> dict[str, str]:
    """The environment that points every adapter at the fake providers served at `base_url`."""
    c = credentials or FakeCredentials()
    base = base_url.rstrip("/")
    return {
        "TWILIO_ACCOUNT_SID": c.twilio_account_sid, "TWILIO_AUTH_TOKEN": c.twilio_auth_token,
        "TWILIO_FROM": c.twilio_from, "TWILIO_API_URL": base,
        "TELEGRAM_BOT_TOKEN": c.telegram_bot_token, "TELEGRAM_WEBHOOK_SECRET": c.telegram_webhook_secret,
        "TELEGRAM_API_URL": base,
        "WHATSAPP_TOKEN": c.whatsapp_token, "WHATSAPP_PHONE_NUMBER_ID": c.whatsapp_phone_number_id,
        "WHATSAPP_APP_SECRET": c.whatsapp_app_secret, "WHATSAPP_VERIFY_TOKEN": c.whatsapp_verify_token,
        "WHATSAPP_API_URL": base,
        "VIBER_AUTH_TOKEN": c.viber_auth_token, "VIBER_API_URL": base,
    }


@dataclass(frozen=True)
class FakeMessage:
    """One message a fake provider accepted, as it understood it."""

    provider: str
    channel: str
    to: str
    text: str
    provider_id: str
    received_at: datetime
    meta: dict[str, Any] = field(default_factory=dict)  # buttons, template, sender...
    workspace_id: str | None = None  # from X-Rapport-Workspace
    message_id: int | None = None  # from X-Rapport-Message

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "received_at": self.received_at.isoformat()}


@dataclass
class Fault:
    kind: Literal["error", "rate_limit", "delay"]
    times: int = 1
    status: int = 500
    retry_after: float = 1.0
    seconds: float = 0.0


class FakeState:
    """Thread-safe memory of the fake server (its handlers run on many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[FakeMessage] = []
        self._faults: dict[str, deque[Fault]] = {p: deque() for p in PROVIDERS}
        self._counter = 0

    def next_number(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def record(self, message: FakeMessage) -> None:
        with self._lock:
            self._messages.append(message)

    def messages(self, provider: str | None = None) -> list[FakeMessage]:
        with self._lock:
            return [m for m in self._messages if provider is None or m.provider == provider]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            for queue in self._faults.values():
                queue.clear()

    def add_fault(self, provider: str, fault: Fault) -> None:
        if provider not in self._faults:
            raise ValueError(f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults[provider].append(fault)

    def take_fault(self, provider: str) -> Fault | None:
        """The next fault to play for `provider`, counting it down; None when there is none."""
        with self._lock:
            queue = self._faults[provider]
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.popleft()
            return fault

"""What every HTTP channel adapter shares: a pooled session, failure classes, webhook helpers.

One `ProviderHttp` per adapter keeps its connections open between sends (a worker
sends batches to one provider). Network failures become TransientSendError here, so
adapters only classify the provider's answers. Every request carries our message and
workspace ids in `X-Rapport-Message` / `X-Rapport-Workspace`: real providers ignore
unknown headers, and the local fake providers use them to fill the outbox.

`on_handover` (dispatch's callback, engine/delivery/ports.py) is called right before the request
is sent: from then on the provider may have the message. If it raises, nothing is sent.
A request sent whose answer never came (a read timeout) is SendInDoubt: the provider may
have accepted it, and the workspace's in-doubt policy decides whether to send it again.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from engine.clock import utcnow
from engine.delivery.ports import Button, OutgoingMessage
from engine.errors import FieldErrors, MalformedJson, PermanentSendError, SendInDoubt, TransientSendError
from engine.strict_json import read_json, refuse_problems

USER_AGENT = "Rapport/0.1 (+https://github.com/rapport)"


class ProviderHttp:
    def __init__(self, provider: str, *, timeout: float = 15.0, connect_timeout: float = 5.0, pool_size: int = 8):
        self.provider = provider
        self.timeout = (connect_timeout, timeout)
        self.session = requests.Session()
        # No urllib3 retries: a resent POST could send the message twice; dispatch decides retries.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT

    def request(self, method: str, url: str, *, message: OutgoingMessage | None = None,
                headers: dict[str, str] | None = None, on_handover: Callable[[], None] | None = None,
                **kwargs: Any) -> requests.Response:
        all_headers = dict(headers or {})
        if message is not None:
            all_headers["X-Rapport-Message"] = str(message.message_id)
            all_headers["X-Rapport-Workspace"] = message.workspace_id
        if on_handover is not None:
            on_handover()
        try:
            return self.session.request(method, url, headers=all_headers, timeout=self.timeout, **kwargs)
        except requests.ConnectTimeout:
            raise TransientSendError(f"{self.provider}: connection timed out") from None
        except requests.ReadTimeout:
            # The provider may have accepted the message before we gave up, and providers offer
            # no idempotency key for sends: a retry could duplicate it, so the policy decides.
            raise SendInDoubt(f"{self.provider}: no answer in time (the message may have gone out)") from None
        except requests.ConnectionError as exc:
            raise TransientSendError(f"{self.provider}: connection failed ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            raise TransientSendError(f"{self.provider}: {type(exc).__name__}") from None

    def close(self) -> None:
        self.session.close()


def json_body(response: requests.Response) -> dict[str, Any]:
    """The answer as a JSON object, or {} when it is something else (a proxy's HTML error page)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def retry_after(response: requests.Response) -> float | None:
    """The Retry-After header in seconds (the delta form; HTTP dates are rare from APIs)."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def raise_for_transport(provider: str, response: requests.Response, detail: str = "") -> None:
    """Raise for what any HTTP API means the same way: 429, 5xx, rejected credentials."""
    status = response.status_code
    suffix = f": {detail}" if detail else ""
    if status == 429:
        raise TransientSendError(f"{provider}: rate limited (HTTP 429){suffix}", retry_after=retry_after(response))
    if status >= 500:
        raise TransientSendError(f"{provider}: HTTP {status}{suffix}", retry_after=retry_after(response))
    if status in (401, 403):
        raise PermanentSendError(f"{provider}: credentials rejected (HTTP {status}){suffix}")


def text_with_links(text: str, buttons: tuple[Button, ...]) -> str:
    """Plain-text channels (SMS) cannot show buttons: their links go under the text instead."""
    if not buttons:
        return text
    return "\n".join([text, *(f"{button.text}: {button.url}" for button in buttons)])


# --- webhooks ---------------------------------------------------------------------------


def header(headers: Mapping[str, str], name: str) -> str:
    """A header by name, whatever the case the caller's mapping keeps (werkzeug's or a dict)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value or ""


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison; an unconfigured (empty) secret never matches."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def parse_json_body(body: bytes) -> Any:
    """A signed body read by the strict JSON reader (engine/strict_json.py). One that is not JSON,
    nests too deeply or holds values that cannot be stored (NaN, Infinity, NUL...) is the
    sender's bug: field errors (the webhook view answers 400 naming them), never a 500."""
    try:
        value, problems = read_json(body)
    except MalformedJson as exc:
        raise FieldErrors([{"field": "body", "message": f"not a JSON document: {exc}"}]) from None
    refuse_problems(problems)
    return value


def from_epoch(value: Any, *, millis: bool = False) -> datetime:
    """A provider's Unix timestamp (seconds or milliseconds, number or string); now if absent."""
    try:
        seconds = float(value) / (1000 if millis else 1)
    except (TypeError, ValueError):
        return utcnow()
    return datetime.fromtimestamp(seconds, UTC)

"""Outgoing webhooks (the journey's webhook step): POST JSON, classify the answer.

2xx is delivered; 408, 425, 429, 5xx, timeouts and connection errors are worth a
retry; any other 4xx means the receiver refuses this call, so retrying cannot help.
`on_handover` is called right before the request (engine/delivery/ports.py); a request whose
answer never came (a read timeout) may have been acted on: SendInDoubt.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

from engine.errors import PermanentSendError, SendInDoubt, TransientSendError

RETRYABLE = {408, 425, 429}


class HttpWebhookSender:
    def __init__(self, *, timeout: float = 10.0):
        self.timeout = timeout

    def post(self, url: str, body: bytes, headers: dict[str, str], *,
             on_handover: Callable[[], None] | None = None) -> str:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"User-Agent": "Rapport-Webhook/1", **headers})
        if on_handover is not None:
            on_handover()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - marketer's URL
                return f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} from {url}"
            if exc.code in RETRYABLE or exc.code >= 500:
                raise TransientSendError(reason) from None
            raise PermanentSendError(reason) from None
        except urllib.error.URLError as exc:  # urllib wraps what fails while connecting and writing
            raise TransientSendError(f"{url}: {exc.reason}") from None
        except TimeoutError:  # the request went out; its answer did not come back in time
            raise SendInDoubt(f"{url}: no answer in {self.timeout:g} s (the call may have been acted on)") from None
        except OSError as exc:
            raise TransientSendError(f"{url}: {exc}") from None

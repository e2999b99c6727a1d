"""Outgoing webhooks (the journey's webhook step): POST JSON, classify the answer.

2xx is delivered; 408, 425, 429, 5xx, timeouts and connection errors are worth a
retry; any other 4xx means the receiver refuses this call, so retrying cannot help.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from engine.errors import PermanentSendError, TransientSendError

RETRYABLE = {408, 425, 429}


class HttpWebhookSender:
    def __init__(self, *, timeout: float = 10.0):
        self.timeout = timeout

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> str:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"User-Agent": "Rapport-Webhook/1", **headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - marketer's URL
                return f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} from {url}"
            if exc.code in RETRYABLE or exc.code >= 500:
                raise TransientSendError(reason) from None
            raise PermanentSendError(reason) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise TransientSendError(f"{url}: {getattr(exc, 'reason', exc)}") from None

"""Receipts the fake providers post back later, like the real ones do.

A real provider reports "delivered" some time after it accepted a message; posting at
once would also race the dispatcher, which records the provider's id only after the
send call returns. So receipts wait `delay` seconds on one background thread, in order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import requests

log = logging.getLogger("rapport.fake_providers")


@dataclass(frozen=True)
class Callback:
    url: str
    body: bytes
    headers: dict[str, str]


class CallbackPoster:
    def __init__(self, *, delay: float = 1.0, timeout: float = 10.0):
        self.delay = delay
        self.timeout = timeout
        self._queue: queue.Queue[tuple[float, Callback] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self.results: list[tuple[str, int | str]] = []  # (url, HTTP status or error), for tests and logs

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fake-provider-callbacks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None
        self._session.close()

    def post_later(self, callback: Callback) -> None:
        self._queue.put((time.monotonic() + self.delay, callback))

    def post_now(self, callback: Callback) -> int:
        response = self._session.post(callback.url, data=callback.body, headers=callback.headers, timeout=self.timeout)
        self.results.append((callback.url, response.status_code))
        return response.status_code

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            due, callback = item
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                self.post_now(callback)
            except requests.RequestException as exc:  # our app is down: a real provider would retry; we log
                self.results.append((callback.url, type(exc).__name__))
                log.warning("receipt to %s failed: %s", callback.url, exc)

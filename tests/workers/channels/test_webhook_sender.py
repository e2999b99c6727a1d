"""The journey's outgoing webhook (workers/channels/webhook.py) against a real local HTTP server: the hand-over is
announced right before the request, and an answer that never comes leaves the call in doubt."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.errors import ClaimLost, SendInDoubt, TransientSendError
from workers.channels.webhook import HttpWebhookSender
from workers.supervisor import free_port


class Receiver(BaseHTTPRequestHandler):
    calls: list[bytes] = []
    delay = 0.0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append(body)
        time.sleep(type(self).delay)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.calls, Receiver.delay = [], 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_a_raising_hand_over_sends_nothing_and_a_normal_one_goes_first(receiver: str) -> None:
    """on_handover runs before the request; if it raises, the receiver gets nothing."""
    seen: list[int] = []

    def refuse() -> None:
        seen.append(len(Receiver.calls))
        raise ClaimLost("claim went to another worker")

    with pytest.raises(ClaimLost):
        HttpWebhookSender().post(receiver, b"{}", {}, on_handover=refuse)
    assert HttpWebhookSender().post(receiver, b"{}", {}, on_handover=lambda: seen.append(len(Receiver.calls))) \
        == "HTTP 204"
    assert seen == [0, 0] and Receiver.calls == [b"{}"]


def test_a_receiver_that_does_not_answer_in_time_leaves_the_call_in_doubt(receiver: str) -> None:
    """The request went out and the answer did not come: SendInDoubt (the receiver may have acted on it)."""
    Receiver.delay = 2.0
    with pytest.raises(SendInDoubt, match="no answer"):
        HttpWebhookSender(timeout=0.3).post(receiver, b"{}", {})
    assert Receiver.calls == [b"{}"]


def test_a_receiver_that_is_not_listening_is_transient() -> None:
    """Nothing reached anyone: a plain retry later."""
    with pytest.raises(TransientSendError):
        HttpWebhookSender(timeout=1).post(f"http://127.0.0.1:{free_port()}/hook", b"{}", {})

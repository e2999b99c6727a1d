"""A worker's teardown ends its pubsub listener at once, whoever wins the race for the unsubscribe reply."""

from __future__ import annotations

import threading
import time
from typing import Any

from workers.queues import make_queues
from workers.runtime import Runtime
from workers.worker import Worker


def test_the_listener_ends_even_when_it_reads_the_unsubscribe_reply_first(runtime: Runtime, namespace: str) -> None:
    """The unsubscribe is slowed so the listener thread reads its reply before the worker stops it:
    with rq's own order the thread then waits a minute for a new subscription and teardown joins it."""
    worker = Worker(list(make_queues(runtime.redis, namespace).values()), runtime)
    worker.subscribe()
    pubsub: Any = worker.pubsub
    sent = pubsub.unsubscribe

    def unsubscribe_then_dawdle(*args: Any) -> Any:
        answer = sent(*args)
        time.sleep(0.5)  # the listener handles the reply meanwhile
        return answer
    pubsub.unsubscribe = unsubscribe_then_dawdle

    finished = threading.Event()
    threading.Thread(target=lambda: (worker.unsubscribe(), finished.set()), daemon=True).start()

    assert finished.wait(10), "the worker's teardown is still waiting for its pubsub thread"
    assert worker.pubsub_thread is not None and not worker.pubsub_thread.is_alive()


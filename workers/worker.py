"""The worker process's RQ worker: `rapport worker` runs one (workers/cli/main.py), and so do the tests.

Jobs carry batches of ids and run in-process (no fork per job: the SMTP connection and
the parsed journeys stay warm between jobs).
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

from workers.runtime import Runtime, serving


class Worker(SimpleWorker):
    """RQ's SimpleWorker (jobs run in-process, JSON payloads) that gives its jobs its runtime, stops
    promptly and ends its command listener promptly.

    Each job it performs finds the worker's runtime (settings, sessions, senders, clock) with
    `job_runtime()`: the worker owns it for its whole life, the jobs borrow it.

    A warm shutdown (the first SIGTERM or SIGINT) lets RQ finish the job at hand; `runtime.stopping` is set
    too, which a dispatch job reads between two messages: it finishes the one it is handing over and
    gives its other claims back at once (engine/delivery/dispatch.py), so a stop leaves nothing in
    doubt and the job ends in moments however many messages it held.

    rq unsubscribes the worker's pubsub channel and then stops the listener thread. With
    redis-py 8.2 the thread, woken by the unsubscribe reply and finding nothing subscribed,
    waits up to rq's 60-second poll for a new subscription, and stop() now joins it: a
    worker's teardown (every burst in the tests, every shutdown) could hang for a minute.
    Here the thread's run flag is cleared first, so the unsubscribe reply ends it; if the
    thread ended (and closed the connection) before the unsubscribe was written, there is
    nothing left to unsubscribe.
    """

    def __init__(self, queues: list[Queue], runtime: Runtime):
        super().__init__(queues, connection=runtime.redis, serializer=JSONSerializer)
        self.runtime = runtime

    def execute_job(self, job: Job, queue: Queue) -> None:
        with serving(self.runtime):
            super().execute_job(job, queue)

    def handle_warm_shutdown_request(self) -> None:
        self.runtime.stopping.set()
        super().handle_warm_shutdown_request()

    def unsubscribe(self) -> None:
        thread, pubsub = self.pubsub_thread, self.pubsub
        if thread is None or pubsub is None:
            return
        try:
            thread.stop(timeout=0)  # clear the run flag; the join comes after the unsubscribe
        except TypeError:  # redis-py before 8.2: stop() only clears the flag
            thread.stop()
        try:
            pubsub.unsubscribe()
        except (RedisConnectionError, OSError):
            pass  # the listener closed the connection first: the server dropped the subscription
        thread.join(timeout=1)
        pubsub.close()

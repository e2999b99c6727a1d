"""Redis connection, RQ queues, and the job sink that engine.store.db calls after a commit.

Jobs carry batches of ids (a job per event or message could not keep up: RQ moves
about 800 jobs/s per worker), use the JSON serializer, and keep no results.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.serializers import JSONSerializer

from engine.store.db import DeferredJob, JobName, JobSink

# Which queue each job goes to; the worker drains them in this order, so sends
# already decided go out before new events are evaluated.
JOB_QUEUES = {
    JobName.DISPATCH_MESSAGES: "messages",
    JobName.ADVANCE_RUNS: "runs",
    JobName.EVALUATE_EVENTS: "events",
}
QUEUE_ORDER = ("messages", "runs", "events")


def connect_redis(url: str) -> Redis:
    if url.startswith("unix://"):
        return Redis.from_url(url, health_check_interval=30)
    return Redis.from_url(url, health_check_interval=30, socket_keepalive=True)


def queue_name(namespace: str, kind: str) -> str:
    return f"{namespace}:{kind}"


def make_queues(redis: Redis, namespace: str) -> dict[str, Queue]:
    return {
        kind: Queue(queue_name(namespace, kind), connection=redis, serializer=JSONSerializer)
        for kind in QUEUE_ORDER
    }


# Jobs whose ids are coalesced: the web process pushes each request's few ids onto a
# Redis list (one cheap RPUSH), and the scheduler relays them to RQ as jobs of up to
# `batch_size` ids. A job per webhook would cost more to enqueue than the webhook costs
# to store, and a worker runs a 500-event job about as fast as a 1-event one.
INBOX_JOBS = (JobName.EVALUATE_EVENTS,)


def inbox_key(namespace: str, job_name: JobName) -> str:
    return f"{namespace}:inbox:{job_name}"


def _job_data(job_name: JobName, ids: list[int]) -> Any:
    return Queue.prepare_data(
        f"workers.jobs.{job_name}", args=(ids,), result_ttl=0, failure_ttl=7 * 24 * 3600, timeout=600
    )


def _enqueue(pipe: Pipeline, queues: dict[str, Queue], batches: dict[JobName, list[list[int]]]) -> None:
    """Add {job name: [id batch, ...]} to `pipe`; the caller executes it."""
    for job_name, id_batches in batches.items():
        if id_batches:
            queue = queues[JOB_QUEUES[job_name]]
            queue.enqueue_many([_job_data(job_name, ids) for ids in id_batches], pipeline=pipe)


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def make_job_sink(redis: Redis, namespace: str, batch_size: int = 500) -> JobSink:
    queues = make_queues(redis, namespace)

    def sink(jobs: list[DeferredJob]) -> None:
        # One transaction's ids for the same job go together (a walk defers each message
        # it makes: a job apiece would cost more to run than the sends).
        ids: dict[JobName, list[int]] = defaultdict(list)
        for job in jobs:
            ids[job.name].extend(job.ids)
        # Not a MULTI/EXEC transaction: each command stands alone, and a partial failure
        # is covered by the sweep like any lost job. This is on every webhook's path.
        with redis.pipeline(transaction=False) as pipe:
            batches: dict[JobName, list[list[int]]] = {}
            for name, job_ids in ids.items():
                if name in INBOX_JOBS:
                    pipe.rpush(inbox_key(namespace, name), *job_ids)
                else:
                    batches[name] = _chunks(job_ids, batch_size)
            _enqueue(pipe, queues, batches)
            pipe.execute()

    return sink


def relay_inbox(redis: Redis, namespace: str, batch_size: int = 500, *, limit: int = 100_000) -> int:
    """Move coalesced ids from the inbox lists into RQ jobs; return how many moved.

    Ids popped here and lost before the enqueue (a crash, a Redis flush) are not lost
    work: the rows are still owed in the database and the sweep hands them out again.
    """
    queues = make_queues(redis, namespace)
    moved = 0
    for job_name in INBOX_JOBS:
        key = inbox_key(namespace, job_name)
        while moved < limit:
            popped = redis.lpop(key, batch_size * 20)
            if not popped:
                break
            ids = [int(value) for value in popped]  # type: ignore[union-attr]
            with redis.pipeline() as pipe:
                _enqueue(pipe, queues, {job_name: _chunks(ids, batch_size)})
                pipe.execute()
            moved += len(ids)
    return moved


def wait_for_inbox(redis: Redis, namespace: str, timeout: float) -> bool:
    """Block until an id arrives in an inbox (it is put back) or `timeout` seconds pass."""
    keys = [inbox_key(namespace, name) for name in INBOX_JOBS]
    item = redis.blpop(keys, timeout=timeout)
    if item is None:
        return False
    key, value = item  # type: ignore[misc]
    redis.lpush(key, value)
    return True

"""Redis connection, RQ queues, and the job sink that engine.db calls after a commit.

Jobs carry batches of ids (a job per event or message could not keep up: RQ moves
about 800 jobs/s per worker), use the JSON serializer, and keep no results.
"""

from __future__ import annotations

from collections import defaultdict

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from engine.db import DeferredJob, JobSink

# Which queue each job goes to; the worker drains them in this order, so sends
# already decided go out before new events are evaluated.
JOB_QUEUES = {
    "dispatch_messages": "messages",
    "advance_runs": "runs",
    "evaluate_events": "events",
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


def make_job_sink(redis: Redis, namespace: str, batch_size: int = 500) -> JobSink:
    queues = make_queues(redis, namespace)

    def sink(jobs: list[DeferredJob]) -> None:
        by_queue: dict[str, list[object]] = defaultdict(list)
        for job in jobs:
            queue = queues[JOB_QUEUES[job.name]]
            for start in range(0, len(job.ids), batch_size):
                by_queue[queue.name].append(
                    Queue.prepare_data(
                        f"workers.jobs.{job.name}",
                        args=(list(job.ids[start : start + batch_size]),),
                        result_ttl=0,
                        failure_ttl=7 * 24 * 3600,
                        timeout=600,
                    )
                )
        with redis.pipeline() as pipe:
            for kind, queue in queues.items():
                if by_queue.get(queue.name):
                    queue.enqueue_many(by_queue[queue.name], pipeline=pipe)  # type: ignore[arg-type]
            pipe.execute()

    return sink

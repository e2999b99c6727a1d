"""The jobs the engine defers are RQ entry points found by the paths RQ keeps in Redis."""

from __future__ import annotations

from rq.utils import import_attribute

from engine.store.db import JobName
from workers.queues import JOB_QUEUES, QUEUE_ORDER


def test_every_job_the_engine_defers_is_a_function_at_its_stored_path() -> None:
    """A job queued as `workers.jobs.<name>` (the path stored in Redis) finds its function for every name."""
    for name in JobName:
        assert callable(import_attribute(f"workers.jobs.{name}")), name


def test_every_job_has_a_queue_a_worker_drains() -> None:
    """No deferred job lands on a queue no worker listens to."""
    assert set(JOB_QUEUES) == set(JobName)
    assert set(JOB_QUEUES.values()) <= set(QUEUE_ORDER)

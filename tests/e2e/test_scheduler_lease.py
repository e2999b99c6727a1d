"""The scheduler's lease with real processes and a real Redis: a cleanly stopped scheduler gives the
lease back, so its successor is active at once; a killed one's successor takes over within the lease."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.e2e.processes import stop, wait_for
from workers.scheduler import LEASE_TTL, STANDBY_POLL, Lease


class Scheduler:
    """A `rapport scheduler` process whose log is kept in a file, to see when it is standby."""

    def __init__(self, env: dict[str, str], log: Path):
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "scheduler"], env=env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.token = f"{os.uname().nodename}:{self.proc.pid}"

    def said(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")


@pytest.fixture
def start(tmp_path: Path, database_url: str, redis_url: str, namespace: str) -> Iterator[object]:
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, RAPPORT_NAMESPACE=namespace,
               RAPPORT_DATA_DIR=str(tmp_path), SECRET_KEY="lease-test", PYTHONUNBUFFERED="1")
    started: list[Scheduler] = []

    def launch(name: str) -> Scheduler:
        scheduler = Scheduler(env, tmp_path / f"{name}.log")
        started.append(scheduler)
        return scheduler

    yield launch
    for scheduler in started:
        stop(scheduler.proc)


def holder(redis: Redis, namespace: str) -> str:
    token = redis.get(f"{namespace}:scheduler-lock")
    return token.decode() if token else ""


def test_a_cleanly_stopped_scheduler_gives_the_lease_back_and_its_successor_is_active_at_once(
        start, redis: Redis, namespace: str) -> None:
    """SIGTERM (as `make run` stopping): the lease is gone the moment it exits, so a restarted
    scheduler is active on its first try, never standby, although Redis kept everything else."""
    first = start("first")
    wait_for(lambda: holder(redis, namespace) == first.token, timeout=60, what="the first scheduler active")
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(15) == 0
    assert holder(redis, namespace) == ""
    stopped = time.monotonic()
    second = start("second")
    wait_for(lambda: holder(redis, namespace) == second.token, timeout=60, what="the restarted scheduler active")
    print(f"\nclean stop: restarted scheduler active {time.monotonic() - stopped:.1f} s after the old one "
          "exited (its own start-up included)")
    # It logs right after taking the lease: under load the line can trail the lock by a moment.
    wait_for(lambda: second.said("scheduler is active"), timeout=10, what="the restarted scheduler's log")
    assert not second.said("is standby")


def test_a_killed_schedulers_standby_takes_over_within_the_lease(start, redis: Redis, namespace: str) -> None:
    """SIGKILL: nothing is given back; the standby takes the lease once it lapses, within LEASE_TTL
    plus one standby poll."""
    first = start("first")
    wait_for(lambda: holder(redis, namespace) == first.token, timeout=60, what="the first scheduler active")
    standby = start("standby")
    wait_for(lambda: standby.said("is standby"), timeout=60, what="the second scheduler standing by")
    time.sleep(2 * STANDBY_POLL)  # the leader keeps its lease across several renewals
    assert holder(redis, namespace) == first.token
    first.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    first.proc.wait(10)
    wait_for(lambda: holder(redis, namespace) == standby.token, timeout=30, what="the standby to take over")
    takeover = time.monotonic() - killed
    print(f"\nkilled scheduler: the standby was active {takeover:.1f} s later (lease {LEASE_TTL:.0f} s, "
          f"standby poll {STANDBY_POLL:.0f} s)")
    assert takeover <= LEASE_TTL + STANDBY_POLL + 1.0  # one second of slack for a loaded machine


def test_a_lease_that_passed_to_another_is_neither_renewed_nor_deleted_by_its_old_holder(
        redis: Redis, namespace: str) -> None:
    """Compare-and-delete: a scheduler that stalled past its lease cannot remove its successor's."""
    old = Lease(redis, namespace, f"{socket.gethostname()}:old")
    new = Lease(redis, namespace, f"{socket.gethostname()}:new")
    try:
        assert old.acquire() is True and new.acquire() is False
        redis.delete(f"{namespace}:scheduler-lock")  # the old holder's lease lapsed while it stalled
        assert new.acquire() is True
        assert old.release() is False
        assert holder(redis, namespace) == new.token
        assert new.release() is True and holder(redis, namespace) == ""
    finally:
        old.release()
        new.release()

"""The scheduler process: relays new events to the workers as they arrive, and every
tick hands out due timers and re-enqueues overdue work.

Run exactly one (a Redis lock makes extra ones wait as standbys). Its state is all
in the database, so it can be killed and restarted at any moment.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from datetime import timedelta
from types import FrameType

from engine.services import channel_health, time_triggers
from engine.services.sweeper import SweepReport, sweep
from workers.queues import relay_inbox, wait_for_inbox
from workers.runtime import Runtime

log = logging.getLogger("rapport.scheduler")
# The lock is renewed on every pass (each tick); a killed scheduler's successor takes over once it
# expires. A pass longer than this lets a standby sweep alongside for a while, which is harmless: rows
# are taken with SKIP LOCKED and stamped when handed out.
LOCK_TTL = 10


def run_once(rt: Runtime) -> SweepReport:
    """One sweep; loops while a full batch came back, so a backlog drains fast. First, a paused
    channel whose cool-down is over gets a held message to probe it (channel_health.wake_probes)."""
    with rt.sessions.begin() as session:
        channel_health.wake_probes(session, now=rt.clock())
    total = SweepReport()
    while True:
        with rt.sessions.begin() as session:
            report = sweep(session, now=rt.clock(), redeliver_after=timedelta(seconds=rt.settings.redeliver_after),
                           limit=rt.settings.batch_size)
        total = SweepReport(total.due_runs + report.due_runs, total.events + report.events,
                            total.messages + report.messages, total.in_doubt + report.in_doubt,
                            total.released + report.released)
        if max(report.due_runs, report.events, report.messages) < rt.settings.batch_size:
            return total


def scan_once(rt: Runtime) -> int:
    """Record the time-based entries (birthdays, holidays, inactivity, broadcasts) now due."""
    with rt.sessions.begin() as session:
        return time_triggers.scan(session, now=rt.clock(), batch=rt.settings.batch_size * 2)


def _hold_lock(rt: Runtime, token: str) -> bool:
    key = f"{rt.settings.namespace}:scheduler-lock"
    if rt.redis.set(key, token, nx=True, ex=LOCK_TTL):
        return True
    if rt.redis.get(key) == token.encode():
        rt.redis.expire(key, LOCK_TTL)
        return True
    return False


def run_forever(rt: Runtime) -> None:
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    token = f"{os.uname().nodename}:{os.getpid()}"
    was_leader = None
    next_sweep = next_scan = 0.0
    log.info("scheduler started (tick %.2fs)", rt.settings.scheduler_tick)
    while not stopping:
        try:
            leader = _hold_lock(rt, token)
            if leader != was_leader:
                log.info("scheduler %s", "is active" if leader else "is standby: another one holds the lock")
                was_leader = leader
            if not leader:
                time.sleep(rt.settings.scheduler_tick)
                continue
            relay_inbox(rt.redis, rt.settings.namespace, rt.settings.batch_size)
            if time.monotonic() >= next_scan:
                next_scan = time.monotonic() + rt.settings.scan_interval
                entered = scan_once(rt)
                if entered:
                    log.info("time-based entries recorded: %d", entered)
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + rt.settings.scheduler_tick
                report = run_once(rt)
                if report.total:
                    log.info("handed out %s", report)
            # Sleep until the next sweep, waking at once when new events arrive.
            wait_for_inbox(rt.redis, rt.settings.namespace, max(0.01, next_sweep - time.monotonic()))
        except Exception:  # a database or Redis outage must not kill the loop
            log.exception("scheduler pass failed; retrying")
            time.sleep(rt.settings.scheduler_tick)
    log.info("scheduler stopped")

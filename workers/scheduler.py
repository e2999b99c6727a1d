"""The scheduler process: relays new events to the workers as they arrive, and every
tick hands out due timers and re-enqueues overdue work.

Run exactly one: a lease in Redis makes extra ones wait as standbys. The lease lasts
LEASE_TTL (5 s) and a heartbeat thread renews it every second, so a long sweep never lets
it lapse; standbys try to take it every second, so a killed scheduler's successor takes
over within about 5 s. A clean stop (SIGTERM, SIGINT: Ctrl-C on `make run`) gives the
lease back at once, so a restarted scheduler is active immediately, even though Redis
kept the key across the restart. Renewing and giving back compare the token first (Lua),
so a scheduler never extends or deletes a lease that has passed to another.

Its state is all in the database, so it can be killed and restarted at any moment. Two
active at once for a moment (a stalled one waking up) is harmless: rows are taken with
SKIP LOCKED and stamped when handed out.
"""

from __future__ import annotations

import logging
import operator
import os
import signal
import threading
import time
from dataclasses import astuple
from datetime import timedelta
from types import FrameType

from redis import Redis

from engine.delivery import channel_health
from engine.journeys import time_triggers
from engine.ops.sweeper import SweepReport, sweep
from workers.queues import relay_inbox, wait_for_inbox
from workers.runtime import Runtime

log = logging.getLogger("rapport.scheduler")
LEASE_TTL = 5.0  # seconds a killed scheduler keeps the lease
RENEW_EVERY = 1.0  # the heartbeat: the lease is renewed this often
STANDBY_POLL = 1.0  # standbys try to take the lease this often

# KEYS[1] the lease, ARGV[1] our token, ARGV[2] its TTL in ms: renew only if it is still ours.
RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
# Delete only if it is still ours: a lease that lapsed and passed to another stays with it.
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


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
        total = SweepReport(*map(operator.add, astuple(total), astuple(report)))  # field by field
        if max(report.due_runs, report.events, report.messages) < rt.settings.batch_size:
            return total


def scan_once(rt: Runtime) -> int:
    """Record the time-based entries (birthdays, holidays, inactivity, broadcasts) now due."""
    with rt.sessions.begin() as session:
        return time_triggers.scan(session, now=rt.clock(), batch=rt.settings.batch_size * 2)


class Lease:
    """The scheduler's lease in Redis: taken with SET NX PX, renewed by a heartbeat thread while
    held, given back on a clean stop."""

    def __init__(self, redis: Redis, namespace: str, token: str, *, ttl: float = LEASE_TTL):
        self.redis, self.key, self.token, self.ttl_ms = redis, f"{namespace}:scheduler-lock", token, int(ttl * 1000)
        self._held = threading.Event()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._held.is_set()

    def acquire(self) -> bool:
        """Take the lease if it is free (or already ours); start renewing it."""
        if not self.held:
            if self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms) or self._renew():
                self._held.set()
                self._start_heartbeat()
        return self.held

    def _renew(self) -> bool:
        return bool(self.redis.eval(RENEW, 1, self.key, self.token, self.ttl_ms))

    def _start_heartbeat(self) -> None:
        """One thread for the lease's whole life: it renews while the lease is held."""
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._beat, name="scheduler-lease", daemon=True)
            self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            if not self.held:
                continue
            try:
                if not self._renew():
                    log.warning("scheduler lease lost (it lapsed, or Redis was flushed): standby until it is free")
                    self._held.clear()
            except Exception:  # Redis away: keep trying; the lease lapses by itself if it stays away
                log.exception("scheduler lease renewal failed; retrying")

    def release(self) -> bool:
        """Stop renewing and give the lease back if it is still ours; True when it was."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        self._held.clear()
        return bool(self.redis.eval(RELEASE, 1, self.key, self.token))


def run_forever(rt: Runtime) -> None:
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    lease = Lease(rt.redis, rt.settings.namespace, f"{os.uname().nodename}:{os.getpid()}")
    was_leader = None
    next_sweep = next_scan = 0.0
    log.info("scheduler started (tick %.2fs)", rt.settings.scheduler_tick)
    while not stopping:
        try:
            leader = lease.acquire()
            if leader != was_leader:
                log.info("scheduler %s", "is active" if leader else "is standby: another one holds the lease")
                was_leader = leader
            if not leader:
                time.sleep(STANDBY_POLL)
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
    _give_back(lease)
    log.info("scheduler stopped")


def _give_back(lease: Lease) -> None:
    try:
        if lease.release():
            log.info("scheduler lease released: a successor is active at once")
    except Exception:  # Redis away: the lease lapses by itself within LEASE_TTL
        log.exception("could not release the scheduler lease")

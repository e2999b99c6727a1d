# ruff: noqa: E402 (the imports follow the sys.path fix below)
"""Engine throughput: events evaluated per second with 50 live journeys, due timers
processed per second, and RQ's own no-op job rate with the same 2 workers.

Run from the repo root: `.venv/bin/python bench/engine.py` (about 1-2 minutes).

Everything runs against PostgreSQL, in a fresh database (rapport_bench_<hex>, created
from BENCH_DATABASE_URL, dropped at the end), and Redis (BENCH_REDIS_URL) under a fresh
namespace (deleted at the end), with 2 real worker processes (`python -m workers.cli
worker`: RQ SimpleWorker, JSON serializer) and a local aiosmtpd sink they send email to.
The scheduler's part (relaying the evaluation inbox to RQ jobs, sweeping due timers) is
done by this process with the scheduler's own functions.

What is measured
  0. statements: before the workers start, one batch of 500 events is evaluated in this
     process (metrics, then journeys, as the job does) while a before_cursor_execute
     listener counts SQL statements: in a workspace with the 50 journeys, and in one
     with the 50 twice over (100). Statements per event must not grow with journeys.
  1. events: one workspace with 50 live journeys, as a shop might run them (journey_mix):
     abandoned cart and checkout recovery per cart value and customer type (one variant
     fits a cart; waits, a condition, an A/B split with a holdout, goals), post-purchase
     per order value (re-entry rules, a contact update), browse abandonment (waits for a
     cart), VIP carts (update the contact at once), an order confirmation, welcome,
     search and wishlist journeys, journeys on rarer events, and date / inactivity /
     holiday / broadcast journeys that no event enters. The order confirmation is sent an
     hour after the order, so the measured journeys send no email at once
     (BENCH_SEND_AT_ONCE=1: at once; the workers then also send those during the events
     phase, their queue first). Two waves of shop traffic for BENCH_CONTACTS contacts
     (default 3000), sessions interleaved in time: product views, carts, checkouts,
     orders, searches, wishlists, email opens and clicks, page views that match nothing;
     the second wave buys some carts (goals end runs), updates others (the run's trigger
     event is refreshed), carts viewed products (wakes runs waiting for a cart) and
     reviews orders. Each wave is stored with ingest_events (not timed); then its ids go
     into the evaluation inbox and through the normal path: relay_inbox (what the
     scheduler runs) makes RQ jobs of 500 ids, the workers evaluate them (metrics, then
     journeys). Timed from the push until every event has evaluated_at set, including
     the loyalty_tier_changed events the workers add on the way (the rate counts only the
     wave's own events). The workers' time per job kind is printed (from their logs).
  2. timers: BENCH_TIMERS (default 100,000) runs inserted with SQL, standing on the wait
     steps of the journeys (with their trigger events), all due. Timed from the first
     workers.scheduler.run_once (the sweep: claim due runs in batches, stamp them,
     enqueue advance_runs jobs) until no run is due. After the wait they send (1% of
     their contacts consented, so some reminders really go out over SMTP; the rest are
     recorded as skipped), branch on conditions, update contacts or wait again.
  3. RQ baseline: BENCH_NOOP_JOBS (default 3000) jobs of bench.noop.noop (a list of ids,
     like the real jobs), enqueued with enqueue_many and run by the same 2 workers,
     timed until every job is gone (result_ttl=0, as the real jobs).

  4. time-trigger scan (bench/engine_time_triggers.py, in a process and database of its own): the
     scheduler's scan over BENCH_SCAN_CONTACTS (default 100,000) contacts due on a holiday,
     a win-back, a birthday and a broadcast, once when they all enter and again a minute
     later when nobody new does (time_trigger_scan_seconds_100k), beside a plain SELECT of
     the same contacts in the same run.

Checks (exit status 1 if any fails): every event evaluated, within its phase, and the
contact metrics add up to exactly the orders sent (each order event counted once); one
"enrolled" journal line per run; no timer left due and every timer run journaled; no
message failed or left unsent; no failed or stuck RQ job. The last line printed is one
JSON object. Targets (issue 4): >= 2,000 events/s; 100,000 timers in under 60 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file (engine.py)
# would stand in for the engine package: look in the repo root instead.
ROOT = Path(__file__).resolve().parent.parent  # the repo: workers run from here (they import bench.noop)
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from bench.common import (
    REDIS_URL,
    check,
    clear_namespace,
    free_port,
    fresh_database,
    rq_problems,
    run_bench,
    start,
    stop,
    wait_for_port,
)
from bench.engine_journeys import JOURNEYS, create_journeys, journey_mix  # noqa: E402
from bench.engine_time_triggers import in_child as time_trigger_scan
from bench.engine_traffic import Shoppers, ingest  # noqa: E402
from engine.clock import utcnow
from engine.contacts import metrics
from engine.delivery.templates import Templates
from engine.journeys import runs
from engine.journeys.definition import JourneyDefinition, SplitStep, Trigger, WaitStep, branches
from engine.settings import Settings
from engine.store.db import JobName, make_engine, make_sessionmaker
from engine.store.models import Run
from engine.workspaces.accounts import create_workspace
from templates.files import FileTemplates
from workers.queues import connect_redis, inbox_key, make_queues, relay_inbox, wait_for_inbox
from workers.runtime import Runtime
from workers.scheduler import run_once

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "3000"))
TIMERS = int(os.environ.get("BENCH_TIMERS", "100000"))
NOOP_JOBS = int(os.environ.get("BENCH_NOOP_JOBS", "3000"))
VERBOSE = os.environ.get("BENCH_VERBOSE", "") not in ("", "0")
# 1: the order confirmation goes out as the order is evaluated (the events phase then also
# sends email); default: an hour later (its sends come due in the timers phase).
SEND_AT_ONCE = os.environ.get("BENCH_SEND_AT_ONCE", "") not in ("", "0")
KEEP_LOGS = os.environ.get("BENCH_KEEP_LOGS", "") not in ("", "0")  # keep the workers' logs (the path is printed)
TIMER_CONTACTS = max(1, TIMERS // 4)  # each has about 4 runs waiting
BATCH = 500  # ids per job, as the scheduler's default
PHASE_TIMEOUT = 300.0  # seconds a phase may take before the bench gives up on it


# --- Statements per evaluated batch --------------------------------------------------------------

def statements_per_batch(engine: Any, sessions: sessionmaker[Session], templates: Templates, workspace_id: str,
                         payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Evaluate one batch in this process as workers.jobs.evaluate_events does; count statements."""
    ids = ingest(sessions, workspace_id, payloads)
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append(" ".join(statement.split())[:90])

    event.listen(engine, "before_cursor_execute", count)
    try:
        with sessions.begin() as session:
            now = utcnow()
            claimed = metrics.apply_events(session, ids, now=now)
            runs.evaluate_events(session, claimed, templates=templates, now=now)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    with sessions() as session:
        enrolled = session.scalar(select(func.count()).select_from(Run).where(Run.workspace_id == workspace_id))
    return {"events": len(ids), "statements": len(seen), "runs": enrolled or 0, "kinds": Counter(seen)}


# --- Timers --------------------------------------------------------------------------------------

def wait_steps(definition: JourneyDefinition) -> list[tuple[WaitStep, dict[str, Any]]]:
    """Every wait step of a journey, with the run state a run standing on it has (its split arm)."""
    found: list[tuple[WaitStep, dict[str, Any]]] = []

    def visit(steps: list[Any], state: dict[str, Any]) -> None:
        for step in steps:
            if isinstance(step, WaitStep):
                found.append((step, state))
            if isinstance(step, SplitStep):
                for arm in step.arms:
                    visit(arm.steps, {"arm": f"{step.id}:{arm.name}"})
            else:
                for _label, branch in branches(step):
                    visit(branch, state)

    visit(definition.steps, {})
    return found


TIMER_CONTACTS_SQL = """
INSERT INTO contacts (workspace_id, external_id, email, first_name, timezone, consent, attributes, messenger_ids,
                      created_at, updated_at, orders_count, total_spent, loyalty_tier)
SELECT :ws, 'timer-' || g, 'timer-' || g || '@example.com', 'Grace',
       (ARRAY['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', NULL])[1 + g % 4],
       jsonb_build_object('email', CASE WHEN g % 100 = 0 THEN 'opted_in' ELSE 'opted_out' END),
       jsonb_build_object('vip', g % 10 = 0), CAST('{}' AS jsonb), :now, :now, g % 4, (g % 4) * 60, 'novice'
FROM generate_series(0, :n - 1) AS g
"""

TIMER_RUNS_SQL = """
WITH src AS (
    SELECT g, c.id AS contact_id
    FROM generate_series(1, :count) AS g
    JOIN contacts c ON c.workspace_id = :ws AND c.external_id = 'timer-' || ((g * 7919 + :k * 104729) % :contacts)
), ev AS (
    INSERT INTO events (workspace_id, external_id, type, contact_id, occurred_at, received_at, properties, source,
                        enqueued_at, evaluated_at)
    SELECT :ws, 'timer-' || :k || '-' || g, :type, contact_id, :entered, :entered,
           jsonb_build_object(CAST(:key_path AS text), 'T' || :k || '-' || g, 'currency', 'EUR',
                              'total', 10 + g % 190, 'rating', 1 + g % 5,
                              'items', jsonb_build_array(jsonb_build_object('name', 'Ceramic dripper',
                                                                            'quantity', 1, 'price', 10 + g % 190)),
                              'recovery_url', 'https://shop.example/cart/T' || :k || '-' || g),
           'bench', :entered, :entered
    FROM src
    RETURNING id, contact_id, properties ->> CAST(:key_path AS text) AS key
)
INSERT INTO runs (workspace_id, journey_id, journey_version_id, contact_id, key, trigger_event_id, status, step_id,
                  step_entered_at, next_at, state, created_at)
SELECT :ws, :journey_id, :version_id, contact_id, key, id, 'waiting', :step_id, :entered, :due,
       CAST(:state AS jsonb), :entered
FROM ev
"""


def insert_timers(engine: Any, workspace_id: str, journeys: list[tuple[int, int, JourneyDefinition]],
                  *, now: datetime) -> tuple[int, int]:
    """TIMERS due runs spread over every wait step of the keyed event journeys; returns (id above which
    they are, number of wait steps they stand on)."""
    places = [(journey_id, version_id, definition, step, state)
              for journey_id, version_id, definition in journeys
              if isinstance(definition.trigger, Trigger) and definition.key_path
              for step, state in wait_steps(definition)]
    with engine.begin() as conn:
        before = conn.execute(text("SELECT coalesce(max(id), 0) FROM runs")).scalar_one()
        conn.execute(text(TIMER_CONTACTS_SQL), {"ws": workspace_id, "now": now, "n": TIMER_CONTACTS})
        for k, (journey_id, version_id, definition, step, state) in enumerate(places):
            count = TIMERS // len(places) + (1 if k < TIMERS % len(places) else 0)
            entered = now - step.duration - timedelta(minutes=5)
            conn.execute(text(TIMER_RUNS_SQL), {
                "ws": workspace_id, "count": count, "k": k, "contacts": TIMER_CONTACTS,
                "type": definition.entry_event, "key_path": definition.key_path, "entered": entered,
                "journey_id": journey_id, "version_id": version_id, "step_id": step.id,
                "due": entered + step.duration, "state": json.dumps(state),
            })
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE contacts, events, runs"))  # as autovacuum would after such a load
    return int(before), len(places)


# --- Waiting -------------------------------------------------------------------------------------

def until(done: Callable[[], bool], what: str, *, between: Callable[[], None] | None = None,
          poll: float = 0.1) -> float:
    """Seconds until `done()`; `between` runs in the meantime (relaying, sweeping). Unlike
    bench.common.until, `between` runs back to back and `done()` is asked at most every `poll` s."""
    started = time.monotonic()
    next_check = started
    while True:
        if between is not None:
            between()
        now = time.monotonic()
        if now >= next_check:
            if done():
                return time.monotonic() - started
            next_check = now + poll
        if now - started > PHASE_TIMEOUT:
            raise RuntimeError(f"gave up after {PHASE_TIMEOUT:.0f} s waiting for {what}")
        if between is None:
            time.sleep(poll / 4)


# --- The phases ----------------------------------------------------------------------------------

def scalar(engine: Any, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def evaluate_wave(rt: Runtime, engine: Any, redis: Redis, namespace: str, workspace_id: str,
                  ids: list[int]) -> float:
    """Push ids into the evaluation inbox, relay them to RQ as the scheduler does; seconds until all
    of the workspace's events are evaluated."""
    inbox = inbox_key(namespace, JobName.EVALUATE_EVENTS)
    started = time.monotonic()
    for start_ in range(0, len(ids), 5000):
        redis.rpush(inbox, *ids[start_:start_ + 5000])

    def relay() -> None:
        relay_inbox(redis, namespace, rt.settings.batch_size)
        wait_for_inbox(redis, namespace, 0.02)

    def evaluated() -> bool:
        return scalar(engine, "SELECT count(*) FROM events WHERE workspace_id = :ws AND evaluated_at IS NULL",
                      ws=workspace_id) == 0

    until(evaluated, "events to be evaluated", between=relay, poll=0.05)
    return time.monotonic() - started


def noop_rate(redis: Redis, namespace: str) -> float:
    """RQ's own rate: NOOP_JOBS no-op jobs through the same workers; jobs per second."""
    queue = make_queues(redis, namespace)["events"]
    data = [Queue.prepare_data("bench.noop.noop", args=(list(range(10)),), result_ttl=0, failure_ttl=3600,
                               timeout=60) for _ in range(NOOP_JOBS)]
    started = time.monotonic()
    keys: list[str] = []
    for start_ in range(0, NOOP_JOBS, 1000):
        with redis.pipeline() as pipe:
            keys += [job.key for job in queue.enqueue_many(data[start_:start_ + 1000], pipeline=pipe)]
            pipe.execute()

    def gone() -> bool:
        left = sum(int(redis.exists(*keys[i:i + 1000])) for i in range(0, len(keys), 1000))
        failed = sum(q.failed_job_registry.count for q in make_queues(redis, namespace).values())
        if failed:
            raise RuntimeError(f"{failed} no-op jobs failed")
        return left == 0

    until(gone, "the no-op jobs", poll=0.02)
    return NOOP_JOBS / (time.monotonic() - started)


JOB_DONE = re.compile(r"^(\S+ \S+) rq\.worker INFO Successfully completed (?:workers\.jobs\.)?([\w.]+)\(.* job in "
                      r"(\d+):(\d+):([\d.]+)s")


def worker_time(log_dir: str, since: datetime, until_: datetime) -> dict[str, float]:
    """Seconds the workers spent per job kind on jobs that finished between two local times (their logs)."""
    busy: Counter[str] = Counter()
    for path in Path(log_dir).glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            match = JOB_DONE.match(line)
            if match is None:
                continue
            at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
            if since <= at <= until_:
                busy[match[2]] += int(match[3]) * 3600 + int(match[4]) * 60 + float(match[5])
    return dict(busy)


def busy_text(busy: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(busy.items(), key=lambda kv: -kv[1]))


def main(cleanup: ExitStack) -> int:
    run = secrets.token_hex(4)
    db_name, namespace = f"rapport_bench_{run}", f"rapport-bench-{run}"
    db_url = fresh_database(cleanup, db_name)
    redis = connect_redis(REDIS_URL)
    cleanup.callback(redis.close)
    cleanup.callback(clear_namespace, redis, namespace)
    tmp = tempfile.mkdtemp(prefix="rapport-bench-engine-")
    if not KEEP_LOGS:
        cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
    engine = make_engine(db_url)
    cleanup.callback(engine.dispose)
    sessions = make_sessionmaker(engine)  # no job sink: what it defers is dropped
    templates = FileTemplates()
    print(f"engine bench: {JOURNEYS} journeys, {CONTACTS} contacts, {TIMERS:,} timers, {WORKERS} workers, "
          f"order confirmations {'at once' if SEND_AT_ONCE else 'an hour after the order'}, "
          f"{os.cpu_count()} cores, database {db_name}" + (f", logs in {tmp}" if KEEP_LOGS else ""))
    mix = journey_mix(send_at_once=SEND_AT_ONCE)
    checks: list[tuple[str, bool]] = []

    # 0. Statements per evaluated batch, in this process, with 50 and with 100 journeys.
    counts = {}
    for journeys in (JOURNEYS, 2 * JOURNEYS):
        with sessions.begin() as session:
            ws = create_workspace(session, f"Statements {journeys}", now=utcnow()).workspace_id
            create_journeys(session, ws, (mix * 2)[:journeys], templates=templates, now=utcnow())
        shoppers = Shoppers("q", 200, seed=7)
        payloads = shoppers.wave(1, utcnow() - timedelta(hours=3), timedelta(hours=1))[:BATCH]
        counts[journeys] = statements_per_batch(engine, sessions, templates, ws, payloads)
        c = counts[journeys]
        print(f"statements: {journeys:3} journeys: {c['statements']:5} statements for a batch of {c['events']} events"
              f" ({c['statements'] / c['events']:.2f} per event), {c['runs']} runs enrolled")
        if VERBOSE:
            for statement, n in c["kinds"].most_common(12):
                print(f"    {n:5}  {statement}")
    per_event = {j: c["statements"] / c["events"] for j, c in counts.items()}
    flat = per_event[2 * JOURNEYS] <= per_event[JOURNEYS] * 1.25
    print(f"statements per event {per_event[JOURNEYS]:.2f} with {JOURNEYS} journeys, "
          f"{per_event[2 * JOURNEYS]:.2f} with {2 * JOURNEYS} (enrollments {counts[JOURNEYS]['runs']} -> "
          f"{counts[2 * JOURNEYS]['runs']}): {'does not grow with journeys' if flat else 'GROWS with journeys'}")

    # The shop.
    with sessions.begin() as session:
        workspace_id = create_workspace(session, "Bench Shop", now=utcnow()).workspace_id
        journeys = create_journeys(session, workspace_id, mix, templates=templates, now=utcnow())

    smtp_port = free_port()
    smtp_log = os.path.join(tmp, "smtp.log")
    smtp = start([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}",
                  "-c", "aiosmtpd.handlers.Sink"], dict(os.environ), smtp_log)
    cleanup.callback(stop, smtp)
    wait_for_port(smtp_port, smtp, smtp_log)
    env = {"DATABASE_URL": db_url, "REDIS_URL": REDIS_URL, "RAPPORT_NAMESPACE": namespace,
           "SECRET_KEY": secrets.token_hex(32), "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
           "RAPPORT_DATA_DIR": tmp}
    for n in range(WORKERS):
        worker = start([sys.executable, "-m", "workers.cli", "worker"], {**os.environ, **env},
                       os.path.join(tmp, f"worker-{n}.log"))
        cleanup.callback(stop, worker)
    rt = Runtime(Settings.from_env(env))  # the scheduler's part, in this process
    cleanup.callback(lambda: rt.sessions.kw["bind"].dispose())

    # Warm up: the workers import everything, connect, and parse the journeys.
    warm = Shoppers("w", 100, seed=3)
    warm_ids = ingest(sessions, workspace_id, warm.wave(1, utcnow() - timedelta(hours=5), timedelta(minutes=30)))
    evaluate_wave(rt, engine, redis, namespace, workspace_id, warm_ids)

    # 3. RQ's own rate with the same workers.
    noop_per_s = noop_rate(redis, namespace)
    print(f"rq no-op: {NOOP_JOBS} jobs, {noop_per_s:,.0f} jobs/s")

    # 1. Events.
    shoppers = Shoppers("s", CONTACTS, seed=11)
    phase_start, local_start = utcnow(), datetime.now()
    total_events, total_seconds, total_ids = 0, 0.0, []
    for number, (offset, spread) in enumerate([(timedelta(hours=4), timedelta(hours=2)),
                                               (timedelta(hours=1), timedelta(minutes=50))], start=1):
        payloads = shoppers.wave(number, utcnow() - offset, spread)
        ids = ingest(sessions, workspace_id, payloads)
        made_before = scalar(engine, "SELECT count(*) FROM events WHERE workspace_id = :ws", ws=workspace_id)
        seconds = evaluate_wave(rt, engine, redis, namespace, workspace_id, ids)
        made = scalar(engine, "SELECT count(*) FROM events WHERE workspace_id = :ws", ws=workspace_id) - made_before
        kinds = Counter(p["type"] for p in payloads)
        print(f"events wave {number}: {len(ids):,} events in {seconds:.2f} s = {len(ids) / seconds:,.0f} events/s "
              f"(+{made} loyalty_tier_changed made on the way; {len(ids) // BATCH + 1} jobs) "
              f"{dict(kinds.most_common())}")
        total_events, total_seconds, total_ids = total_events + len(ids), total_seconds + seconds, total_ids + ids
    events_per_s = total_events / total_seconds
    events_busy = worker_time(tmp, local_start, datetime.now())
    with engine.connect() as conn:
        orders, spent = conn.execute(text(
            "SELECT coalesce(sum(orders_count), 0), coalesce(sum(total_spent), 0) FROM contacts "
            "WHERE workspace_id = :ws AND external_id LIKE 's%'"), {"ws": workspace_id}).one()
        late = conn.execute(text("SELECT count(*) FROM events WHERE id = ANY(:ids) "
                                 "AND (evaluated_at IS NULL OR evaluated_at < :t)"),
                            {"ids": total_ids, "t": phase_start}).scalar_one()
        run_count = conn.execute(text("SELECT count(*) FROM runs WHERE workspace_id = :ws"),
                                 {"ws": workspace_id}).scalar_one()
        enrolled = conn.execute(text("SELECT count(*) FROM journal WHERE workspace_id = :ws AND kind = 'enrolled'"),
                                {"ws": workspace_id}).scalar_one()
        outcomes = dict(conn.execute(text("SELECT kind, count(*) FROM journal WHERE workspace_id = :ws "
                                          "AND at >= :t GROUP BY kind"), {"ws": workspace_id, "t": phase_start}).all())
        made_runs = conn.execute(text("SELECT count(*) FROM runs WHERE workspace_id = :ws AND created_at >= :t"),
                                 {"ws": workspace_id, "t": phase_start}).scalar_one()
        mails = dict(conn.execute(text("SELECT status, count(*) FROM messages WHERE workspace_id = :ws "
                                       "GROUP BY status"), {"ws": workspace_id}).all())
    print(f"events: {total_events:,} in {total_seconds:.2f} s = {events_per_s:,.0f} events/s with {JOURNEYS} "
          f"live journeys; per event {made_runs / total_events:.2f} runs made, "
          f"{sum(outcomes.values()) / total_events:.2f} journal lines; journal {dict(sorted(outcomes.items()))}; "
          f"messages {mails}")
    print(f"events: worker time {busy_text(events_busy)} (sending email is the dispatch_messages jobs, which "
          f"go first: their queue is drained before the events queue)")
    check(checks, f"every event evaluated in its phase ({late} not)", late == 0)
    check(checks, f"metrics count each order once ({orders} orders, {spent} spent; sent "
                  f"{shoppers.totals['orders']}, {shoppers.totals['cents'] / 100:.2f})",
          orders == shoppers.totals["orders"] and round(float(spent) * 100) == shoppers.totals["cents"])
    check(checks, f"one 'enrolled' journal line per run ({enrolled} for {run_count})", enrolled == run_count)

    # 2. Timers.
    t0 = utcnow()
    set_up = time.monotonic()
    before, places = insert_timers(engine, workspace_id, journeys, now=t0)
    print(f"timers: {TIMERS:,} due runs on {places} wait steps inserted in {time.monotonic() - set_up:.1f} s")
    sweeps: list[tuple[int, float]] = []
    local_start = datetime.now()

    def sweep() -> None:
        started = time.monotonic()
        report = run_once(rt)
        if report.due_runs:
            sweeps.append((report.due_runs, time.monotonic() - started))
        time.sleep(0.05)

    def advanced() -> bool:
        return scalar(engine, "SELECT count(*) FROM runs WHERE status = 'waiting' AND next_at <= :t", t=t0) == 0

    timers_seconds = until(advanced, "the timers", between=sweep, poll=0.25)
    timers_per_s = TIMERS / timers_seconds
    print(f"timers: {TIMERS:,} advanced in {timers_seconds:.2f} s = {timers_per_s:,.0f} timers/s "
          f"(the sweep handed out {sum(n for n, _ in sweeps):,} in {len(sweeps)} run_once calls taking "
          f"{sum(t for _, t in sweeps):.1f} s; worker time {busy_text(worker_time(tmp, local_start, datetime.now()))})")

    def sent() -> bool:  # (the statement check's workspaces have no job sink: their messages wait for a sweep)
        return scalar(engine, "SELECT count(*) FROM messages WHERE workspace_id = :ws "
                              "AND status IN ('scheduled', 'sending')", ws=workspace_id) == 0

    drain = until(sent, "the messages to be sent", poll=0.25)
    with engine.connect() as conn:
        journaled = conn.execute(text("SELECT count(DISTINCT run_id) FROM journal WHERE run_id > :b AND at >= :t"),
                                 {"b": before, "t": t0}).scalar_one()
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM messages WHERE workspace_id = :ws "
                                          "GROUP BY status"), {"ws": workspace_id}).all())
        run_statuses = dict(conn.execute(text("SELECT status, count(*) FROM runs WHERE id > :b GROUP BY status"),
                                         {"b": before}).all())
    print(f"timers: runs now {run_statuses}; messages {statuses} (sends drained {drain:.1f} s after)")
    check(checks, f"every timer run advanced and journaled ({journaled:,} of {TIMERS:,})", journaled == TIMERS)
    check(checks, f"no message failed or unsent ({statuses.get('failed', 0)} failed, "
                  f"{statuses.get('unknown', 0)} unknown)",
          not statuses.get("failed") and not statuses.get("unknown") and statuses.get("sent", 0) > 0)
    problems = rq_problems(redis, namespace)
    check(checks, "no failed or stuck RQ jobs" + (f": {problems}" if problems else ""), not problems)

    # 4. The time-trigger scan (no workers: the scheduler's own work, in a process and database of its own).
    scan_figures = time_trigger_scan(checks)
    ok = all(passed for _label, passed in checks)

    events_target, timers_target = events_per_s >= 2000, timers_seconds < 60
    print(f"events {events_per_s:,.0f}/s = {events_per_s / noop_per_s:.2f} x RQ's no-op jobs/s "
          f"(each job carries up to {BATCH} events); timers {timers_per_s:,.0f}/s = "
          f"{timers_per_s / noop_per_s:.2f} x no-op jobs/s")
    print(f"targets: events >= 2,000/s: {'met' if events_target else 'MISSED'}; {TIMERS:,} timers in "
          f"{timers_seconds:.1f} s (< 60 s): {'met' if timers_target else 'MISSED'}; statements per event "
          f"{'flat' if flat else 'GROW'} with journeys; verification {'OK' if ok else 'FAILED'}")
    print(json.dumps({
        "bench": "engine", "events_per_s": round(events_per_s), "events": total_events, "journeys": JOURNEYS,
        "statements_per_event": round(per_event[JOURNEYS], 2),
        "statements_per_event_100_journeys": round(per_event[2 * JOURNEYS], 2),
        "timers": TIMERS, "timers_seconds": round(timers_seconds, 2), "timers_per_s": round(timers_per_s),
        "rq_noop_jobs_per_s": round(noop_per_s), "workers": WORKERS, "send_at_once": SEND_AT_ONCE,
        "events_vs_noop": round(events_per_s / noop_per_s, 2), "timers_vs_noop": round(timers_per_s / noop_per_s, 2),
        **scan_figures, "verified": ok,
    }))
    return 0 if ok else 1


if __name__ == "__main__":
    run_bench(main)

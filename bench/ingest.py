# ruff: noqa: E402 (the imports follow the sys.path fix below)
"""Ingest throughput of the HTTP API, against a raw Flask + INSERT baseline.

Run from the repo root: `.venv/bin/python bench/ingest.py` (about 30 s).

What is measured
  1. single: POST /api/v1/events, one unique, correctly signed cart event per request
     (Bearer key + Rapport-Signature over the exact body; each client's events spread
     over 1000 contacts). Rapport validates it, upserts the contact, inserts the event,
     commits and pushes the event id to the evaluation inbox in Redis (neither the
     scheduler that relays it nor a worker runs during the bench).
  2. baseline: the same gunicorn settings serving bench/baseline_app.py, which parses
     an equally sized JSON body and does one INSERT + commit per request, answering 202.
  3. batch: POST /api/v1/events/batch with 1000 unique events per request.
Both servers run under gunicorn with 2 sync workers on 127.0.0.1, access log off.
Sync workers do not keep connections alive, so every request opens a new connection
(http.client), for both targets alike. BENCH_CLIENTS processes (default 4) send
requests back to back for BENCH_SECONDS per target (default 10), single and baseline
alternating in BENCH_ROUNDS rounds (default 2) so that load from elsewhere on the
machine hits both alike; then batch for BENCH_BATCH_SECONDS (default 4). Bodies and
signatures are built before the clock starts, so client-side signing is not in the
figures. Clients and servers share this machine's cores.

Everything runs in a fresh PostgreSQL database (rapport_bench_<hex>, created from
BENCH_DATABASE_URL, dropped at the end) and a fresh Redis namespace on BENCH_REDIS_URL
(deleted at the end). After each phase the rows in the table must equal the events
answered 202 and there must be no errors. The last line printed is one JSON object.
Targets (issue): single >= 50% of baseline; batch >= 10,000 events/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and bench/engine.py would
# stand in for the engine package: look in the repo root instead.
ROOT = Path(__file__).resolve().parent.parent  # the repo, where gunicorn imports the apps from
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import json
import multiprocessing as mp
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack
from http.client import HTTPConnection
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from bench.common import REDIS_URL, clear_namespace, free_port, fresh_database, run_bench, start, stop
from engine.clock import utcnow
from engine.signing import sign
from engine.store.db import JobName
from engine.workspaces.accounts import create_workspace
from workers.dev.demo import cart_event
from workers.queues import connect_redis, inbox_key

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
BATCH_SECONDS = float(os.environ.get("BENCH_BATCH_SECONDS", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))  # single and baseline alternate, so load elsewhere hits both
BATCH = 1000
MAX_RPS = 3000  # per client: bodies pre-built for at most this rate (a client stops if it runs out)
MAX_BATCH_RPS = 12  # per client, batches of 1000 events
CONTACTS = 1000  # each client's events spread over this many contacts
BASELINE_TABLE = ("CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, external_id text NOT NULL, "
                  "type text NOT NULL, properties jsonb NOT NULL)")


def event_template() -> str:
    """A demo cart event as JSON, with @ID@ (event id) and @K@ (contact) to fill in."""
    event = cart_event("cart-@K@", customer="cust-@K@", email="@K@@example.com")
    event["id"] = "@ID@"
    return json.dumps(event)


def event_json(template: str, tag: str, client: int, i: int) -> str:
    return template.replace("@ID@", f"evt-{tag}-{client}-{i}").replace("@K@", f"c{client}-{i % CONTACTS}")


def signed_headers(body: bytes, creds: dict[str, str]) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {creds['api_key']}",
            "Rapport-Signature": sign(creds["signing_secret"], body, int(time.time()))}


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def client(job: dict[str, Any], index: int, barrier: Any, results: Any) -> None:
    """One load-generating process: build its requests, wait for the start, send until the deadline."""
    template, tag = event_template(), job["tag"]
    if job["batch"]:
        bodies = [('{"events":[' + ",".join(event_json(template, tag, index, i)
                                             for i in range(b * BATCH, (b + 1) * BATCH)) + "]}").encode()
                  for b in range(int(MAX_BATCH_RPS * job["seconds"]))]
    else:
        bodies = [event_json(template, tag, index, i).encode() for i in range(int(MAX_RPS * job["seconds"]))]
    requests = [(body, signed_headers(body, job["creds"])) for body in bodies]
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    latencies: list[float] = []
    accepted, exhausted = 0, True
    barrier.wait()
    start = time.monotonic()
    deadline = start + job["seconds"]
    for body, headers in requests:
        sent = time.monotonic()
        if sent >= deadline:
            exhausted = False
            break
        try:
            status, data = post(job["port"], job["path"], body, headers)
        except OSError as exc:
            statuses["exception"] += 1
            if len(errors) < 5:
                errors.append(repr(exc))
            continue
        latencies.append(time.monotonic() - sent)
        statuses[str(status)] += 1
        if status == 202:
            accepted += json.loads(data)["accepted"] if job["batch"] else 1
        elif len(errors) < 5:
            errors.append(f"HTTP {status}: {data[:300]!r}")
    results.put({"statuses": statuses, "errors": errors[:5], "accepted": accepted, "latencies": latencies,
                 "elapsed": time.monotonic() - start, "exhausted": exhausted})


def run_phase(job: dict[str, Any]) -> dict[str, Any]:
    """CLIENTS processes send `job`'s requests for job["seconds"]; their results together."""
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(CLIENTS + 1), ctx.Queue()
    procs = [ctx.Process(target=client, args=(job, i, barrier, results), daemon=True) for i in range(CLIENTS)]
    for proc in procs:
        proc.start()
    try:
        barrier.wait(timeout=120)
        parts = [results.get(timeout=job["seconds"] + 120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    errors = [e for p in parts for e in p["errors"]]
    if any(p["exhausted"] for p in parts):
        errors.append("a client ran out of pre-built requests: raise MAX_RPS / MAX_BATCH_RPS")
    return {"statuses": sum((p["statuses"] for p in parts), Counter()), "errors": errors,
            "accepted": sum(p["accepted"] for p in parts), "elapsed": max(p["elapsed"] for p in parts),
            "latencies": [x for p in parts for x in p["latencies"]]}


def summary(name: str, phases: list[dict[str, Any]]) -> dict[str, Any]:
    """One target's rounds together: events/s over the time spent on it, latency percentiles."""
    latencies = sorted(x for p in phases for x in p["latencies"]) or [0.0]
    accepted, elapsed = sum(p["accepted"] for p in phases), sum(p["elapsed"] for p in phases)
    return {"name": name, "eps": accepted / elapsed, "requests": sum(sum(p["statuses"].values()) for p in phases),
            "elapsed": elapsed, "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}


def start_gunicorn(app: str, env: dict[str, str], log_path: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()  # no --access-logfile: gunicorn's access log is off by default
    cmd = [sys.executable, "-m", "gunicorn", app, "--workers", "2", "--worker-class", "sync",
           "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    return start(cmd, {**os.environ, **env}, log_path), port


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log_path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn on port {port} did not become healthy:\n{Path(log_path).read_text()[-3000:]}")


def count(engine: Any, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def verify(label: str, phase: dict[str, Any], rows: int, expected: int) -> bool:
    """After a phase: every event answered 202 is a row, and nothing failed."""
    failed = sum(n for status, n in phase["statuses"].items() if status != "202")
    ok = rows == expected and failed == 0 and not phase["errors"]
    print(f"  {label:<14} {phase['accepted'] / phase['elapsed']:9,.0f} events/s  statuses {dict(phase['statuses'])}  "
          f"rows {rows} (expected {expected}) {'OK' if ok else 'FAIL'}")
    for error in phase["errors"][:10]:
        print(f"    error: {error}")
    return ok


def set_up_database(db_url: str) -> dict[str, str]:
    """In the fresh, migrated database: a workspace and the baseline's table; the workspace's credentials."""
    engine = create_engine(db_url)
    with Session(engine) as session, session.begin():
        c = create_workspace(session, "Bench Shop", now=utcnow())
    with engine.begin() as conn:
        conn.execute(text(BASELINE_TABLE))
    engine.dispose()
    return {"workspace_id": c.workspace_id, "api_key": c.api_key, "signing_secret": c.signing_secret}


def main(cleanup: ExitStack) -> int:
    """Set up; each step registers its undoing on `cleanup`, which runs them all in reverse."""
    run = secrets.token_hex(4)
    db_name, namespace = f"rapport_bench_{run}", f"rapport-bench-{run}"
    db_url = fresh_database(cleanup, db_name)
    creds = set_up_database(db_url)
    redis = connect_redis(REDIS_URL)
    cleanup.callback(redis.close)
    cleanup.callback(clear_namespace, redis, namespace)
    tmp = tempfile.mkdtemp(prefix="rapport-bench-")
    cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
    engine = create_engine(db_url)  # counts rows; disposed before each fork of the clients
    cleanup.callback(engine.dispose)

    env = {"DATABASE_URL": db_url, "REDIS_URL": REDIS_URL, "SECRET_KEY": secrets.token_hex(32),
           "RAPPORT_NAMESPACE": namespace, "RAPPORT_DATA_DIR": tmp, "BENCH_BASELINE_DB": db_url}
    ports = {}
    for name, app in (("rapport", "webapp.app:create_app()"), ("baseline", "bench.baseline_app:create_app()")):
        log_path = os.path.join(tmp, f"{name}.log")
        proc, ports[name] = start_gunicorn(app, env, log_path)
        cleanup.callback(stop, proc, timeout=10)  # its own session: the master and its workers
        wait_healthy(proc, ports[name], log_path)

    # Warm up both: imports, the API-key cache and pydantic in every worker.
    template, warm = event_template(), Counter[str]()
    for i in range(20):
        body = event_json(template, f"{run}w", 0, i).encode()
        for name, path in (("rapport", "/api/v1/events"), ("baseline", "/events")):
            warm[name] += post(ports[name], path, body, signed_headers(body, creds))[0] == 202

    print(f"ingest bench: {CLIENTS} clients, {SECONDS:g} s per target in {ROUNDS} alternating rounds, "
          f"batch {BATCH_SECONDS:g} s, {os.cpu_count()} cores, database {db_name}")
    targets = {  # name: (server, path, table whose rows are counted, seconds per round, batch?)
        "single": ("rapport", "/api/v1/events", "events", SECONDS / ROUNDS, False),
        "baseline": ("baseline", "/events", "bench_baseline", SECONDS / ROUNDS, False),
        "batch": ("rapport", "/api/v1/events/batch", "events", BATCH_SECONDS, True),
    }
    expected = Counter({"events": warm["rapport"], "bench_baseline": warm["baseline"]})
    phases: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    ok = True
    for label in [f"{name} {r + 1}/{ROUNDS}" for r in range(ROUNDS) for name in ("single", "baseline")] + ["batch"]:
        server, path, table, seconds, is_batch = targets[label.split()[0]]
        phase = run_phase({"creds": creds, "port": ports[server], "path": path, "seconds": seconds,
                           "batch": is_batch, "tag": f"{run}-{label.replace(' ', '-').replace('/', 'of')}"})
        phases[label.split()[0]].append(phase)
        expected[table] += phase["accepted"]
        ok &= verify(label, phase, count(engine, f"SELECT count(*) FROM {table}"), expected[table])
        engine.dispose()  # no pooled connection across the next fork
    print(f"event ids waiting in the evaluation inbox: {redis.llen(inbox_key(namespace, JobName.EVALUATE_EVENTS))}")
    single, baseline, batch = (summary(name, phases[name]) for name in targets)
    for phase in (single, baseline, batch):
        print(f"{phase['name']:>8}: {phase['eps']:9,.0f} events/s  {phase['requests']:6} requests in "
              f"{phase['elapsed']:4.1f} s  p50 {phase['p50_ms']:5.1f} ms  p99 {phase['p99_ms']:5.1f} ms")
    ratio = single["eps"] / baseline["eps"] if baseline["eps"] else 0.0
    print(f"single / baseline = {ratio:.3f} (target >= 0.50): {'met' if ratio >= 0.5 else 'MISSED'}; "
          f"batch {batch['eps']:,.0f} events/s (target >= 10,000): "
          f"{'met' if batch['eps'] >= 10_000 else 'MISSED'}; verification {'OK' if ok else 'FAILED'}")
    print(json.dumps({"bench": "ingest", "single_eps": round(single["eps"]), "baseline_eps": round(baseline["eps"]),
                      "ratio": round(ratio, 3), "batch_eps": round(batch["eps"]), "clients": CLIENTS,
                      "seconds": SECONDS, "verified": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    run_bench(main)

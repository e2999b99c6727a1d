# ruff: noqa: E402 (the imports follow the sys.path fix below)
"""Dispatch throughput: personalized MJML emails through the real worker path, against raw smtplib.

Run from the repo root: `.venv/bin/python bench/dispatch.py` (about 5 minutes at full size;
BENCH_MESSAGES=5000 for a quick run).

Set-up (not timed): a fresh PostgreSQL database and Redis namespace (bench/common.py), and
a counting SMTP server (bench/dispatch_smtp.py: aiosmtpd in its own process). Each
audience is a workspace whose contacts each have one `scheduled` abandoned-cart email
(templates/email/abandoned_cart: their name, 3 cart items, total, recovery link),
inserted with SQL: this bench measures dispatch, not journey evaluation.

What is measured
  1. baseline: plain smtplib from 2 processes, each over one persistent connection,
     sending one pre-rendered message (built by the same code the workers use, so the
     same size and form) BENCH_BASELINE_MESSAGES times (default min(N, 30,000)).
  2. emails: BENCH_MESSAGES (default 100,000) messages, then a smaller audience
     (BENCH_SMALL_MESSAGES, default N/5), each with 2 fresh `rapport worker` processes
     (RQ SimpleWorker) draining `dispatch_messages` jobs of 500 ids enqueued at once,
     as the scheduler would. Timed from the enqueue until no message is scheduled or
     sending. Every send goes the real way: claim, render (Jinja + MJML), signed
     links and open pixel, List-Unsubscribe, VERP return path, MIME, SMTP, record.
     The workers' peak RSS (VmHWM) is read for each audience: flat memory means the
     two peaks are about equal.
  3. SMS and Telegram (if workers/dev/fake_providers exists): BENCH_TEXT_MESSAGES each
     (default 3,000) to the local fake provider server, rate limits raised so the
     limiter's Redis round trip is paid but never waits.
  4. BENCH_PROFILE=1: one more email run (BENCH_PROFILE_MESSAGES, default 10,000) with
     one worker under cProfile; its top costs are printed.

Checks (exit status 1 if any fails): every message `sent`; the SMTP server received
exactly N messages with N distinct X-Rapport-Message ids, the same ids as the
database's, no duplicates; no failed or stuck RQ job. Target (issue 5): ours >= 60 % of
the baseline, memory flat in the audience size. The last line is one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import importlib.util
import io
import json
import multiprocessing as mp
import os
import pstats
import secrets
import shutil
import signal
import smtplib
import tempfile
import time
from contextlib import ExitStack
from typing import Any

from rq import Worker
from sqlalchemy import text

from bench.common import (
    REDIS_URL,
    check,
    clear_namespace,
    cpu_seconds,
    free_port,
    fresh_database,
    peak_rss_mb,
    postgres_pids,
    rq_problems,
    run_bench,
    start,
    stop,
    until,
    wait_for_port,
)
from bench.dispatch_audience import insert_audience, prerendered_email
from engine.clock import utcnow
from engine.store.db import DeferredJob, JobName, make_engine, make_sessionmaker
from engine.workspaces.accounts import create_workspace
from workers.queues import connect_redis, make_job_sink, make_queues

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "100000"))
SMALL = int(os.environ.get("BENCH_SMALL_MESSAGES", str(max(1, MESSAGES // 5))))
BASELINE = int(os.environ.get("BENCH_BASELINE_MESSAGES", str(min(MESSAGES, 30000))))
TEXT_MESSAGES = int(os.environ.get("BENCH_TEXT_MESSAGES", "3000"))
PROFILE = os.environ.get("BENCH_PROFILE", "") not in ("", "0")
PROFILE_MESSAGES = int(os.environ.get("BENCH_PROFILE_MESSAGES", "10000"))
KEEP_LOGS = os.environ.get("BENCH_KEEP_LOGS", "") not in ("", "0")
WORKERS = 2
BATCH = 500  # ids per job, the scheduler's default
BOUNCE_DOMAIN = "bounces.bench.example"
TEXT_RATE_LIMITS = "sms=100000/s:1000,telegram=100000/s:1000,whatsapp=100000/s:1000,viber=100000/s:1000"
PROFILE_CLOCK = os.environ.get("BENCH_PROFILE_CLOCK", "wall")  # wall: waits count too; cpu: only this process's work
PROFILED_WORKER = """
import cProfile, sys, time
from workers.cli.main import main
path, clock = sys.argv[1], sys.argv[2]
profiler = cProfile.Profile(time.process_time) if clock == "cpu" else cProfile.Profile()
try:
    profiler.runcall(main, ["worker"])
finally:
    profiler.dump_stats(path)
"""
FAKE_RUNNER = """
import signal, sys, threading
from workers.dev.fake_providers.server import FakeProviders
fake = FakeProviders(port=int(sys.argv[1])).start()
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
done.wait()
fake.stop()
"""


# --- Baseline: plain smtplib ----------------------------------------------------------------------

def baseline_client(port: int, raw: bytes, envelope: tuple[str, str], count: int, go: Any, out: Any) -> None:
    conn = smtplib.SMTP("127.0.0.1", port, timeout=30)
    conn.ehlo()
    go.wait()
    started, cpu = time.monotonic(), time.process_time()
    for _ in range(count):
        conn.sendmail(envelope[0], [envelope[1]], raw)
    out.put((started, time.monotonic(), time.process_time() - cpu))
    conn.quit()


def baseline_rate(port: int, raw: bytes, envelope: tuple[str, str], total: int,
                  server_pid: int) -> tuple[float, dict[str, float]]:
    """Messages/s from WORKERS processes on persistent connections (clocks are system-wide monotonic),
    and the CPU milliseconds per message of the clients and of the SMTP server."""
    ctx = mp.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    shares = [total // WORKERS + (1 if n < total % WORKERS else 0) for n in range(WORKERS)]
    procs = [ctx.Process(target=baseline_client, args=(port, raw, envelope, share, go, out)) for share in shares]
    for proc in procs:
        proc.start()
    time.sleep(0.5)  # connected and waiting
    server_cpu = cpu_seconds([server_pid])
    go.set()
    spans = [out.get(timeout=600) for _ in procs]
    server_cpu = cpu_seconds([server_pid]) - server_cpu
    for proc in procs:
        proc.join()
    seconds = max(end for _, end, _ in spans) - min(begin for begin, _, _ in spans)
    cpu_ms = {"clients": round(sum(cpu for _, _, cpu in spans) * 1000 / total, 2),
              "smtp_server": round(server_cpu * 1000 / total, 2)}
    return total / seconds, cpu_ms


def cpu_text(cpu_ms: dict[str, float]) -> str:
    return ", ".join(f"{part.replace('_', ' ')} {ms:.2f} ms" for part, ms in cpu_ms.items())


# --- Our path: 2 workers, dispatch_messages jobs --------------------------------------------------

class Run:
    """One audience through fresh workers: what a phase needs and what it found."""

    def __init__(self, bench: Bench, label: str, channel: str, count: int, *, profile: str | None = None):
        self.bench, self.label, self.channel, self.count, self.profile = bench, label, channel, count, profile

    def go(self) -> dict[str, Any]:
        bench = self.bench
        with bench.sessions.begin() as session:
            workspace_id = create_workspace(session, f"Bench {self.label}", now=utcnow()).workspace_id
        ids = insert_audience(bench.engine, workspace_id, self.count, channel=self.channel, now=utcnow())
        workers = bench.start_workers(self.label, profile=self.profile)
        cpu_pids = {"workers": [proc.pid for proc in workers], "smtp_server": [bench.smtp_proc.pid],
                    "postgres": postgres_pids()}
        cpu_before = {part: cpu_seconds(pids) for part, pids in cpu_pids.items()}
        started = time.monotonic()
        make_job_sink(bench.redis, bench.namespace, BATCH)([DeferredJob(JobName.DISPATCH_MESSAGES, tuple(ids))])

        queue = make_queues(bench.redis, bench.namespace)["messages"]

        def done() -> bool:
            # Redis first: counting unsent rows while the workers turn 100,000 of them into dead
            # index entries would itself load PostgreSQL, and slow the run it measures.
            if queue.failed_job_registry.count:
                raise RuntimeError(f"dispatch jobs failed: {rq_problems(bench.redis, bench.namespace)}")
            if queue.count or queue.started_job_registry.count:
                return False
            return int(bench.scalar("SELECT count(*) FROM messages WHERE workspace_id = :ws "
                                    "AND status IN ('scheduled', 'claimed', 'sending')", ws=workspace_id)) == 0

        until(done, f"{self.label} to be dispatched", poll=0.2, timeout=max(600.0, self.count / 20))
        seconds = time.monotonic() - started
        cpu_pids["postgres"] = sorted(set(cpu_pids["postgres"]) | set(postgres_pids()))  # backends opened meanwhile
        cpu_ms = {part: round((cpu_seconds(pids) - cpu_before.get(part, 0.0)) * 1000 / self.count, 2)
                  for part, pids in cpu_pids.items()} if self.channel == "email" else {}
        rss = [peak_rss_mb(proc.pid) for proc in workers]
        for proc in workers:
            stop(proc)
        with bench.engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM messages WHERE workspace_id = :ws GROUP BY status"),
                                {"ws": workspace_id}).all()
        statuses: dict[str, int] = {status: count for status, count in rows}
        return {"workspace_id": workspace_id, "ids": ids, "seconds": seconds, "per_s": self.count / seconds,
                "peak_rss_mb": max(rss), "statuses": statuses, "cpu_ms_per_email": cpu_ms}


class Bench:
    def __init__(self, cleanup: ExitStack):
        self.cleanup = cleanup
        run = secrets.token_hex(4)
        self.namespace = f"rapport-bench-{run}"
        self.db_url = fresh_database(cleanup, f"rapport_bench_{run}")
        self.engine = make_engine(self.db_url)
        cleanup.callback(self.engine.dispose)
        self.sessions = make_sessionmaker(self.engine)  # no job sink: the bench enqueues by hand
        self.redis = connect_redis(REDIS_URL)
        cleanup.callback(self.redis.close)
        cleanup.callback(clear_namespace, self.redis, self.namespace)
        self.tmp = Path(tempfile.mkdtemp(prefix="rapport-bench-dispatch-"))
        if not KEEP_LOGS:
            cleanup.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        self.env: dict[str, str] = {}

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()

    def start_smtp(self) -> tuple[int, Path]:
        port, stats, log = free_port(), self.tmp / "smtp-stats.json", self.tmp / "smtp.log"
        proc = start([sys.executable, "-m", "bench.dispatch_smtp", "--port", str(port), "--stats", str(stats)],
                     dict(os.environ), log)
        self.cleanup.callback(stop, proc)
        wait_for_port(port, proc, log)
        self.smtp_proc = proc
        return port, stats

    def start_fake_providers(self) -> str | None:
        if importlib.util.find_spec("workers.dev.fake_providers.server") is None:
            return None
        port, log = free_port(), self.tmp / "fake-providers.log"
        proc = start([sys.executable, "-c", FAKE_RUNNER, str(port)], dict(os.environ), log)
        self.cleanup.callback(stop, proc)
        wait_for_port(port, proc, log)
        return f"http://127.0.0.1:{port}"

    def start_workers(self, label: str, *, profile: str | None = None) -> list[Any]:
        procs = []
        for n in range(WORKERS):
            cmd = [sys.executable, "-m", "workers.cli", "worker"]
            if profile and n == 0:
                cmd = [sys.executable, "-c", PROFILED_WORKER, profile, PROFILE_CLOCK]
            proc = start(cmd, {**os.environ, **self.env}, self.tmp / f"worker-{label}-{n}.log")
            self.cleanup.callback(stop, proc)
            procs.append(proc)
        queue = make_queues(self.redis, self.namespace)["messages"]
        until(lambda: Worker.count(connection=self.redis, queue=queue) >= WORKERS, "the workers to start", timeout=60)
        return procs


def smtp_tally(stats: Path, workspace_id: str, expected: int) -> dict[str, int]:
    """The SMTP server's count for a workspace, once it has caught up (it writes 4 times a second)."""
    def read() -> dict[str, int]:
        return dict(json.loads(stats.read_text() or "{}").get(workspace_id) or {})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and read().get("received", 0) < expected:
        time.sleep(0.1)
    return {"received": 0, "unique": 0, "duplicates": 0, **read()}


def smtp_ids(bench: Bench, stats: Path) -> dict[str, list[int]]:
    path = Path(str(stats) + ".ids.json")
    path.unlink(missing_ok=True)
    os.kill(bench.smtp_proc.pid, signal.SIGUSR1)
    until(path.exists, "the SMTP server's id list", timeout=30, poll=0.05)
    time.sleep(0.2)  # os.replace makes it whole; give a slow disk a moment anyway
    return dict(json.loads(path.read_text()))


def print_profile(path: str) -> None:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    print(out.getvalue())


def main(cleanup: ExitStack) -> int:
    bench = Bench(cleanup)
    smtp_port, stats = bench.start_smtp()
    fake_url = bench.start_fake_providers()
    bench.env = {"DATABASE_URL": bench.db_url, "REDIS_URL": REDIS_URL, "RAPPORT_NAMESPACE": bench.namespace,
                 "SECRET_KEY": secrets.token_hex(32), "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
                 "RAPPORT_DATA_DIR": str(bench.tmp), "MAIL_FROM": "Bench Shop <shop@shop.example>",
                 "BASE_URL": "https://rapport.shop.example", "BOUNCE_DOMAIN": BOUNCE_DOMAIN,
                 "RAPPORT_RATE_LIMITS": TEXT_RATE_LIMITS}
    if fake_url:
        from workers.dev.fake_providers.state import fake_provider_env
        bench.env.update(fake_provider_env(fake_url))
    print(f"dispatch bench: {MESSAGES:,} emails (and {SMALL:,}), baseline {BASELINE:,}, {WORKERS} workers, "
          f"{os.cpu_count()} cores" + (f", logs in {bench.tmp}" if KEEP_LOGS else ""), flush=True)
    checks: list[tuple[str, bool]] = []

    raw, envelope = prerendered_email(bench.env)
    # The baseline is measured in two halves, before and after the main run, and averaged:
    # on a shared 2-core machine the background load drifts over minutes, and a baseline
    # taken only before the run made the ratio swing between 0.42 and 0.70 from run to run.
    before, baseline_cpu = baseline_rate(smtp_port, raw, envelope, BASELINE // 2, bench.smtp_proc.pid)
    print(f"baseline (before): plain smtplib, {WORKERS} processes, one {len(raw):,}-byte message "
          f"{BASELINE // 2:,} times: {before:,.0f} messages/s; CPU per message: {cpu_text(baseline_cpu)}",
          flush=True)

    results = {}
    baseline = after = before
    for label, count in (("emails", MESSAGES), ("emails-small", SMALL)):
        result = Run(bench, label, "email", count).go()
        if label == "emails":
            after, _cpu = baseline_rate(smtp_port, raw, envelope, BASELINE // 2, bench.smtp_proc.pid)
            baseline = (before + after) / 2
            print(f"baseline (after): {after:,.0f} messages/s; mean {baseline:,.0f}", flush=True)
        results[label] = result
        tally = smtp_tally(stats, result["workspace_id"], count)
        print(f"{label}: {count:,} in {result['seconds']:.1f} s = {result['per_s']:,.0f} emails/s "
              f"({result['per_s'] / baseline:.2f} of baseline); CPU per email: {cpu_text(result['cpu_ms_per_email'])}; "
              f"workers' peak RSS {result['peak_rss_mb']:.0f} MiB; "
              f"statuses {result['statuses']}; SMTP server got {tally}", flush=True)
        sent_ok = result["statuses"] == {"sent": count}
        ids_ok = smtp_ids(bench, stats).get(result["workspace_id"]) == result["ids"]
        check(checks, f"{label}: every message sent", sent_ok)
        check(checks, f"{label}: SMTP server received exactly {count:,}, the same ids, no duplicates",
              tally == {"received": count, "unique": count, "duplicates": 0} and ids_ok)

    texts: dict[str, float] = {}
    if fake_url is None:
        print("sms/messengers: skipped (workers/dev/fake_providers is not there)")
    else:
        for channel in ("sms", "telegram"):
            result = Run(bench, channel, channel, TEXT_MESSAGES).go()
            texts[channel] = result["per_s"]
            print(f"{channel}: {TEXT_MESSAGES:,} to the fake provider in {result['seconds']:.1f} s = "
                  f"{result['per_s']:,.0f} sends/s; statuses {result['statuses']}", flush=True)
            check(checks, f"{channel}: every message sent", result["statuses"] == {"sent": TEXT_MESSAGES})

    if PROFILE:
        path = str(bench.tmp / "worker.prof")
        result = Run(bench, "profile", "email", PROFILE_MESSAGES, profile=path).go()
        print(f"profile run: {PROFILE_MESSAGES:,} emails at {result['per_s']:,.0f}/s with one worker under cProfile "
              f"({PROFILE_CLOCK} clock)")
        print_profile(path)

    problems = rq_problems(bench.redis, bench.namespace)
    check(checks, "no failed or stuck RQ jobs" + (f": {problems}" if problems else ""), not problems)
    ok = all(passed for _label, passed in checks)
    ours = results["emails"]["per_s"]
    ratio = ours / baseline
    flat = results["emails"]["peak_rss_mb"] <= results["emails-small"]["peak_rss_mb"] * 1.15
    print(f"target: >= 0.60 of baseline: {'met' if ratio >= 0.6 else 'MISSED'} ({ratio:.2f}); memory "
          f"{'flat' if flat else 'GROWS'} ({results['emails-small']['peak_rss_mb']:.0f} MiB for {SMALL:,}, "
          f"{results['emails']['peak_rss_mb']:.0f} MiB for {MESSAGES:,}); verification {'OK' if ok else 'FAILED'}")
    print(json.dumps({
        "bench": "dispatch", "messages": MESSAGES, "emails_per_s": round(ours), "baseline_per_s": round(baseline),
        "baseline_before_per_s": round(before), "baseline_after_per_s": round(after),
        "ratio": round(ratio, 3), "peak_rss_mb": round(results["emails"]["peak_rss_mb"], 1),
        "messages_small": SMALL, "peak_rss_mb_small": round(results["emails-small"]["peak_rss_mb"], 1),
        "emails_small_per_s": round(results["emails-small"]["per_s"]), "workers": WORKERS, "message_bytes": len(raw),
        "cpu_ms_per_email": results["emails"]["cpu_ms_per_email"], "baseline_cpu_ms_per_message": baseline_cpu,
        **{f"{channel}_per_s": round(rate) for channel, rate in texts.items()},
        "verified": ok,
    }))
    return 0 if ok else 1


if __name__ == "__main__":
    run_bench(main)

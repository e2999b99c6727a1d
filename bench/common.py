"""What the benches share: a fresh database and Redis namespace, child processes, waiting, checks.

Each bench makes its own PostgreSQL database (rapport_bench_<hex>, from
BENCH_DATABASE_URL, dropped at the end) and Redis namespace (from BENCH_REDIS_URL,
deleted at the end); cleanups are registered on the caller's ExitStack, so they run
however the bench ends (SIGTERM included: see `exit_on_sigterm`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn

from redis import Redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from engine.store.migrate import upgrade
from workers.queues import make_queues
from workers.supervisor import free_port  # noqa: F401 (the benches take it from here)

ROOT = Path(__file__).resolve().parent.parent  # the repo: child processes run from here
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def fresh_database(cleanup: ExitStack, name: str) -> str:
    """Create and migrate database `name` on the bench server; dropped when `cleanup` closes. Returns its URL."""
    db_url = make_url(DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(DATABASE_URL, isolation_level="AUTOCOMMIT")
    cleanup.callback(admin.dispose)
    cleanup.callback(drop_database, admin, name)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    upgrade(db_url)
    return db_url


def drop_database(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def clear_namespace(redis: Redis, namespace: str) -> None:
    for queue in make_queues(redis, namespace).values():
        queue.delete(delete_jobs=True)
    leftovers = list(redis.scan_iter(f"*{namespace}*", count=1000))
    if leftovers:
        redis.delete(*leftovers)


def start(cmd: list[str], env: dict[str, str], log_path: str | Path) -> subprocess.Popen[bytes]:
    """A child process in its own session (so it can be killed whole), output to `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()  # an RQ worker finishes its job and leaves
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log_path: str | Path, *, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}:\n{Path(log_path).read_text()[-2000:]}")


def until(done: Callable[[], bool], what: str, *, timeout: float = 600, poll: float = 0.1,
          between: Callable[[], None] | None = None) -> float:
    """Seconds until `done()`; `between` runs in the meantime. Gives up after `timeout`."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"gave up after {timeout:.0f} s waiting for {what}")
        if between is not None:
            between()
        time.sleep(poll)
    return time.monotonic() - started


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes have used so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    """This machine's PostgreSQL processes (a bench's database server is local)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"postgres"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def rq_problems(redis: Redis, namespace: str) -> list[str]:
    """Failed, still queued or still running jobs in the namespace's queues, with the first error."""
    problems = []
    for kind, queue in make_queues(redis, namespace).items():
        failed = queue.failed_job_registry
        if failed.count:
            problems.append(f"{failed.count} failed jobs in {kind}")
            for job_id in failed.get_job_ids()[:1]:
                job = queue.fetch_job(job_id)
                if job is not None and job.exc_info:
                    problems.append(job.exc_info.strip().splitlines()[-1])
        if queue.count:
            problems.append(f"{queue.count} jobs still queued in {kind}")
        if queue.started_job_registry.count:
            problems.append(f"{queue.started_job_registry.count} jobs still running in {kind}")
    return problems


def check(checks: list[tuple[str, bool]], label: str, ok: bool) -> None:
    checks.append((label, ok))
    print(f"  check: {label}: {'OK' if ok else 'FAILED'}", flush=True)


def exit_on_sigterm() -> None:
    def _raise(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwind, so the cleanups run
    signal.signal(signal.SIGTERM, _raise)


def run_bench(main: Callable[[ExitStack], int]) -> NoReturn:
    """Run a bench's `main(cleanup)` and exit with its status; the cleanups run however it ends."""
    exit_on_sigterm()
    with ExitStack() as stack:
        status = main(stack)
    sys.exit(status)

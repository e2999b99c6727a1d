"""Starting, waiting for and stopping the real processes of end-to-end tests."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from redis import Redis

from engine.signing import sign, sign_request
from engine.workspaces.accounts import Credentials
from tests.conftest import create_database, drop_database
from workers.supervisor import start_redis


def spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(check: Callable[[], Any], *, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except (requests.ConnectionError, requests.Timeout):  # refused, or accepted while workers still boot
        return False


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    credentials: Credentials
    redis: Redis
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = spawn([sys.executable, "-m", "workers.cli", "worker"], self.env)
        self.workers.append(proc)
        return proc

    def post(self, payload: Any, *, path: str = "/api/v1/events") -> requests.Response:
        body = json.dumps(payload).encode()
        return requests.post(self.base_url + path, data=body, timeout=10, headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.credentials.api_key}",
            "Rapport-Signature": sign(self.credentials.signing_secret, body, int(time.time())),
        })

    def send(self, method: str, path: str, payload: Any = None) -> requests.Response:
        """Any other API write, signed over its method, path and body (README, "Who may do what")."""
        body = b"" if payload is None else json.dumps(payload).encode()
        return requests.request(method, self.base_url + path, data=body, timeout=10, headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.credentials.api_key}",
            "Rapport-Signature": sign_request(self.credentials.signing_secret, method, path, body, int(time.time())),
        })

    def get(self, path: str) -> Any:
        response = requests.get(self.base_url + path, timeout=10,
                                headers={"Authorization": f"Bearer {self.credentials.api_key}"})
        response.raise_for_status()
        return response.json()

    def outbox_to(self, address: str) -> list[dict[str, Any]]:
        return [m for m in self.get("/api/v1/outbox?limit=500")["messages"] if m["to"] == address]


@dataclass(frozen=True)
class Backing:
    database_url: str
    redis_url: str
    redis: Redis


@contextmanager
def backing_services(tmp: Path, redis_db: int) -> Iterator[Backing]:
    """A database of its own and a Redis (a database index of its own on a shared server,
    so flushing it touches no other test module), removed afterwards."""
    database_url = create_database(tmp)
    redis_proc = None
    external = os.environ.get("RAPPORT_TEST_REDIS_URL")
    if external:
        base = external.rsplit("/", 1)[0] if external.count("/") > 2 else external
        redis_url = f"{base}/{redis_db}"
    else:
        redis_proc, redis_url = start_redis(tmp)
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    try:
        yield Backing(database_url, redis_url, redis)
    finally:
        redis.close()
        if redis_proc is not None:
            stop(redis_proc)
        drop_database(database_url)


def process_env(backing: Backing, tmp: Path, port: int, **extra: str) -> dict[str, str]:
    """What every process of the stack reads: short scheduler ticks and redelivery for tests."""
    return dict(
        os.environ, DATABASE_URL=backing.database_url, REDIS_URL=backing.redis_url,
        RAPPORT_NAMESPACE=f"e2e-{secrets.token_hex(4)}", RAPPORT_DATA_DIR=str(tmp), SECRET_KEY="e2e-secret",
        RAPPORT_SCHEDULER_TICK="0.2", RAPPORT_REDELIVER_AFTER="2", PORT=str(port), PYTHONUNBUFFERED="1", **extra,
    )


def create_workspace(env: dict[str, str], name: str, *options: str) -> Credentials:
    created = subprocess.run([sys.executable, "-m", "workers.cli", "workspace", "create", name, "--json", *options],
                             env=env, capture_output=True, text=True)
    assert created.returncode == 0, f"workspace create failed: {created.stderr}"
    return Credentials(**json.loads(created.stdout))


def start_web_and_scheduler(stack: Stack, port: int) -> None:
    stack.others.append(spawn([sys.executable, "-m", "gunicorn", "webapp.app:create_app()", "--bind",
                               f"127.0.0.1:{port}", "--workers", "2", "--log-level", "warning"], stack.env))
    stack.others.append(spawn([sys.executable, "-m", "workers.cli", "scheduler"], stack.env))


def stop_all(stack: Stack) -> None:
    for proc in stack.workers + stack.others:
        stop(proc)

"""Starting, waiting for and stopping the real processes of end-to-end tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from redis import Redis

from engine.services.workspaces import Credentials
from engine.signing import sign


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

    def get(self, path: str) -> Any:
        response = requests.get(self.base_url + path, timeout=10,
                                headers={"Authorization": f"Bearer {self.credentials.api_key}"})
        response.raise_for_status()
        return response.json()

    def outbox_to(self, address: str) -> list[dict[str, Any]]:
        return [m for m in self.get("/api/v1/outbox?limit=500")["messages"] if m["to"] == address]

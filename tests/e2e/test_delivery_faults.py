"""Fault tests with real processes: a worker killed with SIGKILL in the middle of a dispatch batch.

300 emails go to a real SMTP server (aiosmtpd) that takes 20 ms per message, so the batch
is still being sent when the worker is killed. A new worker and the scheduler's sweep
finish the job. Counted in the SMTP server: no message twice, none lost — apart from at
most the one the dead worker was sending, whose fate the database cannot know (it is
left `sending`, then marked `unknown`, and never resent).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from redis import Redis
from sqlalchemy import select

from engine.db import make_engine, make_sessionmaker
from engine.models import Message
from engine.services.workspaces import Credentials
from tests.conftest import create_database, drop_database
from tests.e2e.processes import Stack, healthy, spawn, stop, wait_for
from workers.supervisor import free_port, start_redis

pytestmark = pytest.mark.e2e
AUDIENCE = 300


class SlowSmtpHandler:
    """Takes 20 ms per message and remembers each message's X-Rapport-Message header."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        await asyncio.sleep(0.02)
        for line in envelope.content.split(b"\r\n"):
            if line.lower().startswith(b"x-rapport-message:"):
                self.received.append(line.split(b":", 1)[1].strip().decode())
                break
        return "250 OK"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[SlowSmtpHandler, int]]:
    handler, port = SlowSmtpHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, smtp: tuple[SlowSmtpHandler, int]) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e-faults")
    database_url = create_database(tmp)
    redis_proc = None
    external = os.environ.get("RAPPORT_TEST_REDIS_URL")
    if external:
        redis_url = external.rsplit("/", 1)[0] + "/11" if external.count("/") > 2 else external + "/11"
    else:
        redis_proc, redis_url = start_redis(Path(tmp))
    redis = Redis.from_url(redis_url)
    port = free_port()
    env = dict(
        os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, SMTP_URL=f"smtp://127.0.0.1:{smtp[1]}",
        RAPPORT_NAMESPACE=f"e2e-f-{secrets.token_hex(4)}", RAPPORT_DATA_DIR=str(tmp), SECRET_KEY="e2e-secret",
        RAPPORT_SCHEDULER_TICK="0.2", RAPPORT_REDELIVER_AFTER="2", PORT=str(port), PYTHONUNBUFFERED="1",
    )
    created = subprocess.run([sys.executable, "-m", "workers.cli", "workspace", "create", "Fault Shop", "--json"],
                             env=env, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    s = Stack(f"http://127.0.0.1:{port}", env, Credentials(**json.loads(created.stdout)), redis)
    s.database_url = database_url  # type: ignore[attr-defined]
    try:
        s.others.append(spawn([sys.executable, "-m", "gunicorn", "webapp.app:create_app()", "--bind",
                               f"127.0.0.1:{port}", "--workers", "2", "--log-level", "warning"], env))
        s.others.append(spawn([sys.executable, "-m", "workers.cli", "scheduler"], env))
        wait_for(lambda: healthy(s.base_url + "/healthz"), timeout=30, what="the web server")
        yield s
    finally:
        for proc in s.workers + s.others:
            stop(proc)
        redis.close()
        if redis_proc is not None:
            stop(redis_proc)
        drop_database(database_url)


def statuses(stack: Stack) -> dict[str, str]:
    engine = make_engine(stack.database_url)  # type: ignore[attr-defined]
    try:
        with make_sessionmaker(engine)() as session:
            return {str(i): s for i, s in session.execute(select(Message.id, Message.status))}
    finally:
        engine.dispose()


def test_a_worker_killed_during_a_batch_leaves_no_duplicates_and_no_losses(
        stack: Stack, smtp: tuple[SlowSmtpHandler, int]) -> None:
    """SIGKILL mid-batch, a new worker: every email arrives once, except at most the one in flight."""
    handler, _ = smtp
    response = requests.post(stack.base_url + "/api/v1/journeys", timeout=10, json={
        "name": "Flash sale", "publish": True, "definition": {
            "trigger": {"event": "cart_updated", "key": "cart_id"},
            "steps": [{"id": "mail", "type": "send", "channel": "email", "template": "abandoned_cart"}]}},
        headers={"Authorization": f"Bearer {stack.credentials.api_key}"})
    assert response.status_code == 201, response.text
    now = datetime.now(UTC).isoformat()
    events = [{"id": f"cart-{n}", "type": "cart_updated", "occurred_at": now,
               "contact": {"external_id": f"c-{n}", "email": f"c-{n}@example.com"},
               "properties": {"cart_id": f"k-{n}", "items": [{"name": "Tea", "price": 5, "quantity": 1}],
                              "currency": "EUR", "total": 5, "recovery_url": f"https://shop.example/c/{n}"}}
              for n in range(AUDIENCE)]
    assert stack.post({"events": events}, path="/api/v1/events/batch").status_code in (200, 202)

    first = stack.start_worker()
    wait_for(lambda: len(handler.received) >= 60, timeout=60, what="the batch to be under way")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    at_kill = len(handler.received)
    assert at_kill < AUDIENCE, "the batch finished before the kill; the test proves nothing"

    stack.start_worker()
    wait_for(lambda: sum(s == "sent" for s in statuses(stack).values()) >= AUDIENCE - 1, timeout=90,
             what="the rest of the batch after the restart")
    final = statuses(stack)
    received = handler.received
    assert len(received) == len(set(received)), "a message reached the SMTP server twice"
    in_doubt = {i for i, s in final.items() if s in ("sending", "unknown")}
    assert len(in_doubt) <= 1 and len(final) == AUDIENCE
    sent = {i for i, s in final.items() if s == "sent"}
    assert sent <= set(received), "a message marked sent never reached the SMTP server"
    assert set(received) - sent <= in_doubt, "the SMTP server got a message the database does not account for"

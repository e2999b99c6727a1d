"""Fault tests with real processes: a worker killed with SIGKILL in the middle of a dispatch batch.

300 emails go to a real SMTP server (aiosmtpd) that takes 20 ms per message, so the batch
is still being sent when the worker is killed. A new worker and the scheduler's sweep
finish the job. Counted in the SMTP server: no message twice, none lost — apart from at
most the one the dead worker was sending on each of its connections, whose fate the
database cannot know (left `sending`, then marked `unknown`, and never resent).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from engine.db import make_engine, make_sessionmaker
from engine.models import Message
from tests.e2e.processes import (
    Stack,
    backing_services,
    create_workspace,
    healthy,
    process_env,
    start_web_and_scheduler,
    stop_all,
    wait_for,
)
from workers.supervisor import free_port

pytestmark = pytest.mark.e2e
AUDIENCE = 300
LANES = 2  # a worker sends on two connections at once: at most one message in doubt on each


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
    with backing_services(tmp, redis_db=11) as backing:
        port = free_port()
        env = process_env(backing, tmp, port, SMTP_URL=f"smtp://127.0.0.1:{smtp[1]}",
                          RAPPORT_DISPATCH_LANES=str(LANES))
        s = Stack(f"http://127.0.0.1:{port}", env, create_workspace(env, "Fault Shop"), backing.redis)
        s.database_url = backing.database_url  # type: ignore[attr-defined]
        try:
            start_web_and_scheduler(s, port)
            wait_for(lambda: healthy(s.base_url + "/healthz"), timeout=30, what="the web server")
            yield s
        finally:
            stop_all(s)


def statuses(stack: Stack) -> dict[str, str]:
    engine = make_engine(stack.database_url)  # type: ignore[attr-defined]
    try:
        with make_sessionmaker(engine)() as session:
            return {str(i): s for i, s in session.execute(select(Message.id, Message.status))}
    finally:
        engine.dispose()


def test_a_worker_killed_during_a_batch_leaves_no_duplicates_and_no_losses(
        stack: Stack, smtp: tuple[SlowSmtpHandler, int]) -> None:
    """SIGKILL mid-batch, a new worker: every email arrives once, except at most those in flight."""
    handler, _ = smtp
    response = stack.send("POST", "/api/v1/journeys", {
        "name": "Flash sale", "publish": True, "definition": {
            "trigger": {"event": "cart_updated", "key": "cart_id"},
            "steps": [{"id": "mail", "type": "send", "channel": "email", "template": "abandoned_cart"}]}})
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

    def settled() -> bool:  # nothing left to send, and the new worker's own send (if any) recorded
        now = statuses(stack).values()
        return all(s in ("sent", "sending", "unknown") for s in now) and sum(s != "sent" for s in now) <= LANES

    wait_for(settled, timeout=90, what="the rest of the batch after the restart")
    final = statuses(stack)
    received = handler.received
    assert len(received) == len(set(received)), "a message reached the SMTP server twice"
    in_doubt = {i for i, s in final.items() if s in ("sending", "unknown")}
    assert len(in_doubt) <= LANES and len(final) == AUDIENCE
    sent = {i for i, s in final.items() if s == "sent"}
    assert sent <= set(received), "a message marked sent never reached the SMTP server"
    assert set(received) - sent <= in_doubt, "the SMTP server got a message the database does not account for"

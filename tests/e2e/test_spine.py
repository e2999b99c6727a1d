"""End to end: real processes (gunicorn web, RQ worker, scheduler, aiosmtpd SMTP sink),
signed webhooks over HTTP, and the email read back from the outbox API.

The demo journey's wait is set to 2 seconds and the scheduler ticks every 0.2 s, so
the whole module runs in well under a minute.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import (
    Stack,
    backing_services,
    create_workspace,
    healthy,
    process_env,
    spawn,
    start_web_and_scheduler,
    stop_all,
    wait_for,
)
from workers.dev.demo import cart_event, order_event
from workers.supervisor import free_ports

pytestmark = pytest.mark.e2e
WAIT_SECONDS = 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e")
    with backing_services(Path(tmp), redis_db=9) as backing:
        port, sink_port = free_ports(2)
        env = process_env(backing, tmp, port, SMTP_URL=f"smtp://127.0.0.1:{sink_port}")
        credentials = create_workspace(env, "E2E Shop", "--demo", "--demo-wait", str(WAIT_SECONDS))
        s = Stack(f"http://127.0.0.1:{port}", env, credentials, backing.redis)
        try:
            s.others.append(spawn([sys.executable, "-m", "workers.cli", "smtp-sink", "--port", str(sink_port)], env))
            start_web_and_scheduler(s, port)
            s.start_worker()
            wait_for(lambda: healthy(s.base_url + "/healthz"), timeout=30, what="the web server")
            yield s
        finally:
            stop_all(s)


def new_customer() -> tuple[str, str]:
    tag = secrets.token_hex(4)
    return f"customer-{tag}", f"shopper-{tag}@example.com"


def test_an_abandoned_cart_becomes_one_email_with_its_items_and_link(stack: Stack) -> None:
    """The signed webhook leads, after the wait, to the reminder in the SMTP sink."""
    customer, address = new_customer()
    event = cart_event("cart-e2e-1", customer=customer, email=address)
    response = stack.post(event)
    assert response.status_code == 202, response.text
    [mail] = wait_for(lambda: stack.outbox_to(address), what="the reminder email")
    assert mail["channel"] == "email" and "left something in your cart" in mail["subject"]
    for item in event["properties"]["items"]:
        assert item["name"] in mail["text"] and item["name"] in mail["html"]
    assert "https://demo-shop.example/cart/cart-e2e-1/recover" in mail["text"]
    assert "<html" in mail["html"] and "€59.00" in mail["html"]
    time.sleep(WAIT_SECONDS)
    assert len(stack.outbox_to(address)) == 1


def test_an_order_in_time_means_no_email_and_the_timeline_says_why(stack: Stack) -> None:
    """order_placed for the cart within the wait ends the run: exited, goal reached."""
    customer, address = new_customer()
    assert stack.post(cart_event("cart-e2e-2", customer=customer, email=address)).status_code == 202
    assert stack.post(order_event("cart-e2e-2", customer=customer)).status_code == 202
    data = wait_for(lambda: (d := stack.get(f"/api/v1/contacts/{customer}/timeline"))["runs"]
                    and d["runs"][0]["status"] != "active" and d, what="the run to end")
    time.sleep(WAIT_SECONDS + 1)
    data = stack.get(f"/api/v1/contacts/{customer}/timeline")
    assert [(r["status"], r["exit_reason"]) for r in data["runs"]] == [("exited", "goal reached: order placed")]
    assert any(e["kind"] == "exited" and e["detail"] == "goal reached: order placed" for e in data["timeline"])
    assert stack.outbox_to(address) == []


def test_the_same_event_sent_twice_enrolls_once(stack: Stack) -> None:
    """A webhook retried by the shop is answered as a duplicate and changes nothing."""
    customer, address = new_customer()
    event = cart_event("cart-e2e-3", customer=customer, email=address)
    assert stack.post(event).status_code == 202
    second = stack.post(event)
    assert second.status_code == 200 and second.json()["duplicate"] is True
    wait_for(lambda: stack.outbox_to(address), what="the reminder email")
    time.sleep(1)
    assert len(stack.get(f"/api/v1/contacts/{customer}/timeline")["runs"]) == 1
    assert len(stack.outbox_to(address)) == 1


def test_a_worker_killed_mid_journey_is_replaced_and_one_email_goes_out(stack: Stack) -> None:
    """SIGKILL the only worker while the run waits; a new worker delivers exactly once."""
    customer, address = new_customer()
    assert stack.post(cart_event("cart-e2e-4", customer=customer, email=address)).status_code == 202
    wait_for(lambda: [r for r in stack.get(f"/api/v1/contacts/{customer}/timeline")["runs"]
                      if r["status"] == "waiting"], what="the run to wait")
    for proc in stack.workers:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    stack.workers.clear()
    time.sleep(WAIT_SECONDS + 1)  # the timer falls due while no worker runs
    assert stack.outbox_to(address) == []
    stack.start_worker()
    wait_for(lambda: stack.outbox_to(address), what="the reminder after the restart")
    time.sleep(3)  # past a redelivery interval: nothing else may arrive
    assert len(stack.outbox_to(address)) == 1


def test_flushing_redis_mid_journey_still_delivers_exactly_one_email(stack: Stack) -> None:
    """Redis loses every queued job twice; the scheduler re-sends the work from the database."""
    customer, address = new_customer()
    assert stack.post(cart_event("cart-e2e-5", customer=customer, email=address)).status_code == 202
    stack.redis.flushdb()  # the evaluation job may be gone
    wait_for(lambda: [r for r in stack.get(f"/api/v1/contacts/{customer}/timeline")["runs"]
                      if r["status"] == "waiting"], what="the run to wait")
    stack.redis.flushdb()  # and whatever was queued while it waits
    [mail] = wait_for(lambda: stack.outbox_to(address), what="the reminder after the flushes")
    assert "cart-e2e-5" in mail["text"]
    time.sleep(3)
    assert len(stack.outbox_to(address)) == 1

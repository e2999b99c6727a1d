"""The channel breaker through real dispatch (RQ worker, aiosmtpd server, moved clock): a greylisting
provider never stops email, and a provider that was down is used again by itself once it answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery import channel_health
from engine.store.models import JournalEntry, Message
from tests.conftest import FakeClock, RecordingSmtpHandler, Shop, SmtpServer, drain
from tests.engine.delivery.test_dispatch_claims import scheduled_emails
from workers.runtime import Runtime
from workers.scheduler import run_once
from workers.supervisor import free_port


class GreylistingHandler(RecordingSmtpHandler):
    """Answers 451 to each recipient's first message (greylisting), and to every one while `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, ...]] = set()
        self.down = False

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        if self.down:
            return "451 4.3.0 Mail server temporarily unavailable"
        recipients = tuple(envelope.rcpt_tos)  # type: ignore[attr-defined]
        if recipients not in self.seen:
            self.seen.add(recipients)
            return "451 4.7.1 Greylisted, please try again later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """The runtime's SMTP server for this module: a greylisting aiosmtpd server."""
    handler = GreylistingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(handler, f"smtp://127.0.0.1:{port}")
    controller.stop()


def tick(rt: Runtime) -> None:
    run_once(rt)
    drain(rt)


def statuses(sessions: sessionmaker[Session], ids: list[int]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(Message.status).where(Message.id.in_(ids)).order_by(Message.id)))


def timeline(sessions: sessionmaker[Session], shop: Shop, kind: str) -> list[str]:
    with sessions() as session:
        return [d or "" for d in session.scalars(select(JournalEntry.detail).where(
            JournalEntry.workspace_id == shop.id, JournalEntry.kind == kind).order_by(JournalEntry.id))]


def email_status(sessions: sessionmaker[Session], shop: Shop) -> dict:
    with sessions() as session:
        return channel_health.channel_status(session, shop.id)[0]


def test_a_greylisting_provider_gets_all_200_messages_without_a_pause_or_a_person(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """Every first attempt is answered 451: each message's own retry (within 30 s) clears it, the
    breaker never opens, and all 200 arrive once within two minutes."""
    ids = scheduled_emails(sessions, shop, clock, 200)
    tick(runtime)
    assert smtp_server.messages == [] and statuses(sessions, ids) == ["scheduled"] * 200
    for _ in range(4):
        clock.advance(seconds=31)
        tick(runtime)
    assert statuses(sessions, ids) == ["sent"] * 200
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(f"c{n}@example.com" for n in range(200))
    status = email_status(sessions, shop)
    assert (status["state"], status["paused"], status["opened_total"]) == ("closed", False, 0)
    assert timeline(sessions, shop, "channel_paused") == []


def test_a_provider_that_was_down_opens_the_breaker_and_a_probe_closes_it_when_it_is_back(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """Down: second attempts count and open the breaker; a probe a minute later fails and it re-opens
    for two; the provider comes back, the next probe goes through, and every held message goes out
    at once, exactly once, with no person involved."""
    handler = smtp_server.handler
    assert isinstance(handler, GreylistingHandler)
    handler.down = True
    handler.seen.update((f"c{n}@example.com",) for n in range(30))  # past greylisting: only the outage
    ids = scheduled_emails(sessions, shop, clock, 30)
    tick(runtime)  # first attempts: not counted
    assert email_status(sessions, shop)["state"] == "closed"
    clock.advance(seconds=31)
    tick(runtime)  # second attempts: counted, the tenth opens the breaker
    status = email_status(sessions, shop)
    assert (status["state"], status["paused_by"], status["opened_total"]) == ("open", "breaker", 1)
    assert timeline(sessions, shop, "channel_paused") == [
        f"email paused automatically after 10 failures: {status['last_error']}; next probe at "
        f"{status['next_probe_at']}"]

    clock.advance(minutes=2)
    tick(runtime)  # the retries are due: one probes (and fails), the rest are held
    status = email_status(sessions, shop)
    assert (status["state"], status["next_probe_at"]) == ("open", (clock() + channel_health.cool_down(1)).isoformat())
    assert "its probe failed" in timeline(sessions, shop, "channel_paused")[-1]
    held = [m for m in statuses(sessions, ids) if m == "scheduled"]
    assert len(held) == 30 and smtp_server.messages == []

    handler.down = False
    clock.advance(minutes=2)
    tick(runtime)  # the scheduler wakes a held message to probe; it goes through; the rest follow
    assert statuses(sessions, ids) == ["sent"] * 30
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(f"c{n}@example.com" for n in range(30))
    status = email_status(sessions, shop)
    assert (status["state"], status["paused"], status["opened_total"]) == ("closed", False, 1)
    assert timeline(sessions, shop, "channel_resumed") == ["email resumed automatically: this probe went through"]

"""In-doubt sends: a message is `sending` only once its body may reach the provider, and what is truly in
doubt (its worker died after the hand-over, or the answer was lost after the body) is settled by the
workspace's policy: resent for transactional messages, left `unknown` for marketing, said on the timeline."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery import dispatch
from engine.delivery.handover import CLAIM_LEASE, handover
from engine.delivery.settings import effective_settings, in_doubt_policy, parse_delivery_settings
from engine.errors import FieldErrors
from engine.store.models import JournalEntry, Workspace
from tests.conftest import FakeClock, Shop, SmtpServer, drain, scheduled_emails, statuses
from workers.runtime import Runtime
from workers.scheduler import run_once


def emails(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, *transactional: bool) -> list[int]:
    """One scheduled email per flag: transactional (True) or marketing (False)."""
    return scheduled_emails(sessions, shop, clock, len(transactional), transactional=transactional)


def timeline(sessions: sessionmaker[Session], message_id: int) -> list[tuple[str, str | None]]:
    with sessions() as session:
        return [(e.kind, e.detail) for e in session.scalars(
            select(JournalEntry).where(JournalEntry.message_id == message_id).order_by(JournalEntry.id))]


def set_policy(sessions: sessionmaker[Session], shop: Shop, policy: dict[str, str]) -> None:
    with sessions.begin() as session:
        workspace = session.get_one(Workspace, shop.id)
        workspace.settings = {**(workspace.settings or {}), "in_doubt": policy}


def handed_over_by_a_worker_that_died(runtime: Runtime, sessions: sessionmaker[Session], ids: list[int]) -> None:
    """Claim the messages and mark them sending, as a worker does at each hand-over, then 'die'."""
    dispatch.DispatchJob(sessions, ids, channels=runtime.channels, templates=runtime.templates, clock=runtime.clock,
                         token="dead-worker").claim()
    with handover(sessions) as hand:
        for message_id in ids:
            assert hand.step(None, message_id, token="dead-worker", now=runtime.clock()) == 1


def test_a_message_is_only_claimed_while_the_server_checks_its_recipient_and_sending_once_its_body_goes(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """Killed during MAIL/RCPT, a worker leaves the message `claimed` (to be sent again); only after the
    server's 354 is it `sending`."""
    [message_id] = emails(sessions, shop, clock, False)
    seen: dict[str, str] = {}

    async def handle_RCPT(server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        seen["at RCPT"] = statuses(sessions, [message_id])[0]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    smtp_server.handler.handle_RCPT = handle_RCPT  # type: ignore[attr-defined]
    dispatch.dispatch_messages(sessions, [message_id], channels=runtime.channels, templates=runtime.templates,
                               clock=clock)
    assert seen == {"at RCPT": "claimed"}
    assert statuses(sessions, [message_id]) == ["sent"] and len(smtp_server.messages) == 1


def test_a_dead_workers_handed_over_messages_follow_the_policy_transactional_resent_marketing_skipped(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """After the lease runs out: the order confirmation goes again, the newsletter is left unknown; the
    timeline says why for each."""
    order_mail, newsletter = emails(sessions, shop, clock, True, False)
    handed_over_by_a_worker_that_died(runtime, sessions, [order_mail, newsletter])
    clock.advance(seconds=CLAIM_LEASE.total_seconds() - 1)
    run_once(runtime)
    assert statuses(sessions, [order_mail, newsletter]) == ["sending", "sending"]
    clock.advance(seconds=2)
    run_once(runtime)
    drain(runtime)
    assert statuses(sessions, [order_mail, newsletter]) == ["sent", "unknown"]
    assert [m["To"] for m in smtp_server.messages] == ["c0@example.com"]
    assert ("in_doubt_resent", "in doubt: worker stopped after handing the body over; resent (transactional "
            "policy)") in timeline(sessions, order_mail)
    assert ("in_doubt_skipped", "in doubt: worker stopped after handing the body over; not resent (marketing "
            "policy: skip)") in timeline(sessions, newsletter)


def test_a_workspace_can_choose_the_other_way_round(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """in_doubt = {transactional: skip, marketing: resend}: the newsletter goes again, the order mail not."""
    set_policy(sessions, shop, {"transactional": "skip", "marketing": "resend"})
    order_mail, newsletter = emails(sessions, shop, clock, True, False)
    handed_over_by_a_worker_that_died(runtime, sessions, [order_mail, newsletter])
    clock.advance(seconds=CLAIM_LEASE.total_seconds() + 1)
    run_once(runtime)
    drain(runtime)
    assert statuses(sessions, [order_mail, newsletter]) == ["unknown", "sent"]


def test_an_answer_lost_after_the_body_went_out_is_settled_by_the_policy_and_a_resend_keeps_its_message_id(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        smtp_server: SmtpServer) -> None:
    """The server takes both bodies and hangs up before answering: the newsletter is left unknown at once;
    the order mail is resent after a retry delay, with the Message-ID of the copy the server already has."""
    order_mail, newsletter = emails(sessions, shop, clock, True, False)
    handler = smtp_server.handler
    accept = handler.handle_DATA
    hang_ups = [True, True]

    async def handle_DATA(server: Any, session: Any, envelope: Any) -> str:
        answer = await accept(server, session, envelope)
        if hang_ups:
            hang_ups.pop()
            server.transport.close()  # the body is stored; its 250 never reaches the client
        return answer

    handler.handle_DATA = handle_DATA  # type: ignore[method-assign]
    dispatch.dispatch_messages(sessions, [order_mail, newsletter], channels=runtime.channels,
                               templates=runtime.templates, clock=clock)
    assert statuses(sessions, [order_mail, newsletter]) == ["scheduled", "unknown"]
    assert timeline(sessions, newsletter)[-1][0] == "in_doubt_skipped"
    kind, detail = timeline(sessions, order_mail)[-1]
    assert kind == "in_doubt_resent" and "resent (transactional policy)" in (detail or "")
    clock.advance(hours=1)
    run_once(runtime)
    drain(runtime)
    assert statuses(sessions, [order_mail, newsletter]) == ["sent", "unknown"]
    copies = [m["Message-ID"] for m in smtp_server.messages if m["To"] == "c0@example.com"]
    assert len(copies) == 2 and copies[0] == copies[1]


def test_the_policy_is_resend_for_transactional_and_skip_for_marketing_unless_set() -> None:
    """Defaults, a partial setting, and the settings a GET shows."""
    assert in_doubt_policy(None, transactional=True) == "resend"
    assert in_doubt_policy(None, transactional=False) == "skip"
    settings = {"in_doubt": {"marketing": "resend"}}
    assert in_doubt_policy(settings, transactional=False) == "resend"
    assert effective_settings(settings)["in_doubt"] == {"transactional": "resend", "marketing": "resend"}


@pytest.mark.parametrize("value", [True, 1, "Resend", "", None, ["skip"]])
def test_the_policy_takes_only_the_words_resend_and_skip(value: object) -> None:
    """Anything else is a field error naming in_doubt.<kind>, never coerced."""
    with pytest.raises(FieldErrors) as caught:
        parse_delivery_settings({"in_doubt": {"transactional": value}})
    assert [e["field"] for e in caught.value.errors] == ["in_doubt.transactional"]

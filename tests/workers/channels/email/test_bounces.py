"""Bounces and complaints read from real-world report formats, and the bounce SMTP server applying them."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery.verp import bounce_address
from engine.links.tokens import message_links
from engine.store.models import Contact, JournalEntry, Message, MessageReceipt, Suppression
from tests.conftest import FakeClock, Shop
from workers.channels.email.bounces import BounceHandler, classify_bounce, read_bounce, start_bounce_server
from workers.supervisor import free_port

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "bounces"
SECRET = "bounce-test-secret"
DOMAIN = "bounces.shop.example"
RCPT = "zoe@example.com"


def report(name: str, message_id: int = 42, *, secret: str = SECRET, edit: tuple[str, str] | None = None) -> bytes:
    """A fixture as a mail server would send it (CRLF), about message `message_id`."""
    text = (FIXTURES / name).read_text()
    text = text.replace("{{VERP}}", bounce_address(secret, message_id, DOMAIN)).replace("{{RCPT}}", RCPT)
    text = text.replace("{{MESSAGE_ID}}", str(message_id))
    if edit is not None:
        text = text.replace(*edit)
    return text.replace("\n", "\r\n").encode()


def test_a_postfix_user_unknown_is_a_hard_bounce_that_kills_the_address() -> None:
    """RFC 3464 DSN, Action: failed, Status 5.1.1: one 'bounced' receipt for our message, address dead."""
    [event] = read_bounce(report("postfix_user_unknown.eml"), secret=SECRET)

    assert (event.channel, event.status, event.message_id, event.address_dead) == ("email", "bounced", 42, True)
    assert event.occurred_at == datetime(2030, 1, 7, 9, 0, 5, tzinfo=UTC)
    assert "5.1.1" in event.detail and RCPT in event.detail and "User unknown" in event.detail
    assert event.receipt_key.startswith("bounce:")


def test_an_exim_bounce_without_a_dsn_is_a_hard_bounce() -> None:
    """Exim's text bounce (X-Failed-Recipients): permanent, with the 5.1.1 quoted in its text."""
    [event] = read_bounce(report("exim_failed_recipients.eml", 7), secret=SECRET)

    assert (event.status, event.message_id, event.address_dead) == ("bounced", 7, True)
    assert "5.1.1" in event.detail


def test_a_delay_notice_is_a_soft_bounce_that_changes_nothing() -> None:
    """Action: delayed, 4.4.1: the MTA is still trying, so no receipt; the report says soft, for the timeline."""
    raw = report("postfix_delayed.eml")

    assert read_bounce(raw, secret=SECRET) == []
    soft = classify_bounce(raw, secret=SECRET)
    assert (soft.kind, soft.message_id, soft.status, soft.address_dead) == ("soft", 42, "4.4.1", False)


def test_an_arf_complaint_names_the_message_through_its_original_mail_from() -> None:
    """RFC 5965 feedback report sent to the FBL address: 'complained', address dead, found via the VERP sender."""
    [event] = read_bounce(report("arf_abuse_complaint.eml", 99), secret=SECRET, recipients=[f"fbl@{DOMAIN}"])

    assert (event.status, event.message_id, event.address_dead) == ("complained", 99, True)
    assert "abuse" in event.detail


def test_a_not_spam_feedback_report_is_no_complaint() -> None:
    """Feedback-Type: not-spam is the opposite of a complaint: nothing is recorded."""
    raw = report("arf_abuse_complaint.eml", edit=("Feedback-Type: abuse", "Feedback-Type: not-spam"))

    assert read_bounce(raw, secret=SECRET) == []


def test_a_policy_rejection_bounces_the_message_but_keeps_the_address() -> None:
    """Status 5.7.1 (refused as spam) is permanent for this message, yet the mailbox exists: not suppressed."""
    raw = report("postfix_user_unknown.eml", edit=("Status: 5.1.1", "Status: 5.7.1"))

    [event] = read_bounce(raw, secret=SECRET)
    assert (event.status, event.address_dead) == ("bounced", False)


def test_the_envelope_recipient_names_the_message_when_the_headers_do_not() -> None:
    """A DSN whose To was rewritten still reaches us at the VERP address: RCPT TO names the message."""
    verp = bounce_address(SECRET, 5, DOMAIN)
    raw = report("postfix_user_unknown.eml", 5).replace(verp.encode(), b"postmaster@shop.example")

    assert read_bounce(raw, secret=SECRET) == []
    [event] = read_bounce(raw, secret=SECRET, recipients=[verp])
    assert event.message_id == 5


def test_a_forged_bounce_names_no_message() -> None:
    """A bounce to a VERP address signed with another secret is ignored: nobody can suppress our addresses."""
    assert read_bounce(report("postfix_user_unknown.eml", secret="not-ours"), secret=SECRET) == []


def test_an_auto_reply_is_not_a_bounce() -> None:
    """An out-of-office answer to the bounce address reports no failure."""
    assert read_bounce(report("out_of_office.eml"), secret=SECRET) == []


def test_the_same_report_twice_has_the_same_receipt_key() -> None:
    """Receipt keys come from the report's Message-ID, so a redelivered bounce is a duplicate."""
    first = read_bounce(report("postfix_user_unknown.eml"), secret=SECRET)[0].receipt_key
    again = read_bounce(report("postfix_user_unknown.eml"), secret=SECRET)[0].receipt_key
    other = read_bounce(report("exim_failed_recipients.eml"), secret=SECRET)[0].receipt_key

    assert first == again != other


# --- The bounce server, with a real database and a real SMTP client ------------------------------

@pytest.fixture
def bounce_server(sessions: sessionmaker[Session], clock: FakeClock) -> Iterator[tuple[int, BounceHandler]]:
    port = free_port()
    controller, handler = start_bounce_server(sessions, secret=SECRET, clock=clock, host="127.0.0.1", port=port,
                                              domains=(DOMAIN,))
    yield port, handler
    controller.stop()


def sent_message(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> int:
    with sessions.begin() as session:
        contact = Contact(workspace_id=shop.id, external_id="zoe", email=RCPT, consent={"email": "opted_in"},
                          created_at=clock(), updated_at=clock())
        session.add(contact)
        session.flush()
        message = Message(workspace_id=shop.id, contact_id=contact.id, channel="email", template="abandoned_cart",
                          to_address=RCPT, context={}, status="sent", attempts=1, scheduled_at=clock(),
                          sent_at=clock(), created_at=clock(), provider_id="<1.abc@shop.example>")
        session.add(message)
        session.flush()
        return message.id


def deliver(port: int, raw: bytes, to: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("", [to], raw)  # bounces have the null reverse path


def test_the_bounce_server_applies_a_hard_bounce(bounce_server: tuple[int, BounceHandler], shop: Shop,
                                                 sessions: sessionmaker[Session], clock: FakeClock) -> None:
    """A DSN mailed to the VERP address: the message ends bounced and the address is suppressed, once."""
    port, handler = bounce_server
    message_id = sent_message(sessions, shop, clock)
    raw = report("postfix_user_unknown.eml", message_id)

    deliver(port, raw, bounce_address(SECRET, message_id, DOMAIN))
    deliver(port, raw, bounce_address(SECRET, message_id, DOMAIN))  # the MTA sent it twice

    with sessions() as session:
        assert session.get_one(Message, message_id).status == "bounced"
        suppressed = session.scalars(select(Suppression).where(Suppression.workspace_id == shop.id)).all()
        assert [(s.channel, s.address) for s in suppressed] == [("email", RCPT)]
        receipts = session.scalars(select(MessageReceipt).where(MessageReceipt.message_id == message_id)).all()
        assert [(r.status, r.applied) for r in receipts] == [("bounced", True)]
    assert "duplicate" in handler.applied[-1]


def test_the_bounce_server_records_a_delay_without_moving_the_message(
        bounce_server: tuple[int, BounceHandler], shop: Shop, sessions: sessionmaker[Session],
        clock: FakeClock) -> None:
    """A 4.x.x delay notice: the message stays sent, nobody is suppressed, the timeline says it was delayed."""
    port, _handler = bounce_server
    message_id = sent_message(sessions, shop, clock)

    deliver(port, report("postfix_delayed.eml", message_id), bounce_address(SECRET, message_id, DOMAIN))

    with sessions() as session:
        assert session.get_one(Message, message_id).status == "sent"
        assert session.scalar(select(Suppression).where(Suppression.workspace_id == shop.id)) is None
        lines = session.scalars(select(JournalEntry).where(JournalEntry.message_id == message_id)).all()
        assert [line.kind for line in lines] == ["bounce_delayed"]
        assert "4.4.1" in (lines[0].detail or "")


def test_the_bounce_server_applies_a_complaint_sent_to_the_feedback_address(
        bounce_server: tuple[int, BounceHandler], shop: Shop, sessions: sessionmaker[Session],
        clock: FakeClock) -> None:
    """An ARF report to fbl@<bounce domain>: complained, address suppressed, email consent withdrawn."""
    port, _handler = bounce_server
    message_id = sent_message(sessions, shop, clock)

    deliver(port, report("arf_abuse_complaint.eml", message_id), f"fbl@{DOMAIN}")

    with sessions() as session:
        message = session.get_one(Message, message_id)
        assert message.status == "complained"
        assert session.get_one(Contact, message.contact_id).consent["email"] == "opted_out"
        assert session.scalar(select(Suppression.address).where(Suppression.workspace_id == shop.id)) == RCPT


def test_the_bounce_server_refuses_mail_for_other_domains(bounce_server: tuple[int, BounceHandler]) -> None:
    """It is not an open relay or a mailbox: RCPT outside the bounce domain is refused with 550."""
    port, _handler = bounce_server

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        deliver(port, report("postfix_user_unknown.eml"), "someone@elsewhere.example")
    assert refused.value.recipients["someone@elsewhere.example"][0] == 550


def test_a_mail_to_the_list_unsubscribe_address_unsubscribes_the_contact(
        bounce_server: tuple[int, BounceHandler], shop: Shop, sessions: sessionmaker[Session],
        clock: FakeClock) -> None:
    """The List-Unsubscribe mailto form: a mail to unsubscribe@ with the signed token in its subject opts
    the contact out of email; a mail with a forged token changes nothing."""
    port, handler = bounce_server
    message_id = sent_message(sessions, shop, clock)
    with sessions() as session:
        contact_id = session.get_one(Message, message_id).contact_id
    links = message_links(SECRET, "https://rapport.example", workspace_id=shop.id, contact_id=contact_id,
                          message_id=message_id)
    mailto = links.mailto_unsubscribe(DOMAIN)
    address, _, query = mailto.removeprefix("mailto:").partition("?subject=")
    forged = f"Subject: unsubscribe {links.unsubscribe_token[:-2]}xx\r\n\r\n".encode()
    deliver(port, forged, address)
    with sessions() as session:
        assert session.get_one(Contact, contact_id).consent == {"email": "opted_in"}
    deliver(port, f"Subject: {unquote(query)}\r\n\r\nplease unsubscribe me\r\n".encode(), address)
    with sessions() as session:
        assert session.get_one(Contact, contact_id).consent["email"] == "opted_out"
    assert handler.applied[-1] == f"message {message_id}: unsubscribed by mail"

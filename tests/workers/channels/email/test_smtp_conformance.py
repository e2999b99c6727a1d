"""The SMTP client against a scripted SMTP server: whatever the server answers, a message is
recorded sent only when its own body was accepted with 250, no body reaches another recipient,
and a message whose answer was lost after its body is in doubt, never sent twice.

The server is a real TCP server on a free port that speaks SMTP by itself and answers, at the
stage a test names (greeting, EHLO, MAIL, RCPT, DATA, BODY = while the body comes in, END = the
end of the body, RSET), with the bytes the test scripted: multi-line replies, bare LFs, 4xx and
5xx, lines nobody asked for, or a hang-up. It records each transaction it accepted: the envelope recipients and the
To and Message-ID of the body that came with them.
"""

from __future__ import annotations

import email
import email.policy
import functools
import socket
import socketserver
import struct
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery import dispatch
from engine.delivery.ports import OutgoingMessage
from engine.errors import PermanentSendError, SendInDoubt, TransientSendError
from engine.store.db import make_sessionmaker
from engine.store.models import Message, OutboxCapture
from tests.conftest import FakeClock, Shop, scheduled_emails
from workers.channels.email.mime import stable_message_id
from workers.channels.email.smtp import SmtpSender
from workers.dev.smtp_sink import SinkHandler, start_sink
from workers.runtime import Runtime
from workers.supervisor import free_port

HANG_UP = None  # scripted instead of a reply: the server closes the connection at that stage

# The reply that started issue 10: the sink's failed store, answered by aiosmtpd as a 500 whose
# text (a database error) carried bare LFs, so that smtplib reads its tail as two more replies.
SINK_500 = (b"500 Error: (OperationalError) (sqlite3.OperationalError) database is locked\n"
            b"[SQL: INSERT INTO outbox_captures ...]\n(Background on this error at: https://sqlalche.me/e/20/e3q8)\r\n")


@dataclass(frozen=True)
class Accepted:
    """One transaction the server answered 250 to: who the envelope named, and what the body said."""

    rcpt: tuple[str, ...]
    to: str
    message_id: str


@dataclass
class ScriptedSmtp:
    """What the scripted server answers at each stage (in order; then the normal reply), and what it accepted."""

    port: int = 0
    script: dict[str, list[bytes | None]] = field(default_factory=lambda: defaultdict(list))
    accepted: list[Accepted] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def answer(self, stage: str, *replies: bytes | None) -> None:
        with self.lock:
            self.script[stage].extend(replies)

    def next_reply(self, stage: str, normal: bytes) -> bytes | None:
        with self.lock:
            return self.script[stage].pop(0) if self.script[stage] else normal

    def accept(self, rcpt: list[str], body: bytes) -> None:
        parsed = email.message_from_bytes(body, policy=email.policy.compat32)
        with self.lock:
            self.accepted.append(Accepted(tuple(rcpt), str(parsed.get("To", "")), str(parsed.get("Message-ID", ""))))


class _Conversation(socketserver.StreamRequestHandler):
    """One client connection, answered as the script says; the normal replies are those of a plain server."""

    server: _Server

    def handle(self) -> None:
        smtp = self.server.scripted
        with smtp.lock:
            smtp.connections += 1
        if self.say("greeting", b"220 scripted.example ESMTP\r\n") != b"220":
            return
        rcpt: list[str] | None = None  # None: no MAIL yet
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                code = self.say("EHLO", b"250-scripted.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                rcpt = None
            elif verb == b"MAIL":
                code = self.say("MAIL", b"250 2.1.0 Ok\r\n")
                rcpt = [] if code[:1] == b"2" else rcpt
            elif verb == b"RCPT":
                code = self.say("RCPT", b"250 2.1.5 Ok\r\n" if rcpt is not None else b"503 5.5.1 MAIL first\r\n")
                if code[:1] == b"2" and rcpt is not None:
                    rcpt.append(line[8:].strip().strip(b"<>").decode())
            elif verb == b"DATA":
                code = self.say("DATA", b"354 End data with <CR><LF>.<CR><LF>\r\n" if rcpt
                                else b"554 5.5.1 No recipients\r\n")
                if code == b"354" and smtp.next_reply("BODY", b"") is HANG_UP:
                    self.rfile.read(65536)  # part of the body, then a reset: the client is still writing
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if code == b"354":
                    body = self.read_body()
                    if body is None:
                        return
                    code = self.say("END", b"250 2.0.0 Ok: queued\r\n",
                                    on_250=functools.partial(smtp.accept, rcpt or [], body))
                    rcpt = None
            elif verb == b"RSET":
                code = self.say("RSET", b"250 2.0.0 Ok\r\n")
                rcpt = None
            elif verb == b"QUIT":
                self.wfile.write(b"221 2.0.0 Bye\r\n")
                return
            else:
                code = self.say("other", b"502 5.5.2 Error: command not recognized\r\n")
            if code in (b"", b"421"):
                return

    def say(self, stage: str, normal: bytes, on_250: Callable[[], None] | None = None) -> bytes:
        """Answer at `stage`; the code the server meant (b"" when it hung up). `on_250` runs before a 250
        is written (a transaction is recorded before the client can know it was accepted)."""
        reply = self.server.scripted.next_reply(stage, normal)
        if reply is HANG_UP:
            return b""
        if on_250 is not None and reply[:3] == b"250":
            on_250()
        self.wfile.write(reply)
        self.wfile.flush()
        return reply[:3]

    def read_body(self) -> bytes | None:
        lines = []
        while line := self.rfile.readline():
            if line == b".\r\n":
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b".") else line)
        return None  # the client hung up in the middle: no end-of-data, nothing accepted


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    scripted: ScriptedSmtp


@pytest.fixture
def scripted() -> Iterator[ScriptedSmtp]:
    server = _Server(("127.0.0.1", 0), _Conversation)
    server.scripted = ScriptedSmtp(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.scripted
    server.shutdown()
    server.server_close()


@pytest.fixture
def sender(scripted: ScriptedSmtp) -> Iterator[SmtpSender]:
    smtp = SmtpSender(scripted.url, timeout=2)
    yield smtp
    smtp.close()


def outgoing(number: int) -> OutgoingMessage:
    return OutgoingMessage(message_id=number, workspace_id="ws1", channel="email", to=f"customer{number}@example.com",
                           sender="Shop <shop@shop.example>", subject=f"Your cart {number}", text=f"cart {number}\n")


# --- Through the dispatcher, with a real database ------------------------------------------------

def transactional_emails(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, count: int) -> list[int]:
    return scheduled_emails(sessions, shop, clock, count, transactional=[True] * count,
                            address="customer{n}@example.com")


def dispatch_through(runtime: Runtime, sessions: sessionmaker[Session], clock: FakeClock, smtp: SmtpSender,
                     ids: list[int]) -> None:
    channels = replace(runtime.channels, senders={"email": smtp})
    dispatch.dispatch_messages(sessions, ids, channels=channels, templates=runtime.templates, clock=clock,
                               pause_after=1000)


def sent_messages(sessions: sessionmaker[Session], ids: list[int]) -> dict[int, Message]:
    with sessions() as session:
        rows = session.scalars(select(Message).where(Message.id.in_(ids), Message.status == "sent"))
        return {m.id: m for m in rows}


def assert_no_body_went_astray(scripted: ScriptedSmtp) -> None:
    """Every accepted transaction carried a body addressed to its own envelope recipient."""
    for got in scripted.accepted:
        assert got.rcpt == (got.to,), f"a body for {got.to} was delivered to {got.rcpt}"


def assert_sent_means_accepted_once(scripted: ScriptedSmtp, sent: dict[int, Message]) -> None:
    """Each message recorded sent was accepted with its own body, to its own address, exactly once."""
    by_id = defaultdict(list)
    for got in scripted.accepted:
        by_id[got.message_id].append(got)
    for message in sent.values():
        assert [got.rcpt for got in by_id[message.provider_id or ""]] == [(message.to_address,)], (
            f"message {message.id} is recorded sent, but the server accepted {by_id[message.provider_id or '']}")


def test_a_multi_line_500_with_bare_line_feeds_does_not_shift_the_conversation(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        scripted: ScriptedSmtp, sender: SmtpSender) -> None:
    """Issue 10's reproduction: the server answers the first body with a 500 whose text has bare LFs;
    the messages after it are each sent with their own body to their own recipient."""
    ids = transactional_emails(sessions, shop, clock, 4)
    scripted.answer("END", SINK_500)

    dispatch_through(runtime, sessions, clock, sender, ids)

    sent = sent_messages(sessions, ids)
    assert_no_body_went_astray(scripted)
    assert_sent_means_accepted_once(scripted, sent)
    assert sorted(sent) == ids[1:]
    assert len(scripted.accepted) == 3


def test_unsolicited_reply_lines_never_make_a_message_look_sent(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        scripted: ScriptedSmtp, sender: SmtpSender) -> None:
    """A server that sends extra reply lines at each stage: the client never takes a stale reply for the
    answer to its own command; messages it could not send go back to be retried, none is lost or doubled."""
    ids = transactional_emails(sessions, shop, clock, 8)
    scripted.answer("MAIL", b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n")
    scripted.answer("RCPT", b"250 2.1.5 Ok\r\n354 go ahead\r\n")
    scripted.answer("DATA", b"354 go ahead\r\n250 2.0.0 Ok: queued\r\n")
    scripted.answer("END", b"250 2.0.0 Ok: queued\r\n250 2.0.0 Ok: queued\r\n")

    dispatch_through(runtime, sessions, clock, sender, ids)
    clock.advance(hours=2)
    dispatch_through(runtime, sessions, clock, sender, ids)

    sent = sent_messages(sessions, ids)
    assert_no_body_went_astray(scripted)
    assert_sent_means_accepted_once(scripted, sent)
    assert sorted(sent) == ids


def test_a_wave_through_a_misbehaving_server_records_sent_only_what_it_accepted(
        runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
        scripted: ScriptedSmtp, sender: SmtpSender) -> None:
    """Forty messages dispatched on pooled connections while the server answers 4xx, unreadable replies,
    extra lines and hang-ups at every stage: each message recorded sent was accepted once, with its own
    body, at its own address; no body reached anyone else; no Message-ID was accepted twice."""
    ids = transactional_emails(sessions, shop, clock, 40)
    faults = [("MAIL", b"451 4.3.0 later\r\n"), ("RCPT", b"250-ok\nbroken\r\n250 ok\r\n"), ("DATA", HANG_UP),
              ("END", b"451 4.3.0 later\r\n"), ("MAIL", b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"), ("RCPT", HANG_UP),
              ("DATA", b"354-go\r\n250 2.0.0 Ok\r\n"), ("END", HANG_UP), ("END", SINK_500), ("MAIL", HANG_UP),
              ("EHLO", b"451 4.3.0 later\r\n"), ("greeting", HANG_UP)]
    for stage, reply in faults:
        scripted.answer(stage, reply)

    for _round in range(3):
        dispatch_through(runtime, sessions, clock, sender, ids)
        clock.advance(hours=2)

    sent = sent_messages(sessions, ids)
    assert_no_body_went_astray(scripted)
    assert_sent_means_accepted_once(scripted, sent)
    accepted = [got.message_id for got in scripted.accepted]
    assert len(accepted) == len(set(accepted)), "a message was accepted twice"
    assert len(sent) >= len(ids) - 2  # at most the two answers lost after the body (END hang-up, SINK_500)


# --- Stage by stage, on the client ---------------------------------------------------------------

REFUSALS = [  # (stage, scripted reply, the error the message gets)
    ("greeting", b"554 5.3.2 not now\r\n", TransientSendError),
    ("greeting", b"421 4.3.2 busy\r\n", TransientSendError),
    ("EHLO", b"550 5.7.1 go away\r\n", TransientSendError),
    ("EHLO", b"451 4.3.0 try later\r\n", TransientSendError),
    ("EHLO", b"250-scripted.example\r\n250 8BITMIME\r\n250 2.1.0 Ok\r\n", TransientSendError),
    ("MAIL", b"451 4.3.0 try later\r\n", TransientSendError),
    ("MAIL", b"553 5.1.8 sender refused\r\n", PermanentSendError),
    ("RCPT", b"450 4.2.1 mailbox busy\r\n", TransientSendError),
    ("RCPT", b"550-5.1.1 no such user\r\n550 5.1.1 here\r\n", PermanentSendError),
    ("DATA", b"451 4.3.0 try later\r\n", TransientSendError),
    ("DATA", b"554 5.5.1 no\r\n", PermanentSendError),
    ("END", b"451 4.3.0 try later\r\n", TransientSendError),
    ("END", b"552-5.3.4 message too big\r\n552 5.3.4 really\r\n", PermanentSendError),
    ("END", b"421 4.3.2 shutting down\r\n", TransientSendError),
]


@pytest.mark.parametrize(("stage", "reply", "error"), REFUSALS)
def test_a_refusal_at_any_stage_fails_that_message_only(scripted: ScriptedSmtp, sender: SmtpSender, stage: str,
                                                       reply: bytes, error: type[Exception]) -> None:
    """4xx/5xx at greeting, EHLO, MAIL, RCPT, DATA or the end of the body: this message gets the error the
    code says, nothing of it is accepted, and the next message goes out whole."""
    sender.send(outgoing(1))
    scripted.answer(stage, reply)
    # a greeting or EHLO happens on a new connection: another sender, while the first one's stays pooled
    refused = SmtpSender(scripted.url, timeout=2) if stage in ("greeting", "EHLO") else sender

    with pytest.raises(error):
        refused.send(outgoing(2))
    receipt = sender.send(outgoing(3))
    refused.close()

    assert [got.rcpt for got in scripted.accepted] == [("customer1@example.com",), ("customer3@example.com",)]
    assert scripted.accepted[-1].message_id == receipt.provider_id
    assert_no_body_went_astray(scripted)


UNREADABLE = [  # replies smtplib cannot parse, or that are not an answer to the command
    b"250-first line\nsecond line after a bare LF\r\n250 last\r\n",
    b"250-a continuation\r\n354 whose code differs\r\n",
    b"2500 four digits\r\n",
    b"hello\r\n",
    b"199 not an SMTP reply code\r\n",
]


@pytest.mark.parametrize("reply", UNREADABLE)
@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
def test_an_unreadable_reply_before_the_body_closes_the_connection_and_sends_nothing(
        scripted: ScriptedSmtp, sender: SmtpSender, stage: str, reply: bytes) -> None:
    """A reply that does not parse (or is not one of that stage's) is never answered with RSET and reuse:
    the connection is closed, the message is retried later, the next one goes over a new connection."""
    handed_over = []
    sender.send(outgoing(1))
    scripted.answer(stage, reply)

    with pytest.raises(TransientSendError):
        sender.send(outgoing(2), on_handover=lambda: handed_over.append(2))
    sender.send(outgoing(3))

    assert handed_over == []
    assert [got.rcpt for got in scripted.accepted] == [("customer1@example.com",), ("customer3@example.com",)]
    assert scripted.connections == 2


@pytest.mark.parametrize("reply", [SINK_500, *UNREADABLE[:2], b"354 again?\r\n"])
def test_an_unreadable_answer_to_the_body_is_in_doubt(scripted: ScriptedSmtp, sender: SmtpSender,
                                                      reply: bytes) -> None:
    """After the whole body was sent, an answer that cannot be read may hide an acceptance: SendInDoubt,
    the connection is closed, and the next message goes whole over a new one."""
    scripted.answer("END", reply)

    with pytest.raises(SendInDoubt):
        sender.send(outgoing(1))
    receipt = sender.send(outgoing(2))

    assert [got.message_id for got in scripted.accepted][-1] == receipt.provider_id
    assert scripted.connections == 2
    assert_no_body_went_astray(scripted)


@pytest.mark.parametrize("stage", ["greeting", "EHLO", "MAIL", "RCPT", "DATA", "RSET"])
def test_a_hang_up_before_the_body_is_a_retry_and_nothing_is_handed_over(scripted: ScriptedSmtp,
                                                                         stage: str) -> None:
    """The server hangs up at any stage before the body (twice, so the reconnect finds it gone too):
    the message is retried later, the hand-over never happened."""
    smtp = SmtpSender(scripted.url, timeout=2)
    handed_over = []
    scripted.answer(stage, HANG_UP, HANG_UP)
    if stage == "RSET":
        scripted.answer("RCPT", b"450 4.2.1 busy\r\n", b"450 4.2.1 busy\r\n")

    with pytest.raises(TransientSendError):
        smtp.send(outgoing(1), on_handover=lambda: handed_over.append(1))
    smtp.close()

    assert handed_over == [] and scripted.accepted == []


def test_a_hang_up_after_the_body_is_in_doubt_and_not_resent(scripted: ScriptedSmtp, sender: SmtpSender) -> None:
    """The server takes the whole body and hangs up without an answer: SendInDoubt, and the client does not
    send it again on a new connection (that is how duplicates happen)."""
    scripted.answer("END", HANG_UP)
    handed_over = []

    with pytest.raises(SendInDoubt):
        sender.send(outgoing(1), on_handover=lambda: handed_over.append(1))

    assert handed_over == [1]
    assert scripted.connections == 1


def test_a_connection_lost_while_the_body_is_written_is_a_retry_not_a_doubt(scripted: ScriptedSmtp,
                                                                           sender: SmtpSender) -> None:
    """The server resets the connection while the client is still writing a large body: its end-of-data
    never left the client, so the server cannot have accepted it; the message is retried, not in doubt."""
    scripted.answer("BODY", HANG_UP)
    handed_over = []
    large = replace(outgoing(1), text="x" * 20_000_000)

    with pytest.raises(TransientSendError, match="before the end of the body"):
        sender.send(large, on_handover=lambda: handed_over.append(1))

    assert handed_over == [1] and scripted.accepted == []


def test_a_server_that_never_answers_the_body_is_in_doubt(scripted: ScriptedSmtp) -> None:
    """No answer to the end of the body within the timeout: in doubt, not retried."""
    gate = threading.Event()
    original = scripted.next_reply

    def stall(stage: str, normal: bytes) -> bytes | None:
        if stage == "END":
            gate.wait(5)
        return original(stage, normal)

    scripted.next_reply = stall  # type: ignore[method-assign]
    smtp = SmtpSender(scripted.url, timeout=0.3)
    try:
        with pytest.raises(SendInDoubt):
            smtp.send(outgoing(1))
    finally:
        gate.set()
        smtp.close()
    assert scripted.connections == 1


def test_bytes_waiting_on_a_pooled_connection_make_the_client_open_a_new_one(scripted: ScriptedSmtp,
                                                                             sender: SmtpSender) -> None:
    """A reply line arrives on an idle pooled connection after the last answer: that connection is
    discarded before its next use, and the next message goes whole over a new one."""
    scripted.answer("END", b"250 2.0.0 Ok: queued\r\n250 2.0.0 and again\r\n")
    first = sender.send(outgoing(1))
    second = sender.send(outgoing(2))

    assert [got.message_id for got in scripted.accepted] == [first.provider_id, second.provider_id]
    assert scripted.connections == 2


# --- Many messages in a row, faults everywhere ----------------------------------------------------

FAULTS: list[tuple[str, bytes | None]] = [
    ("MAIL", b"451 4.3.0 later\r\n"), ("RCPT", b"550 5.1.1 unknown user\r\n"), ("DATA", b"451 4.3.0 later\r\n"),
    ("END", SINK_500), ("END", b"250 2.0.0 Ok\r\n250 2.0.0 extra\r\n"), ("MAIL", HANG_UP), ("RCPT", HANG_UP),
    ("DATA", HANG_UP), ("END", HANG_UP), ("RCPT", b"250-ok\nbroken\r\n250 ok\r\n"),
    ("DATA", b"354-go\r\n250 2.0.0 Ok\r\n"), ("RSET", b"250-reset\r\n500 no\r\n"), ("END", b"354 what?\r\n"),
    ("MAIL", b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"), ("END", b"550-5.7.1 spam\r\n550 5.7.1 spam\r\n"),
]


def test_over_many_messages_only_accepted_bodies_count_as_sent(scripted: ScriptedSmtp, sender: SmtpSender) -> None:
    """Sixty messages on pooled connections while the server misbehaves in every way above, one fault in
    every few messages: each receipt names a body the server accepted for that recipient, each message
    the server accepted either has its receipt or raised SendInDoubt, and nothing reached anyone else."""
    outcomes: dict[int, str] = {}
    for number in range(60):
        if number % 4 == 1:
            stage, reply = FAULTS[(number // 4) % len(FAULTS)]
            scripted.answer(stage, reply)
            if stage == "RSET":
                scripted.answer("RCPT", b"450 4.2.1 busy\r\n")
        try:
            outcomes[number] = sender.send(outgoing(number)).provider_id
        except SendInDoubt:
            outcomes[number] = "in doubt"
        except (TransientSendError, PermanentSendError):
            outcomes[number] = "not sent"

    assert_no_body_went_astray(scripted)
    accepted = {got.message_id: got for got in scripted.accepted}
    assert len(accepted) == len(scripted.accepted), "a body was accepted twice"
    for number, outcome in outcomes.items():
        message_id = sender_message_id(number)
        if outcome == "not sent":
            assert message_id not in accepted, f"message {number} failed, yet the server accepted it"
        elif outcome != "in doubt":
            assert outcome == message_id and accepted[message_id].rcpt == (f"customer{number}@example.com",)
    assert sum(outcome not in ("not sent", "in doubt") for outcome in outcomes.values()) >= 45


def sender_message_id(number: int) -> str:
    return stable_message_id(outgoing(number))


def test_a_resend_after_doubt_carries_the_same_message_id(scripted: ScriptedSmtp, sender: SmtpSender) -> None:
    """The server accepts a body but its answer cannot be read: in doubt. Sent again later (the
    transactional policy), the copy has the same Message-ID, which mailbox providers fold into one."""
    scripted.answer("END", b"250-Ok\nqueued\r\n")
    with pytest.raises(SendInDoubt):
        sender.send(outgoing(1))
    again = sender.send(outgoing(1))

    assert [got.message_id for got in scripted.accepted] == [again.provider_id, again.provider_id]


# --- The built-in sink (rapport smtp-sink) ----------------------------------------------------------

@pytest.fixture
def sink(sessions: sessionmaker[Session], clock: FakeClock) -> Iterator[tuple[SinkHandler, str]]:
    port = free_port()
    controller = start_sink(sessions, clock, host="127.0.0.1", port=port)
    yield controller.handler, f"smtp://127.0.0.1:{port}"
    controller.stop()


def captured(sessions: sessionmaker[Session], to: str) -> list[OutboxCapture]:
    with sessions() as session:
        return list(session.scalars(select(OutboxCapture).where(OutboxCapture.to_address == to)))


def test_the_sink_answers_a_failed_store_with_451_and_the_client_retries_later(
        sink: tuple[SinkHandler, str], sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """With its database broken the sink answers a one-line 451: the message is retried later (not failed,
    not in doubt), and once the database is back the retry is stored."""
    handler, url = sink
    handler.sessions = make_sessionmaker(create_engine(f"sqlite:///{tmp_path / 'no-tables.db'}"))
    message = replace(outgoing(1), to=f"sink-{tmp_path.name}@example.com", headers={"X-Rapport-Message": "1"})
    smtp = SmtpSender(url, timeout=5)
    try:
        with pytest.raises(TransientSendError, match=r"SMTP 451 4\.3\.0"):
            smtp.send(message)
        handler.sessions = sessions
        smtp.send(message)
    finally:
        smtp.close()

    assert [capture.subject for capture in captured(sessions, message.to)] == ["Your cart 1"]


def test_the_sink_stores_a_message_whose_headers_do_not_fit_its_columns(
        sink: tuple[SinkHandler, str], sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """Issue 10 made the store fail with an oversized header: a message id beyond 64 bits, a workspace id
    longer than any of ours and a 2,000-character subject are stored (cut or left out), not refused."""
    _handler, url = sink
    message = replace(outgoing(2), to=f"big-{tmp_path.name}@example.com", subject="word " * 400,
                      headers={"X-Rapport-Message": "9" * 30, "X-Rapport-Workspace": "w" * 100})
    smtp = SmtpSender(url, timeout=5)
    try:
        smtp.send(message)
    finally:
        smtp.close()

    [capture] = captured(sessions, message.to)
    assert (capture.message_id, capture.workspace_id, len(capture.subject or "")) == (None, None, 998)
    assert (capture.text or "").startswith("cart 2")

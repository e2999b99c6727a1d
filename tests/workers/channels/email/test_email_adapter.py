"""The SMTP adapter against a real SMTP server (aiosmtpd): envelope, pooling, failures, DKIM."""

from __future__ import annotations

import base64
import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dkim
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from engine.delivery.ports import OutgoingMessage
from engine.errors import PermanentSendError, TransientSendError
from engine.settings import Settings
from workers.channels.email.dkim import relaxed_body, relaxed_header
from workers.channels.email.smtp import DkimKey, SmtpSender, data_payload
from workers.supervisor import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    peer: Any


@dataclass
class EnvelopeRecorder:
    """Keeps each message with its envelope; `refuse_rcpt` / `refuse_data` answer errors instead."""

    received: list[Received] = field(default_factory=list)
    refuse_mail: list[str] = field(default_factory=list)
    refuse_rcpt: list[str] = field(default_factory=list)
    refuse_data: list[str] = field(default_factory=list)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.refuse_mail:
            return self.refuse_mail.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_data:
            return self.refuse_data.pop(0)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content or envelope.content, session.peer))
        return "250 OK"


@dataclass
class Server:
    recorder: EnvelopeRecorder
    port: int
    controller: Controller

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


def start_server(recorder: EnvelopeRecorder, port: int, **smtp_options: Any) -> Controller:
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    return controller


@pytest.fixture
def server() -> Iterator[Server]:
    recorder = EnvelopeRecorder()
    port = free_port()
    running = Server(recorder, port, start_server(recorder, port))
    yield running
    running.controller.stop()


@pytest.fixture
def sender(server: Server) -> Iterator[SmtpSender]:
    smtp = SmtpSender(server.url, timeout=5)
    yield smtp
    smtp.close()


def outgoing(**overrides: Any) -> OutgoingMessage:
    fields: dict[str, Any] = {
        "message_id": 7, "workspace_id": "ws1", "channel": "email", "to": "zoe@example.com",
        "sender": "Demo Shop <shop@shop.example>", "subject": "Your cart", "text": "Hi Zoë\n.\nbye\n",
        "html": "<p>Hi Zoë</p>",
        "headers": {"List-Unsubscribe": "<https://shop.example/u/t>, <mailto:unsubscribe@shop.example?subject=t>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "X-Rapport-Message": "7",
                    "X-Rapport-Workspace": "ws1"},
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)


def parsed(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_send_delivers_the_message_and_returns_its_message_id(server: Server, sender: SmtpSender) -> None:
    """The receipt's provider id is the Message-ID the recipient sees; the body survives SMTP dot-stuffing."""
    receipt = sender.send(outgoing())

    [got] = server.recorder.received
    message = parsed(got.raw)
    assert receipt.provider_id == message["Message-ID"]
    assert receipt.provider_id.startswith("<7.") and receipt.provider_id.endswith("@shop.example>")
    assert got.rcpt_tos == ["zoe@example.com"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",))
    assert text is not None and text.get_content().replace("\r\n", "\n") == "Hi Zoë\n.\nbye\n"  # type: ignore[attr-defined]


def test_the_envelope_sender_is_the_verp_return_path_when_given(server: Server, sender: SmtpSender) -> None:
    """Bounces go to the message's own VERP address; without one, to the From address."""
    sender.send(outgoing(return_path="bounce+7-0123456789ab@bounces.shop.example"))
    sender.send(outgoing())

    assert [got.mail_from for got in server.recorder.received] == [
        "bounce+7-0123456789ab@bounces.shop.example", "shop@shop.example"]
    assert parsed(server.recorder.received[0].raw)["From"] == "Demo Shop <shop@shop.example>"


def test_one_connection_carries_many_messages(server: Server, sender: SmtpSender) -> None:
    """The connection is pooled: three sends arrive over the same client socket."""
    for number in range(3):
        sender.send(outgoing(message_id=number))

    assert len({got.peer for got in server.recorder.received}) == 1
    assert len({parsed(got.raw)["Message-ID"] for got in server.recorder.received}) == 3


def test_a_dropped_connection_is_reopened_once(server: Server, sender: SmtpSender) -> None:
    """The server restarts between two sends: the second send reconnects and is delivered."""
    sender.send(outgoing(message_id=1))
    server.controller.stop()
    server.controller = start_server(server.recorder, server.port)

    sender.send(outgoing(message_id=2))

    assert [parsed(got.raw)["Message-ID"][:3] for got in server.recorder.received] == ["<1.", "<2."]
    assert server.recorder.received[0].peer != server.recorder.received[1].peer


def test_a_server_that_is_gone_is_a_transient_failure(server: Server, sender: SmtpSender) -> None:
    """Nobody listening: retry later, the address is not to blame."""
    server.controller.stop()
    server.controller = start_server(server.recorder, free_port())  # the fixture stops this one

    with pytest.raises(TransientSendError, match="SMTP connection failed"):
        sender.send(outgoing())


def test_a_server_that_never_answers_times_out_as_a_transient_failure() -> None:
    """A server that accepts the connection but never greets: the timeout turns into a retry."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        smtp = SmtpSender(f"smtp://127.0.0.1:{listener.getsockname()[1]}", timeout=0.3)
        with pytest.raises(TransientSendError):
            smtp.send(outgoing())


def test_an_unknown_recipient_is_a_permanent_failure_with_a_dead_address(server: Server,
                                                                          sender: SmtpSender) -> None:
    """550 5.1.1 at RCPT: the message fails and the address is to be suppressed."""
    server.recorder.refuse_rcpt.append("550 5.1.1 <zoe@example.com>: Recipient address rejected: User unknown")

    with pytest.raises(PermanentSendError) as caught:
        sender.send(outgoing())

    assert caught.value.address_dead is True
    assert "User unknown" in str(caught.value)


def test_a_message_refused_as_spam_keeps_the_address(server: Server, sender: SmtpSender) -> None:
    """554 5.7.1 at DATA: the message fails, the address stays; the connection still works after it."""
    server.recorder.refuse_data.append("554 5.7.1 Message rejected as spam")

    with pytest.raises(PermanentSendError) as caught:
        sender.send(outgoing())
    sender.send(outgoing(message_id=8))

    assert caught.value.address_dead is False
    assert len(server.recorder.received) == 1


def test_a_refused_sender_fails_the_message_without_blaming_the_recipient(server: Server,
                                                                          sender: SmtpSender) -> None:
    """553 5.1.8 at MAIL FROM is about our envelope sender: permanent, but the recipient's address is not dead."""
    server.recorder.refuse_mail.append("553 5.1.8 <bounce@shop.example>: Sender address rejected: Domain not found")

    with pytest.raises(PermanentSendError) as caught:
        sender.send(outgoing())

    assert caught.value.address_dead is False
    assert "sender" in str(caught.value)


def test_greylisting_is_a_transient_failure(server: Server, sender: SmtpSender) -> None:
    """451 4.7.1 at RCPT (greylisting): try again later."""
    server.recorder.refuse_rcpt.append("451 4.7.1 Greylisted, please try again later")

    with pytest.raises(TransientSendError, match="451"):
        sender.send(outgoing())


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_credentials_in_the_url_log_in() -> None:
    """smtp://user:pass@host logs in with AUTH; a server that requires it accepts the message."""
    recorder = EnvelopeRecorder()
    port = free_port()
    logins: list[tuple[str, str]] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"p@ss:word")

    controller = start_server(recorder, port, authenticator=authenticate, auth_required=True,
                              auth_require_tls=False)
    smtp = SmtpSender(f"smtp://apikey%40shop:p%40ss%3Aword@127.0.0.1:{port}", timeout=5)
    try:
        smtp.send(outgoing())
    finally:
        smtp.close()
        controller.stop()

    assert logins == [("apikey@shop", "p@ss:word")]
    assert len(recorder.received) == 1


# --- DKIM ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A fresh 2048-bit RSA key: (private PEM, the public key as a DNS p= value)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to generate a test key")
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "private.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"], check=True,
                            capture_output=True).stdout
    return private.read_text(), base64.b64encode(public).decode()


def dns_record(public: str) -> Any:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return f"v=DKIM1; k=rsa; p={public}".encode() if name == b"s2030._domainkey.shop.example." else None
    return lookup


def test_a_dkim_signature_covers_the_unsubscribe_headers_and_verifies(server: Server, rsa_key: tuple[str, str]) -> None:
    """Signed with the configured key, the message as received verifies, and h= names List-Unsubscribe(-Post)."""
    private, public = rsa_key
    smtp = SmtpSender(server.url, dkim=DkimKey(private.encode(), "s2030", "shop.example"))
    try:
        smtp.send(outgoing(subject="Ваша корзина 🛒"))
    finally:
        smtp.close()

    [got] = server.recorder.received
    assert dkim.verify(got.raw, dnsfunc=dns_record(public)) is True
    signature = parsed(got.raw)["DKIM-Signature"]
    signed = {name.strip().lower() for name in signature.split("h=", 1)[1].split(";", 1)[0].split(":")}
    assert {"from", "to", "subject", "date", "message-id", "mime-version", "content-type",
            "list-unsubscribe", "list-unsubscribe-post"} <= signed


def test_a_tampered_message_fails_dkim_verification(server: Server, rsa_key: tuple[str, str]) -> None:
    """Changing the signed List-Unsubscribe header after signing breaks the signature."""
    private, public = rsa_key
    smtp = SmtpSender(server.url, dkim=DkimKey(private.encode(), "s2030", "shop.example"))
    try:
        smtp.send(outgoing())
    finally:
        smtp.close()

    tampered = server.recorder.received[0].raw.replace(b"https://shop.example/u/t", b"https://evil.example/u/t")
    assert dkim.verify(tampered, dnsfunc=dns_record(public)) is False


def test_dkim_is_configured_from_a_key_file_selector_and_domain(tmp_path: Path, rsa_key: tuple[str, str]) -> None:
    """DKIM_PRIVATE_KEY_FILE + DKIM_SELECTOR + DKIM_DOMAIN make a key; nothing set means no signing."""
    (tmp_path / "dkim.pem").write_text(rsa_key[0])
    base = {"SECRET_KEY": "s", "RAPPORT_DATA_DIR": str(tmp_path)}

    key = DkimKey.from_settings(Settings.from_env({**base, "DKIM_PRIVATE_KEY_FILE": str(tmp_path / "dkim.pem"),
                                                   "DKIM_SELECTOR": "s2030", "DKIM_DOMAIN": "shop.example"}))

    assert key is not None and (key.selector, key.domain) == ("s2030", "shop.example")
    assert key.private_key.startswith(b"-----BEGIN")
    assert DkimKey.from_settings(Settings.from_env(base)) is None
    with pytest.raises(ValueError, match="DKIM_SELECTOR and DKIM_DOMAIN"):
        DkimKey.from_settings(Settings.from_env({**base, "DKIM_PRIVATE_KEY": rsa_key[0]}))


# --- Pooling and the DATA payload -------------------------------------------------------------

def test_connections_outlive_the_threads_that_sent_on_them(server: Server, sender: SmtpSender) -> None:
    """Dispatch lanes are threads that live for one job: the next job's threads reuse the same connection."""
    for number in range(3):
        thread = threading.Thread(target=sender.send, args=(outgoing(message_id=number),))
        thread.start()
        thread.join()

    assert len(server.recorder.received) == 3
    assert len({got.peer for got in server.recorder.received}) == 1


def test_concurrent_senders_each_get_a_connection_and_give_it_back(server: Server, sender: SmtpSender) -> None:
    """Two threads sending at once use two connections; afterwards both wait in the pool, and no more are opened."""
    started = threading.Barrier(2)

    def send_two(first: int) -> None:
        started.wait()
        for number in (first, first + 1):
            sender.send(outgoing(message_id=number))

    threads = [threading.Thread(target=send_two, args=(n,)) for n in (10, 20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sender.send(outgoing(message_id=30))

    assert len(server.recorder.received) == 5
    assert len({got.peer for got in server.recorder.received}) <= 2


def test_an_idle_connection_past_the_limit_is_replaced(server: Server, sender: SmtpSender,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection idle for longer than servers keep them is closed with QUIT and a new one is opened."""
    sender.send(outgoing(message_id=1))
    monkeypatch.setattr(SmtpSender, "IDLE_LIMIT", -1.0)
    sender.send(outgoing(message_id=2))

    first, second = server.recorder.received
    assert first.peer != second.peer


def test_a_refused_recipient_leaves_the_connection_usable(server: Server, sender: SmtpSender) -> None:
    """After a 550 at RCPT the transaction is reset and the next message goes over the same connection."""
    server.recorder.refuse_rcpt.append("550 5.1.1 User unknown")
    with pytest.raises(PermanentSendError):
        sender.send(outgoing(message_id=1))
    sender.send(outgoing(message_id=2))

    [got] = server.recorder.received
    assert parsed(got.raw)["Message-ID"].startswith("<2.")


@pytest.mark.parametrize(("raw", "payload"), [
    (b"Subject: x\r\n\r\n.hidden\r\nend\r\n", b"Subject: x\r\n\r\n..hidden\r\nend\r\n.\r\n"),
    (b".first\r\nno newline at the end", b"..first\r\nno newline at the end\r\n.\r\n"),
    (b"bare\nLF\rand CR\r\n.\n", b"bare\r\nLF\r\nand CR\r\n..\r\n.\r\n"),
])
def test_the_data_payload_is_crlf_and_dot_stuffed(raw: bytes, payload: bytes) -> None:
    assert data_payload(raw) == payload


def test_a_body_with_dot_lines_and_bare_line_feeds_arrives_unchanged(server: Server, sender: SmtpSender) -> None:
    """Lines that start with a dot survive the SMTP transparency rule, whatever line ends the text used."""
    text = ".\n..two dots\n.\r\nlast line .\n"
    sender.send(outgoing(text=text))

    [got] = server.recorder.received
    body = parsed(got.raw).get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n")  # type: ignore[attr-defined]


def test_relaxed_canonicalization_matches_the_rfc_example() -> None:
    """RFC 6376 section 3.4.5: the example's headers and body, canonicalized the relaxed way."""
    assert relaxed_header(b"A", b" X") + relaxed_header(b"B ", b" Y\t\r\n\tZ  ") == b"a:X\r\nb:Y Z\r\n"
    assert relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n") == b" C\r\nD E\r\n"
    assert relaxed_body(b"") == b"" and relaxed_body(b"\r\n\r\n") == b""


def test_a_body_with_trailing_spaces_dots_and_blank_lines_verifies(server: Server, rsa_key: tuple[str, str]) -> None:
    """Whitespace at line ends, lines starting with a dot and empty lines at the end: the
    signature still verifies on the message as the server received it."""
    private, public = rsa_key
    smtp = SmtpSender(server.url, dkim=DkimKey(private.encode(), "s2030", "shop.example"))
    try:
        smtp.send(outgoing(text="Hi  there   \n.\n..\n\tindented\t line\n\n\n", html="<p>Hi</p>   \n\n"))
    finally:
        smtp.close()

    [got] = server.recorder.received
    assert dkim.verify(got.raw, dnsfunc=dns_record(public)) is True


def test_a_key_that_cannot_sign_is_refused_at_start_up(tmp_path: Path) -> None:
    """A broken DKIM_PRIVATE_KEY stops the worker with a message instead of failing every send."""
    env = {"SECRET_KEY": "s", "RAPPORT_DATA_DIR": str(tmp_path), "DKIM_SELECTOR": "s2030",
           "DKIM_DOMAIN": "shop.example",
           "DKIM_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----"}
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        DkimKey.from_settings(Settings.from_env(env))


def test_a_connection_the_server_timed_out_is_replaced_without_a_retry_later(server: Server,
                                                                              sender: SmtpSender) -> None:
    """Postfix answers the next command on an idle connection it timed out with 421: nothing was
    sent yet, so the message goes at once over a new connection, once."""
    sender.send(outgoing(message_id=1))
    server.recorder.refuse_mail.append("421 4.4.2 shop.example Error: timeout exceeded")

    sender.send(outgoing(message_id=2))

    assert [parsed(got.raw)["Message-ID"][:3] for got in server.recorder.received] == ["<1.", "<2."]
    assert server.recorder.received[0].peer != server.recorder.received[1].peer


def test_a_server_that_keeps_answering_421_is_a_transient_failure(server: Server, sender: SmtpSender) -> None:
    """421 twice in a row (the server is shutting down): retry later, nothing sent."""
    server.recorder.refuse_mail.extend(["421 4.3.2 Service shutting down"] * 2)

    with pytest.raises(TransientSendError, match="421"):
        sender.send(outgoing())
    assert server.recorder.received == []


# --- Hand-over and the Message-ID ----------------------------------------------------------------

def test_on_handover_is_called_once_after_the_server_agreed_to_take_the_body(server: Server,
                                                                            sender: SmtpSender) -> None:
    """The hand-over callback runs once per message, when DATA was accepted and nothing of the body has gone."""
    seen: list[int] = []
    sender.send(outgoing(message_id=1), on_handover=lambda: seen.append(len(server.recorder.received)))
    sender.send(outgoing(message_id=2), on_handover=lambda: seen.append(len(server.recorder.received)))

    assert seen == [0, 1]
    assert len(server.recorder.received) == 2


def test_on_handover_is_not_called_for_a_message_refused_before_its_body(server: Server,
                                                                         sender: SmtpSender) -> None:
    """A recipient refused at RCPT never reaches the hand-over: nothing of it can have been delivered."""
    server.recorder.refuse_rcpt.append("550 5.1.1 User unknown")
    seen: list[str] = []

    with pytest.raises(PermanentSendError):
        sender.send(outgoing(), on_handover=lambda: seen.append("handed over"))

    assert seen == []


class HandoverRefused(Exception):
    pass


def test_a_handover_that_raises_sends_no_body_and_its_error_comes_through(server: Server,
                                                                          sender: SmtpSender) -> None:
    """If the callback raises, the same exception reaches the caller, the message is not delivered,
    and the next message goes through normally."""
    def refuse() -> None:
        raise HandoverRefused("claim lost")

    with pytest.raises(HandoverRefused, match="claim lost"):
        sender.send(outgoing(message_id=1), on_handover=refuse)
    sender.send(outgoing(message_id=2))

    [got] = server.recorder.received
    assert parsed(got.raw)["Message-ID"].startswith("<2.")


def test_every_attempt_at_a_message_carries_the_same_message_id(server: Server, sender: SmtpSender) -> None:
    """A resend keeps the Message-ID (mailbox providers fold duplicates by it); other messages and
    other workspaces get their own."""
    first = sender.send(outgoing(message_id=5)).provider_id
    again = sender.send(outgoing(message_id=5)).provider_id
    other = sender.send(outgoing(message_id=6)).provider_id
    elsewhere = sender.send(outgoing(message_id=5, workspace_id="ws2")).provider_id

    assert first == again
    assert len({first, other, elsewhere}) == 3
    assert [parsed(got.raw)["Message-ID"] for got in server.recorder.received] == [first, again, other, elsewhere]


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(folder / "key.pem"),
                    "-out", str(folder / "cert.pem")], check=True, capture_output=True)
    return folder / "cert.pem", folder / "key.pem"


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
def test_a_tls_connection_is_pooled_and_reused(tls_certificate: tuple[Path, Path], scheme: str) -> None:
    """Over STARTTLS or implicit TLS, the check for unsolicited bytes before each reuse leaves a quiet
    connection in service: three messages, one encrypted connection."""
    certificate, key = tls_certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificate, key)
    recorder = EnvelopeRecorder()
    port = free_port()
    options: dict[str, Any] = ({"tls_context": server_tls, "require_starttls": True} if scheme == "smtp"
                               else {"ssl_context": server_tls})
    controller = start_server(recorder, port, **options)
    smtp = SmtpSender(f"{scheme}://127.0.0.1:{port}", timeout=5,
                      tls=ssl.create_default_context(cafile=str(certificate)))  # trust the test certificate
    try:
        for number in range(3):
            smtp.send(outgoing(message_id=number))
    finally:
        smtp.close()
        controller.stop()

    assert len(recorder.received) == 3
    assert len({got.peer for got in recorder.received}) == 1

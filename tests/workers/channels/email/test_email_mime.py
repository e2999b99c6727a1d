"""The SMTP adapter's wire format, URL parsing and failure classification, without a server.

The wire form is written by hand for speed (workers/channels/email/mime.py), so every test reads it
back with the stdlib's strict parser (policy.default), as a receiving client would.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest

from engine.delivery.ports import OutgoingMessage
from engine.errors import PermanentSendError, TransientSendError
from workers.channels.email.mime import build_mime
from workers.channels.email.smtp import SmtpSender, classify_reply

MESSAGE_ID = "<20261123090000.1234@shop.example>"


def outgoing(**overrides: object) -> OutgoingMessage:
    fields: dict[str, object] = {
        "message_id": 42,
        "workspace_id": "ws1",
        "channel": "email",
        "sender": "Demo Shop <shop@shop.example>",
        "to": "zoe@example.com",
        "subject": "You left something in your cart",
        "text": "Hi Zoë,\nyour cart is waiting.\n",
        "html": "<p>Hi Zoë,</p><p>your cart is waiting.</p>",
        "headers": {
            "List-Unsubscribe": "<https://shop.example/u/abc>, <mailto:unsubscribe@shop.example?subject=abc>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Rapport-Message": "42",
            "X-Rapport-Workspace": "ws1",
        },
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert not message.defects, message.defects
    return message


def parse_raw_headers(raw: bytes) -> list[tuple[str, str]]:
    """The header fields as written, unfolded, without any decoding."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n ", " ")
    return [(key, value.strip()) for key, _, value in (line.partition(":") for line in head.split("\r\n"))]


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    assert not part.defects, part.defects
    content: str = part.get_content()  # type: ignore[attr-defined]
    return content.replace("\r\n", "\n")  # the canonical form is CRLF; compare with what was rendered


def test_build_mime_makes_a_multipart_alternative_with_text_then_html() -> None:
    """The message is multipart/alternative: text/plain first, text/html last (the preferred one)."""
    message = parse(build_mime(outgoing(), MESSAGE_ID))

    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert body(message, "plain") == "Hi Zoë,\nyour cart is waiting.\n"
    assert body(message, "html") == "<p>Hi Zoë,</p><p>your cart is waiting.</p>"


def test_a_message_without_html_is_plain_text() -> None:
    """No HTML rendered: one text/plain part, not an empty alternative."""
    message = parse(build_mime(outgoing(html=""), MESSAGE_ID))

    assert message.get_content_type() == "text/plain"
    assert body(message, "plain") == "Hi Zoë,\nyour cart is waiting.\n"


def test_build_mime_sets_the_standard_headers() -> None:
    """From, To, Subject, the current Date (UTC), the given Message-ID and MIME-Version are present."""
    message = parse(build_mime(outgoing(), MESSAGE_ID))

    assert message["From"] == "Demo Shop <shop@shop.example>"
    assert message["To"] == "zoe@example.com"
    assert message["Subject"] == "You left something in your cart"
    assert message["Message-ID"] == MESSAGE_ID
    assert message["MIME-Version"] == "1.0"
    sent_at = parsedate_to_datetime(message["Date"])
    assert sent_at.tzinfo is not None
    assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_build_mime_adds_the_custom_headers() -> None:
    """List-Unsubscribe (HTTPS and mailto), its one-click Post header and the tracking ids are on the message."""
    message = parse(build_mime(outgoing(), MESSAGE_ID))

    assert message["List-Unsubscribe"] == "<https://shop.example/u/abc>, <mailto:unsubscribe@shop.example?subject=abc>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Rapport-Message"] == "42"
    assert message["X-Rapport-Workspace"] == "ws1"


def test_build_mime_ends_every_line_in_crlf_and_keeps_lines_under_998() -> None:
    """SMTP wants CRLF and at most 998 octets a line: even with a folded subject and a 20,000-character HTML line."""
    html = "<table>" + "".join(f'<tr><td class="c{i}">cell {i}</td></tr>' for i in range(700)) + "</table>"
    assert len(html) > 20_000
    raw = build_mime(outgoing(subject="A subject long enough to be folded over two header lines " * 3, html=html,
                              text="line one\r\nline two\rline three\n"), MESSAGE_ID)

    without_crlf = raw.replace(b"\r\n", b"")
    assert b"\n" not in without_crlf
    assert b"\r" not in without_crlf
    assert raw.endswith(b"\r\n")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert all(len(line) <= 78 for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))
    message = parse(raw)
    assert body(message, "html") == html
    assert body(message, "plain") == "line one\nline two\nline three\n"
    assert message["Subject"] == "A subject long enough to be folded over two header lines " * 2 + \
        "A subject long enough to be folded over two header lines"


def test_a_subject_with_a_word_too_long_to_fold_still_keeps_lines_under_998() -> None:
    """A 1,500-character word cannot be folded: it is written as encoded words, and reads back whole."""
    subject = "Order " + "x" * 1500 + " confirmed"
    raw = build_mime(outgoing(subject=subject), MESSAGE_ID)

    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert parse(raw)["Subject"] == subject


@pytest.mark.parametrize(
    "subject",
    ["Zoë, you left something in your cart",
     "Ваша корзина ждёт вас — 20 % de réduction sur tout le magasin aujourd'hui seulement 🛒",
     "🛒🎁👩‍👩‍👧‍👦" * 12,
     "日本語の件名はとても長くなることがありますので、正しく折り返されなければなりません。" * 2],
    ids=["short", "long-folded", "emoji", "cjk"],
)
def test_a_non_ascii_subject_is_encoded_and_round_trips(subject: str) -> None:
    """The wire form is ASCII, header lines stay within 78, and a standard parser reads the exact subject back."""
    raw = build_mime(outgoing(subject=subject), MESSAGE_ID)

    assert raw.isascii()
    assert all(len(line) <= 78 for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))
    assert parse(raw)["Subject"] == subject


@pytest.mark.parametrize(
    ("sender", "name"),
    [("Café Zoë <shop@shop.example>", "Café Zoë"),
     ('"Doe, Jane" <shop@shop.example>', "Doe, Jane"),
     ("Doe, Jane <shop@shop.example>", "Doe, Jane"),
     ('"Café, Zoë & Co" <shop@shop.example>', "Café, Zoë & Co"),
     ('"Say \\"hi\\"" <shop@shop.example>', 'Say "hi"'),
     ("Магазин «Ромашка», Москва — лучшие цены на всё <shop@shop.example>",
      "Магазин «Ромашка», Москва — лучшие цены на всё")],
    ids=["non-ascii", "quoted-comma", "bare-comma", "non-ascii-comma", "quotes", "long-cyrillic"],
)
def test_a_sender_display_name_keeps_the_address_readable(sender: str, name: str) -> None:
    """Display names with commas, quotes or non-ASCII are quoted or encoded alone, so the address stays an address."""
    raw = build_mime(outgoing(sender=sender), MESSAGE_ID)
    message = parse(raw)

    [address] = message["From"].addresses
    assert address.addr_spec == "shop@shop.example"
    [from_value] = [value for key, value in parse_raw_headers(raw) if key == "From"]
    if "=?" not in from_value:
        assert address.display_name == name
    else:
        # A long name takes several encoded words. RFC 2047 (6.2) drops the space between
        # them; Python's phrase parser keeps it (its own generator writes the same form), so
        # the exact name is read with the RFC decoder.
        assert str(make_header(decode_header(from_value.rpartition("<")[0].strip()))) == name


def test_a_recipient_with_an_international_domain_is_sent_in_punycode() -> None:
    """An IDN domain is written as its ASCII (IDNA) form, which every MTA accepts."""
    message = parse(build_mime(outgoing(to="zoe@bücher.example"), MESSAGE_ID))

    assert message["To"] == "zoe@xn--bcher-kva.example"


def test_a_header_value_cannot_inject_another_header() -> None:
    """CR and LF in a subject or a custom header become spaces: no Bcc can be smuggled in."""
    raw = build_mime(outgoing(subject="Hi\r\nBcc: victim@example.com",
                              headers={"X-Rapport-Message": "42\nBcc: other@example.com"}), MESSAGE_ID)
    message = parse(raw)

    assert message["Bcc"] is None
    assert message["Subject"] == "Hi Bcc: victim@example.com"


def test_lines_starting_with_a_dot_survive_in_the_body() -> None:
    """A line that is just "." would end SMTP DATA; it is encoded, and the text reads back unchanged."""
    text = "First\n.\n.hidden\nlast\n"
    message = parse(build_mime(outgoing(text=text, html="<p>a</p>\n.\n<p>b</p>"), MESSAGE_ID))

    assert body(message, "plain") == text
    assert body(message, "html") == "<p>a</p>\n.\n<p>b</p>"


def test_an_address_that_is_not_one_is_a_permanent_failure() -> None:
    """A To without an @ cannot be sent: retrying will not help."""
    with pytest.raises(PermanentSendError, match="not an email address"):
        build_mime(outgoing(to="Zoë <nobody>"), MESSAGE_ID)


@pytest.mark.parametrize("url", ["http://mail.example", "smtp+tls://mail.example", "mail.example:25", "lmtp://x"])
def test_smtp_sender_refuses_urls_that_are_not_smtp_or_smtps(url: str) -> None:
    """Only smtp:// and smtps:// are accepted, and the error says so."""
    with pytest.raises(ValueError, match=r"must start with smtp:// or smtps://"):
        SmtpSender(url)


def test_smtps_defaults_to_port_465_with_implicit_tls() -> None:
    """smtps:// speaks TLS from the first byte, on port 465 unless a port is given."""
    sender = SmtpSender("smtps://mail.example")

    assert sender.implicit_tls is True
    assert (sender.host, sender.port) == ("mail.example", 465)
    assert SmtpSender("smtps://mail.example:2465").port == 2465


def test_smtp_defaults_to_port_25_without_implicit_tls() -> None:
    """smtp:// starts in clear (STARTTLS if offered) on port 25 unless a port is given."""
    sender = SmtpSender("smtp://mail.example")

    assert sender.implicit_tls is False
    assert sender.port == 25
    assert SmtpSender("smtp://mail.example:587").port == 587


def test_smtp_credentials_in_the_url_are_percent_decoded() -> None:
    """A user or password with @ or : is written percent-encoded in the URL and used decoded."""
    sender = SmtpSender("smtp://apikey%40shop:p%40ss%3Aword@mail.example:587")

    assert (sender.username, sender.password) == ("apikey@shop", "p@ss:word")
    assert SmtpSender("smtp://mail.example").username is None


@pytest.mark.parametrize("code", [500, 550, 552, 553, 554, 599])
def test_a_5xx_reply_is_a_permanent_failure(code: int) -> None:
    """5xx (no such user, rejected) cannot succeed on retry: the message fails."""
    error = classify_reply(code, b"5.1.1 <zoe@example.com>: user unknown")

    assert isinstance(error, PermanentSendError)
    assert str(error) == f"SMTP {code} 5.1.1 <zoe@example.com>: user unknown"


@pytest.mark.parametrize(
    ("code", "reply"),
    [(550, "5.1.1 <zoe@example.com>: Recipient address rejected: User unknown in virtual mailbox table"),
     (550, "No such user here"),
     (551, "User not local; please try <zoe@elsewhere.example>"),
     (553, "sorry, that mailbox does not exist"),
     (554, "5.1.1 Delivery error: This user doesn't have an account"),
     (550, "5.2.1 The email account that you tried to reach is disabled")],
)
def test_a_reply_saying_the_mailbox_is_gone_marks_the_address_dead(code: int, reply: str) -> None:
    """User unknown / no such mailbox / account disabled: the address is suppressed, not just the message failed."""
    error = classify_reply(code, reply)

    assert isinstance(error, PermanentSendError)
    assert error.address_dead is True


@pytest.mark.parametrize(
    ("code", "reply"),
    [(550, "5.7.1 Message rejected as spam"),
     (554, "Transaction failed: message content rejected"),
     (552, "5.3.4 Message size exceeds fixed limit"),
     (550, "5.7.26 Unauthenticated email from shop.example is not accepted (no such user policy)")],
)
def test_a_refused_message_does_not_kill_the_address(code: int, reply: str) -> None:
    """Spam, policy or size rejections fail the message but keep the address: the mailbox itself is fine."""
    error = classify_reply(code, reply)

    assert isinstance(error, PermanentSendError)
    assert error.address_dead is False


@pytest.mark.parametrize("code", [421, 450, 451, 452])
def test_a_4xx_reply_is_a_transient_failure(code: int) -> None:
    """4xx (greylisting, mailbox busy, try later) is retried with backoff."""
    error = classify_reply(code, "4.7.1 try again later")

    assert isinstance(error, TransientSendError)
    assert not isinstance(error, PermanentSendError)
    assert str(error) == f"SMTP {code} 4.7.1 try again later"

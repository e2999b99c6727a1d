"""The SMTP adapter's wire format, URL parsing and failure classification, without a server."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest

from engine.channels import OutgoingEmail
from engine.errors import PermanentSendError, TransientSendError
from workers.email import SmtpSender, _classify, build_mime

MESSAGE_ID = "<20261123090000.1234@shop.example>"


def outgoing(**overrides: object) -> OutgoingEmail:
    fields: dict[str, object] = {
        "sender": "Demo Shop <shop@shop.example>",
        "to": "zoe@example.com",
        "subject": "You left something in your cart",
        "text": "Hi Zoë,\nyour cart is waiting.\n",
        "html": "<p>Hi Zoë,</p><p>your cart is waiting.</p>",
        "headers": {"List-Unsubscribe": "<https://shop.example/u/abc>", "X-Rapport-Message": "42"},
    }
    fields.update(overrides)
    return OutgoingEmail(**fields)  # type: ignore[arg-type]


def parse(raw: str) -> EmailMessage:
    message = email.message_from_string(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_build_mime_makes_a_multipart_alternative_with_text_then_html() -> None:
    """The message is multipart/alternative: text/plain first, text/html last (the preferred one)."""
    message = parse(build_mime(outgoing(), MESSAGE_ID))

    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message.get_body(("plain",)).get_content() == "Hi Zoë,\nyour cart is waiting.\n"
    assert message.get_body(("html",)).get_content() == "<p>Hi Zoë,</p><p>your cart is waiting.</p>"


def test_build_mime_sets_the_standard_headers() -> None:
    """From, To, Subject, the current Date (UTC) and the given Message-ID are present."""
    message = parse(build_mime(outgoing(), MESSAGE_ID))

    assert message["From"] == "Demo Shop <shop@shop.example>"
    assert message["To"] == "zoe@example.com"
    assert message["Subject"] == "You left something in your cart"
    assert message["Message-ID"] == MESSAGE_ID
    sent_at = parsedate_to_datetime(message["Date"])
    if sent_at.tzinfo is None:  # "-0000" means UTC with the local zone withheld
        sent_at = sent_at.replace(tzinfo=UTC)
    assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_build_mime_adds_the_custom_headers() -> None:
    """Headers given with the email (List-Unsubscribe, tracking ids) are on the message."""
    message = parse(build_mime(outgoing(), MESSAGE_ID))

    assert message["List-Unsubscribe"] == "<https://shop.example/u/abc>"
    assert message["X-Rapport-Message"] == "42"


def test_build_mime_ends_every_line_in_crlf() -> None:
    """SMTP wants CRLF: no bare LF and no bare CR anywhere, even with a long folded subject."""
    raw = build_mime(outgoing(subject="A subject long enough to be folded over two header lines " * 3), MESSAGE_ID)

    without_crlf = raw.replace("\r\n", "")
    assert "\n" not in without_crlf
    assert "\r" not in without_crlf
    assert raw.endswith("\r\n")


@pytest.mark.parametrize(
    "subject",
    ["Zoë, you left something in your cart",
     "Ваша корзина ждёт вас — 20 % de réduction sur tout le magasin aujourd'hui seulement 🛒"],
    ids=["short", "long-folded"],
)
def test_a_non_ascii_subject_is_encoded_and_round_trips(subject: str) -> None:
    """The wire form is ASCII, and a standard parser reads the exact subject back."""
    raw = build_mime(outgoing(subject=subject), MESSAGE_ID)

    assert raw.isascii()
    assert parse(raw)["Subject"] == subject


def test_a_non_ascii_sender_name_keeps_the_address_readable() -> None:
    """MAIL_FROM "Café Zoë <shop@…>" encodes only the display name, so the address stays an address."""
    message = parse(build_mime(outgoing(sender="Café Zoë <shop@shop.example>"), MESSAGE_ID))

    [address] = message["From"].addresses
    assert (address.display_name, address.addr_spec) == ("Café Zoë", "shop@shop.example")


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
    error = _classify(code, b"5.1.1 <zoe@example.com>: user unknown")

    assert isinstance(error, PermanentSendError)
    assert str(error) == f"SMTP {code} 5.1.1 <zoe@example.com>: user unknown"


@pytest.mark.parametrize("code", [421, 450, 451, 452])
def test_a_4xx_reply_is_a_transient_failure(code: int) -> None:
    """4xx (greylisting, mailbox busy, try later) is retried with backoff."""
    error = _classify(code, "4.7.1 try again later")

    assert isinstance(error, TransientSendError)
    assert not isinstance(error, PermanentSendError)
    assert str(error) == f"SMTP {code} 4.7.1 try again later"

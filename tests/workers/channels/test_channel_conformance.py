"""Every channel adapter obeys one protocol: send returns a receipt, failures are classified alike.

Each adapter talks to a real local server speaking its provider's API (tests/providers.py
HARNESSES); adding an adapter to that registry runs it through all of these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.delivery.ports import Button, ProviderTemplate
from engine.errors import ClaimLost, PermanentSendError, SendInDoubt, TransientSendError
from engine.settings import Settings
from tests.providers import HARNESSES, Harness, fake_providers, message_to  # noqa: F401
from workers.channels import build_readers, build_senders
from workers.channels.sms_gateway import HttpSmsGateway
from workers.channels.twilio import TwilioSms
from workers.channels.whatsapp import WhatsAppCloud
from workers.dev.fake_providers import FakeProviders, fake_provider_env
from workers.dev.fake_providers import whatsapp as fake_whatsapp
from workers.supervisor import free_port


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Harness:
    return HARNESSES[request.param](request)


def test_a_sent_message_gets_the_providers_id_and_arrives_exactly_as_sent(harness: Harness) -> None:
    """send() returns a Receipt with the provider's id; the provider got the recipient, text, buttons and our ids."""
    message = message_to(harness.recipient, buttons=(Button("See your cart", "https://shop.example/cart/1"),))

    receipt = harness.adapter().send(message)

    assert receipt.provider_id
    assert harness.sent() == [harness.expected(message)]


def test_a_provider_server_error_is_transient(harness: Harness) -> None:
    """An HTTP 500 from the provider raises TransientSendError and sends nothing."""
    harness.fail_next(500)

    with pytest.raises(TransientSendError):
        harness.adapter().send(message_to(harness.recipient))
    assert harness.sent() == []


def test_after_a_server_error_the_retry_goes_through_once(harness: Harness) -> None:
    """500 then 200: the second attempt is accepted and the provider holds exactly one message."""
    harness.fail_next(503)
    adapter = harness.adapter()
    message = message_to(harness.recipient)

    with pytest.raises(TransientSendError):
        adapter.send(message)
    adapter.send(message)

    assert len(harness.sent()) == 1


def test_a_rate_limit_is_transient_and_carries_the_providers_wait(harness: Harness) -> None:
    """A rate-limit answer raises TransientSendError with retry_after when the provider says how long."""
    harness.rate_limit_next(retry_after=7)

    with pytest.raises(TransientSendError) as caught:
        harness.adapter().send(message_to(harness.recipient))

    assert caught.value.retry_after == (7 if harness.reports_retry_after else None)


def test_a_recipient_the_provider_calls_gone_is_a_permanent_dead_address(harness: Harness) -> None:
    """Invalid number, blocked bot, unsubscribed or undeliverable user: PermanentSendError(address_dead=True)."""
    if harness.dead_recipient is None:
        pytest.skip("this provider cannot tell that an address is dead")

    with pytest.raises(PermanentSendError) as caught:
        harness.adapter().send(message_to(harness.dead_recipient))

    assert caught.value.address_dead is True


def test_wrong_credentials_are_permanent_but_leave_the_address_alone(harness: Harness) -> None:
    """Rejected credentials fail the message without suppressing the recipient."""
    with pytest.raises(PermanentSendError) as caught:
        harness.adapter(valid_credentials=False).send(message_to(harness.recipient))

    assert caught.value.address_dead is False
    assert harness.sent() == []


def test_a_provider_that_does_not_answer_in_time_leaves_the_message_in_doubt(harness: Harness) -> None:
    """A read timeout after the request went out raises SendInDoubt (the provider may have it): the
    workspace's in-doubt policy decides, not a blind retry."""
    harness.delay_next(seconds=3)

    with pytest.raises(SendInDoubt, match="in time"):
        harness.adapter(timeout=0.3).send(message_to(harness.recipient))


def test_the_hand_over_is_announced_right_before_the_request_and_can_still_stop_it(harness: Harness) -> None:
    """on_handover runs once before the provider sees anything; if it raises, nothing reaches the provider."""
    calls: list[int] = []

    def refuse() -> None:
        calls.append(len(harness.sent()))
        raise ClaimLost("claim went to another worker")

    with pytest.raises(ClaimLost):
        harness.adapter().send(message_to(harness.recipient), on_handover=refuse)
    assert calls == [0] and harness.sent() == []
    harness.adapter().send(message_to(harness.recipient), on_handover=lambda: calls.append(len(harness.sent())))
    assert calls == [0, 0] and len(harness.sent()) == 1


def test_a_refused_connection_is_transient(harness: Harness) -> None:
    """Nothing listening at the provider's address raises TransientSendError."""
    with pytest.raises(TransientSendError, match="connection"):
        harness.adapter(api_url=f"http://127.0.0.1:{free_port()}").send(message_to(harness.recipient))


# --- adapter-specific parts of the protocol ------------------------------------------------


def test_whatsapp_sends_a_template_with_its_parameters(fake_providers: FakeProviders) -> None:  # noqa: F811
    """OutgoingMessage.template goes as a WhatsApp template message with body parameters, in order."""
    c = fake_providers.credentials
    adapter = WhatsAppCloud(token=c.whatsapp_token, phone_number_id=c.whatsapp_phone_number_id,
                            api_url=fake_providers.url)
    template = ProviderTemplate("cart_reminder", "de", ("Ada", "2"))

    adapter.send(message_to(fake_whatsapp.OUTSIDE_WINDOW, text="", template=template))

    [sent] = fake_providers.messages_for("whatsapp")
    assert sent.meta["template"] == {"name": "cart_reminder", "language": "de", "parameters": ["Ada", "2"]}


def test_whatsapp_free_text_outside_the_24_hour_window_fails_without_killing_the_address(
    fake_providers: FakeProviders,  # noqa: F811
) -> None:
    """131047 (re-engagement) is permanent for this message, but the number still works for templates."""
    c = fake_providers.credentials
    adapter = WhatsAppCloud(token=c.whatsapp_token, phone_number_id=c.whatsapp_phone_number_id,
                            api_url=fake_providers.url)

    with pytest.raises(PermanentSendError, match="24-hour") as caught:
        adapter.send(message_to(fake_whatsapp.OUTSIDE_WINDOW))

    assert caught.value.address_dead is False


def test_sms_receipts_carry_the_segment_count_and_encoding(fake_providers: FakeProviders) -> None:  # noqa: F811
    """Twilio and the gateway put segments and encoding into Receipt.meta (the SMS cost)."""
    c = fake_providers.credentials
    adapter = HttpSmsGateway(url_template=f"{fake_providers.url}/gateway/send?to={{to}}&text={{text}}",
                             token=c.gateway_token)

    receipt = adapter.send(message_to("+14155552671", text="Привет! " * 10))

    assert receipt.meta == {"segments": 2, "encoding": "UCS-2"}


def test_the_gateway_posts_json_and_finds_the_id_at_a_nested_path(fake_providers: FakeProviders) -> None:  # noqa: F811
    """Without placeholders a POST gateway gets {to, text, sender} as JSON; the id is read at data.message_id."""
    c = fake_providers.credentials
    adapter = HttpSmsGateway(url_template=f"{fake_providers.url}/gateway/send", method="POST", token=c.gateway_token,
                             id_path="data.message_id", sender="Shop")

    receipt = adapter.send(message_to("+14155552671", text="a & b = c?"))

    [sent] = fake_providers.messages_for("gateway")
    assert (sent.to, sent.text, sent.meta["from"], sent.provider_id) == ("+14155552671", "a & b = c?", "Shop",
                                                                          receipt.provider_id)


def test_a_gateway_url_with_an_unknown_placeholder_is_refused_at_start() -> None:
    """A typo in SMS_GATEWAY_URL fails when the adapter is built, not on the first send."""
    with pytest.raises(ValueError, match="unknown placeholders"):
        HttpSmsGateway(url_template="https://gw.example/send?to={to}&msg={message}")


# --- which adapters a process builds -----------------------------------------------------------


def settings_with(tmp_path: Path, env: dict[str, str]) -> Settings:
    return Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "SECRET_KEY": "k", **env})


def test_only_channels_with_credentials_get_a_sender(tmp_path: Path) -> None:
    """No provider settings: no SMS or messenger senders; Telegram's token alone gives Telegram only."""
    assert build_senders(settings_with(tmp_path, {})) == {}
    assert set(build_senders(settings_with(tmp_path, {"TELEGRAM_BOT_TOKEN": "1:x"}))) == {"telegram"}


def test_sms_goes_through_twilio_when_both_twilio_and_a_gateway_are_set(tmp_path: Path) -> None:
    """TWILIO_* wins over SMS_GATEWAY_URL; the gateway serves SMS when Twilio is not set."""
    gateway = {"SMS_GATEWAY_URL": "https://gw.example/send?to={to}&text={text}"}
    twilio = {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+15005550006"}
    assert isinstance(build_senders(settings_with(tmp_path, {**gateway, **twilio}))["sms"], TwilioSms)
    assert isinstance(build_senders(settings_with(tmp_path, gateway))["sms"], HttpSmsGateway)


def test_a_webhook_reader_exists_only_where_its_signing_secret_is_set(tmp_path: Path) -> None:
    """Telegram needs TELEGRAM_WEBHOOK_SECRET, WhatsApp WHATSAPP_APP_SECRET; Twilio and Viber sign with their token."""
    env = fake_provider_env("http://127.0.0.1:9")
    assert set(build_readers(settings_with(tmp_path, env))) == {"sms", "telegram", "whatsapp", "viber"}
    without = {k: v for k, v in env.items() if k not in ("TELEGRAM_WEBHOOK_SECRET", "WHATSAPP_APP_SECRET")}
    assert set(build_readers(settings_with(tmp_path, without))) == {"sms", "viber"}
    assert set(build_senders(settings_with(tmp_path, without))) == {"sms", "telegram", "whatsapp", "viber"}


def test_provider_tokens_never_show_in_a_settings_repr(tmp_path: Path) -> None:
    """repr() of the provider settings masks every token and secret."""
    env = fake_provider_env("http://127.0.0.1:9")
    text = repr(settings_with(tmp_path, env).providers)
    assert env["TWILIO_ACCOUNT_SID"] in text
    for name in ("TWILIO_AUTH_TOKEN", "TELEGRAM_BOT_TOKEN", "WHATSAPP_TOKEN", "WHATSAPP_APP_SECRET",
                 "VIBER_AUTH_TOKEN", "TELEGRAM_WEBHOOK_SECRET"):
        assert env[name] not in text

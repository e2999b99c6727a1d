"""Provider webhooks: signatures checked, receipts and replies parsed as each provider documents them.

Payloads here are written out as the providers' docs show them and signed by the test,
not by the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from engine.delivery.ports import WebhookBatch, WebhookReader
from engine.errors import AuthError, FieldErrors
from workers.channels.sms_gateway import HttpSmsGateway
from workers.channels.telegram import TelegramBot
from workers.channels.twilio import TwilioSms
from workers.channels.viber import ViberBot
from workers.channels.whatsapp import WhatsAppCloud, verify_subscription

TWILIO_TOKEN = "12345678901234567890123456789012"
TELEGRAM_SECRET = "telegram-secret_123"
WHATSAPP_SECRET = "whatsapp-app-secret"
VIBER_TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
GATEWAY_SECRET = "gateway-webhook-secret"
URL = "https://rapport.example/api/v1/providers/sms/ws_1?m=42"
WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3QjE2QkQ2RjM4NUQ5QUYwOEYA"

twilio = TwilioSms(account_sid="AC" + "0" * 32, auth_token=TWILIO_TOKEN, sender="+15005550006")
telegram = TelegramBot(bot_token="1:x", webhook_secret=TELEGRAM_SECRET)
whatsapp = WhatsAppCloud(token="t", phone_number_id="106540352242922", app_secret=WHATSAPP_SECRET)
viber = ViberBot(auth_token=VIBER_TOKEN)
gateway = HttpSmsGateway(url_template="https://gw.example/send", webhook_secret=GATEWAY_SECRET)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- signing as each provider does ------------------------------------------------------------


def twilio_post(params: dict[str, str], url: str = URL) -> tuple[bytes, dict[str, str]]:
    data = url + "".join(key + params[key] for key in sorted(params))
    signature = base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
    return urlencode(params).encode(), {"X-Twilio-Signature": signature}


def telegram_post(update: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    return json.dumps(update).encode(), {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}


def whatsapp_post(value: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}, **value},
        "field": "messages"}]}]}
    body = json.dumps(payload).encode()
    digest = hmac.new(WHATSAPP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": f"sha256={digest}"}


def viber_post(event: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    return body, {"X-Viber-Content-Signature": hmac.new(VIBER_TOKEN.encode(), body, hashlib.sha256).hexdigest()}


def gateway_post(payload: object) -> tuple[bytes, dict[str, str]]:
    return json.dumps(payload).encode(), {"X-Gateway-Secret": GATEWAY_SECRET}


def twilio_status(status: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": "SM1342fe1b2c904d1ab04f0fc7a58abca9", "SmsSid": "SM1342fe1b2c904d1ab04f0fc7a58abca9",
            "AccountSid": "AC" + "0" * 32, "From": "+15005550006", "To": "+14155552671", "MessageStatus": status,
            "SmsStatus": status, "ApiVersion": "2010-04-01", **extra}


def whatsapp_status(status: str, timestamp: str, **extra: object) -> dict[str, object]:
    return {"statuses": [{"id": WAMID, "status": status, "timestamp": timestamp, "recipient_id": "16505551234",
                          **extra}]}


def viber_event(event: str, timestamp: int, **extra: object) -> dict[str, object]:
    return {"event": event, "timestamp": timestamp, "chat_hostname": "SN-376_", "message_token": 4912661846655238145,
            "user_id": "01234567890A=", **extra}


def read(reader: WebhookReader, signed: tuple[bytes, dict[str, str]], url: str = URL) -> WebhookBatch:
    body, headers = signed
    return reader.read_webhook(url=url, headers=headers, body=body)


# --- the same rules for every provider ----------------------------------------------------------


@dataclass(frozen=True)
class Example:
    reader: WebhookReader
    signed: Callable[[], tuple[bytes, dict[str, str]]]
    header: str


EXAMPLES = {
    "twilio": Example(twilio, lambda: twilio_post(twilio_status("delivered")), "X-Twilio-Signature"),
    "telegram": Example(telegram, lambda: telegram_post({"update_id": 1, "message": {
        "message_id": 5, "date": 1441645532, "chat": {"id": 7, "type": "private"}, "text": "hi"}}),
        "X-Telegram-Bot-Api-Secret-Token"),
    "whatsapp": Example(whatsapp, lambda: whatsapp_post(whatsapp_status("delivered", "1750857384")),
                        "X-Hub-Signature-256"),
    "viber": Example(viber, lambda: viber_post(viber_event("delivered", 1457764197627)), "X-Viber-Content-Signature"),
    "gateway": Example(gateway, lambda: gateway_post({"id": "gw-1", "status": "delivered"}), "X-Gateway-Secret"),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_wrong_signature_is_refused(name: str) -> None:
    """A signature made with another secret raises AuthError."""
    example = EXAMPLES[name]
    body, headers = example.signed()
    with pytest.raises(AuthError):
        example.reader.read_webhook(url=URL, headers={example.header: headers[example.header][:-4] + "AAAA"},
                                    body=body)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_missing_signature_is_refused(name: str) -> None:
    """No signature header at all raises AuthError."""
    body, _headers = EXAMPLES[name].signed()
    with pytest.raises(AuthError):
        EXAMPLES[name].reader.read_webhook(url=URL, headers={}, body=body)


@pytest.mark.parametrize("name", ["twilio", "whatsapp", "viber"])
def test_a_body_changed_after_signing_is_refused(name: str) -> None:
    """The signature covers the body: one changed byte raises AuthError."""
    body, headers = EXAMPLES[name].signed()
    with pytest.raises(AuthError):
        EXAMPLES[name].reader.read_webhook(url=URL, headers=headers, body=body.replace(b"delivered", b"deliverex"))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_same_receipt_twice_has_the_same_receipt_key(name: str) -> None:
    """A provider's retry of one webhook yields the same receipt_key, so the receipts service drops it."""
    example = EXAMPLES[name]
    first, second = read(example.reader, example.signed()), read(example.reader, example.signed())
    keys = [item.receipt_key for item in [*first.deliveries, *first.inbound]]
    assert keys and keys == [item.receipt_key for item in [*second.deliveries, *second.inbound]]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_webhook_headers_are_found_whatever_their_case(name: str) -> None:
    """Proxies and WSGI servers change header case; the signature header is still found."""
    example = EXAMPLES[name]
    body, headers = example.signed()
    batch = example.reader.read_webhook(url=URL, headers={k.lower(): v for k, v in headers.items()}, body=body)
    assert batch.deliveries or batch.inbound


def test_an_unconfigured_secret_refuses_every_webhook() -> None:
    """A reader without its secret trusts nothing, not even an empty signature."""
    reader = TelegramBot(bot_token="1:x", webhook_secret="")
    with pytest.raises(AuthError):
        reader.read_webhook(url=URL, headers={"X-Telegram-Bot-Api-Secret-Token": ""}, body=b"{}")


# --- Twilio -----------------------------------------------------------------------------------


def test_twilio_statuses_map_to_receipts_keyed_by_sid_and_status() -> None:
    """delivered → delivered, sent → sent, undelivered → failed; receipt_key is '<MessageSid>:<MessageStatus>'."""
    for status, expected in (("delivered", "delivered"), ("sent", "sent"), ("undelivered", "failed")):
        [event] = read(twilio, twilio_post(twilio_status(status))).deliveries
        sid = "SM1342fe1b2c904d1ab04f0fc7a58abca9"
        assert (event.channel, event.status, event.provider_id, event.receipt_key) == ("sms", expected, sid,
                                                                                       f"{sid}:{status}")
        assert event.address == "+14155552671"


def test_twilio_unknown_destination_kills_the_number_but_a_carrier_filter_does_not() -> None:
    """ErrorCode 30005 (unknown handset) is address_dead; 30007 (carrier filtering) only fails the message."""
    [dead] = read(twilio, twilio_post(twilio_status("undelivered", ErrorCode="30005"))).deliveries
    [filtered] = read(twilio, twilio_post(twilio_status("failed", ErrorCode="30007"))).deliveries
    assert (dead.status, dead.address_dead, dead.detail) == ("failed", True, "Twilio error 30005")
    assert (filtered.status, filtered.address_dead) == ("failed", False)


def test_twilio_steps_before_sent_are_not_receipts() -> None:
    """queued and sending say nothing new: no DeliveryEvent."""
    assert read(twilio, twilio_post(twilio_status("queued"))) == WebhookBatch()


def test_twilio_signature_covers_the_url_it_was_sent_to() -> None:
    """A callback signed for another URL (e.g. another workspace) is refused."""
    body, headers = twilio_post(twilio_status("delivered"), url="https://rapport.example/api/v1/providers/sms/ws_2")
    with pytest.raises(AuthError):
        twilio.read_webhook(url=URL, headers=headers, body=body)


def test_an_inbound_twilio_sms_is_a_reply_from_the_number() -> None:
    """An incoming SMS webhook becomes InboundMessage(sender=From, text=Body, receipt_key=MessageSid)."""
    params = {"ToCountry": "US", "SmsMessageSid": "SMa1", "NumMedia": "0", "SmsSid": "SMa1", "SmsStatus": "received",
              "Body": "STOP", "To": "+15005550006", "NumSegments": "1", "MessageSid": "SMa1",
              "AccountSid": "AC" + "0" * 32, "From": "+4915112345678", "ApiVersion": "2010-04-01"}
    [inbound] = read(twilio, twilio_post(params)).inbound
    assert (inbound.channel, inbound.sender, inbound.text, inbound.receipt_key) == ("sms", "+4915112345678", "STOP",
                                                                                    "SMa1")


def test_twilio_receipts_out_of_order_keep_their_own_times() -> None:
    """'delivered' (with RawDlrDoneDate) arriving before 'sent' parses both; each has its own occurred_at."""
    before = datetime.now(UTC)
    [delivered] = read(twilio, twilio_post(twilio_status("delivered", RawDlrDoneDate="2501011205"))).deliveries
    [sent] = read(twilio, twilio_post(twilio_status("sent"))).deliveries
    assert delivered.occurred_at == at("2025-01-01T12:05:00")
    assert sent.occurred_at >= before and sent.receipt_key != delivered.receipt_key


# --- Telegram ----------------------------------------------------------------------------------


def update_with_text(update_id: int, text: str) -> dict[str, object]:
    return {"update_id": update_id, "message": {
        "message_id": 1365, "date": 1441645532, "text": text,
        "from": {"id": 1111111, "is_bot": False, "first_name": "Ada", "username": "ada", "language_code": "en"},
        "chat": {"id": 1111111, "first_name": "Ada", "username": "ada", "type": "private"}}}


def test_a_telegram_message_is_inbound_from_its_chat_with_the_senders_name() -> None:
    """message.text from chat.id → InboundMessage; receipt_key is update:<update_id>; commands pass as text."""
    [inbound] = read(telegram, telegram_post(update_with_text(10000, "/start c_8f3a"))).inbound
    assert (inbound.channel, inbound.sender, inbound.text) == ("telegram", "1111111", "/start c_8f3a")
    assert (inbound.receipt_key, inbound.sender_name) == ("update:10000", "Ada")
    assert inbound.occurred_at == datetime.fromtimestamp(1441645532, UTC)


def test_a_user_blocking_the_bot_arrives_as_stop() -> None:
    """my_chat_member with new status 'kicked' (the user blocked the bot) becomes the text /stop."""
    update = {"update_id": 10001, "my_chat_member": {
        "chat": {"id": 1111111, "type": "private"}, "from": {"id": 1111111, "is_bot": False, "first_name": "Ada"},
        "date": 1441645600, "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True}},
        "new_chat_member": {"status": "kicked", "until_date": 0, "user": {"id": 1, "is_bot": True}}}}
    [inbound] = read(telegram, telegram_post(update)).inbound
    assert (inbound.sender, inbound.text, inbound.receipt_key) == ("1111111", "/stop", "update:10001")


def test_telegram_updates_we_do_not_act_on_are_empty() -> None:
    """An edited message or a sticker yields nothing."""
    assert read(telegram, telegram_post({"update_id": 3, "edited_message": {"text": "x"}})) == WebhookBatch()
    sticker = update_with_text(4, "")
    del sticker["message"]["text"]  # type: ignore[attr-defined]
    assert read(telegram, telegram_post(sticker)) == WebhookBatch()


def test_a_signed_body_that_is_not_json_is_a_field_error() -> None:
    """Correct secret but a broken body: FieldErrors (422), not a crash."""
    with pytest.raises(FieldErrors):
        telegram.read_webhook(url=URL, headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}, body=b"{oops")


# --- WhatsApp -----------------------------------------------------------------------------------


def test_whatsapp_statuses_map_to_receipts() -> None:
    """sent/delivered/read/failed → sent/delivered/opened/failed, keyed '<wamid>:<status>', timed by timestamp."""
    for status, expected in (("sent", "sent"), ("delivered", "delivered"), ("read", "opened")):
        [event] = read(whatsapp, whatsapp_post(whatsapp_status(status, "1750857384"))).deliveries
        assert (event.channel, event.status, event.provider_id, event.receipt_key) == (
            "whatsapp", expected, WAMID, f"{WAMID}:{status}")
        assert (event.occurred_at, event.address) == (datetime.fromtimestamp(1750857384, UTC), "16505551234")


def test_a_whatsapp_failure_for_an_undeliverable_number_kills_the_address() -> None:
    """failed with error 131026 is address_dead; failed with 131049 (ecosystem limit) is not."""
    dead = whatsapp_status("failed", "1750857390", errors=[{"code": 131026, "title": "Message undeliverable"}])
    limited = whatsapp_status("failed", "1750857391", errors=[{"code": 131049, "title": "Not delivered to maintain "
                                                                                         "healthy ecosystem"}])
    [event_dead] = read(whatsapp, whatsapp_post(dead)).deliveries
    [event_limited] = read(whatsapp, whatsapp_post(limited)).deliveries
    assert (event_dead.status, event_dead.address_dead, event_dead.detail) == ("failed", True,
                                                                               "131026: Message undeliverable")
    assert (event_limited.status, event_limited.address_dead) == ("failed", False)


def test_whatsapp_receipts_out_of_order_keep_their_own_times() -> None:
    """A 'read' posted before 'delivered' parses both, each at its own timestamp."""
    read_first = read(whatsapp, whatsapp_post(whatsapp_status("read", "1750857500"))).deliveries[0]
    delivered = read(whatsapp, whatsapp_post(whatsapp_status("delivered", "1750857400"))).deliveries[0]
    assert read_first.occurred_at - delivered.occurred_at == timedelta(seconds=100)


def test_a_whatsapp_message_is_inbound_with_the_profile_name() -> None:
    """value.messages[] (from, id, timestamp, text.body) → InboundMessage; the name comes from value.contacts."""
    wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    value = {"contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
             "messages": [{"from": "16505551234", "id": wamid, "timestamp": "1749416383", "type": "text",
                           "text": {"body": "status?"}}]}
    [inbound] = read(whatsapp, whatsapp_post(value)).inbound
    assert (inbound.channel, inbound.sender, inbound.text, inbound.sender_name) == (
        "whatsapp", "16505551234", "status?", "Sheena Nelson")
    assert inbound.receipt_key == wamid


def test_the_whatsapp_subscription_handshake_echoes_the_challenge_only_for_our_token() -> None:
    """hub.mode=subscribe with the right hub.verify_token returns hub.challenge; anything else returns None."""
    params = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "1158201444"}
    assert verify_subscription(params, "vt") == "1158201444"
    assert verify_subscription({**params, "hub.verify_token": "other"}, "vt") is None
    assert verify_subscription({**params, "hub.mode": "unsubscribe"}, "vt") is None
    assert verify_subscription(params, "") is None


# --- Viber ---------------------------------------------------------------------------------------


def test_viber_delivered_seen_and_failed_are_receipts_timed_in_milliseconds() -> None:
    """delivered → delivered, seen → opened, failed → failed; receipt_key '<event>:<token>:<timestamp>'."""
    for kind, expected in (("delivered", "delivered"), ("seen", "opened"), ("failed", "failed")):
        [event] = read(viber, viber_post(viber_event(kind, 1457764197627))).deliveries
        assert (event.channel, event.status, event.provider_id) == ("viber", expected, "4912661846655238145")
        assert event.receipt_key == f"{kind}:4912661846655238145:1457764197627"
        assert event.occurred_at == datetime(2016, 3, 12, 6, 29, 57, 627000, tzinfo=UTC)


def test_viber_receipts_out_of_order_keep_their_own_times() -> None:
    """'seen' posted before 'delivered' parses both with their own times."""
    [seen] = read(viber, viber_post(viber_event("seen", 1457764199000))).deliveries
    [delivered] = read(viber, viber_post(viber_event("delivered", 1457764198000))).deliveries
    assert seen.occurred_at - delivered.occurred_at == timedelta(seconds=1)


def test_a_viber_message_is_inbound_and_unsubscribing_is_stop() -> None:
    """event message → InboundMessage from sender.id; event unsubscribed → the text /stop from user_id."""
    message = {"event": "message", "timestamp": 1457764197627, "chat_hostname": "SN-376_",
               "message_token": 4912661846655238145, "silent": False,
               "sender": {"id": "01234567890A=", "name": "John McClane", "language": "en", "country": "UK",
                          "api_version": 1},
               "message": {"type": "text", "text": "статус", "tracking_data": "tracking data"}}
    [inbound] = read(viber, viber_post(message)).inbound
    assert (inbound.sender, inbound.text, inbound.sender_name) == ("01234567890A=", "статус", "John McClane")
    [stop] = read(viber, viber_post({"event": "unsubscribed", "timestamp": 1457764197700, "chat_hostname": "SN-376_",
                                     "user_id": "01234567890A=", "message_token": 4912661846655238146})).inbound
    assert (stop.sender, stop.text) == ("01234567890A=", "/stop")


def test_viber_webhook_check_and_subscriptions_yield_nothing() -> None:
    """Viber's 'webhook' check event and 'subscribed' change nothing."""
    check = {"event": "webhook", "timestamp": 1457764197627, "message_token": 1}
    assert read(viber, viber_post(check)) == WebhookBatch()
    subscribed = {"event": "subscribed", "timestamp": 1457764197627, "message_token": 2,
                  "user": {"id": "01234567890A=", "name": "John"}}
    assert read(viber, viber_post(subscribed)) == WebhookBatch()


# --- generic gateway --------------------------------------------------------------------------------


def test_gateway_receipts_and_replies_follow_the_documented_json() -> None:
    """A list of receipts and a reply: statuses map, 'dead' marks the number, replies are inbound."""
    batch = read(gateway, gateway_post([
        {"id": "gw-1", "status": "delivered", "timestamp": 1750857384, "to": "+4915112345678"},
        {"id": "gw-2", "status": "failed", "error": "absent subscriber", "dead": True},
        {"id": "gw-in-1", "from": "+4915112345678", "text": "STOP", "timestamp": 1750857390},
    ]))
    delivered, failed = batch.deliveries
    assert (delivered.status, delivered.provider_id, delivered.receipt_key) == ("delivered", "gw-1", "gw-1:delivered")
    assert (failed.status, failed.address_dead, failed.detail) == ("failed", True, "absent subscriber")
    [reply] = batch.inbound
    assert (reply.sender, reply.text, reply.receipt_key) == ("+4915112345678", "STOP", "gateway:gw-in-1")


def test_a_gateway_receipt_without_an_id_is_a_field_error() -> None:
    """Each receipt must name the gateway's message id."""
    with pytest.raises(FieldErrors):
        read(gateway, gateway_post([{"status": "delivered"}]))


def test_a_viber_conversation_opened_from_our_deep_link_links_the_contact() -> None:
    """conversation_started with our context token reads as "/start <token>"; without one it is nothing."""
    started = viber_event("conversation_started", 1457764197627, type="open", context="tok123",
                          user={"id": "01234567890A=", "name": "John McClane"}, subscribed=False)
    [message] = read(viber, viber_post(started)).inbound
    assert (message.channel, message.sender, message.text) == ("viber", "01234567890A=", "/start tok123")
    plain = viber_event("conversation_started", 1457764197627, type="open", user={"id": "01234567890A="})
    assert read(viber, viber_post(plain)) == WebhookBatch()

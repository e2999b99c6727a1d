"""The fake providers answer like the real ones, play injected faults, fill the outbox and post receipts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery.ports import Button
from engine.errors import TransientSendError
from engine.store.models import OutboxCapture
from tests.conftest import FakeClock, Shop
from tests.providers import (  # noqa: F401
    WebhookReceiver,
    fake_providers,
    message_to,
    webhook_receiver,
)
from workers.channels.telegram import TelegramBot
from workers.channels.twilio import TwilioSms
from workers.channels.viber import ViberBot
from workers.channels.whatsapp import WhatsAppCloud
from workers.dev.fake_providers import FakeProviders
from workers.supervisor import free_port


def twilio_url(fake: FakeProviders) -> str:
    return f"{fake.url}/2010-04-01/Accounts/{fake.credentials.twilio_account_sid}/Messages.json"


def twilio_auth(fake: FakeProviders) -> tuple[str, str]:
    return fake.credentials.twilio_account_sid, fake.credentials.twilio_auth_token


def whatsapp_url(fake: FakeProviders, phone_number_id: str | None = None) -> str:
    return f"{fake.url}/v21.0/{phone_number_id or fake.credentials.whatsapp_phone_number_id}/messages"


# --- the providers' own error bodies -------------------------------------------------------------


def test_twilio_refuses_wrong_credentials_with_its_20003_body(fake_providers: FakeProviders) -> None:  # noqa: F811
    """A wrong auth token is HTTP 401 with Twilio's error 20003 body."""
    response = requests.post(twilio_url(fake_providers), auth=(fake_providers.credentials.twilio_account_sid, "nope"),
                             data={"To": "+14155552671", "From": "+15005550006", "Body": "hi"}, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"code": 20003, "detail": "Your AccountSid or AuthToken was incorrect.",
                               "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003",
                               "status": 401}


def test_twilio_validates_the_message_like_twilio(fake_providers: FakeProviders) -> None:  # noqa: F811
    """No To is 21604, no Body is 21602, a magic invalid number is 21211: 400 with code, message, more_info."""
    def post(**form: str) -> requests.Response:
        return requests.post(twilio_url(fake_providers), auth=twilio_auth(fake_providers),
                             data={"From": "+15005550006", **form}, timeout=5)

    missing_to, missing_body, invalid = post(Body="hi"), post(To="+14155552671"), post(To="+15005550001", Body="hi")
    assert [r.status_code for r in (missing_to, missing_body, invalid)] == [400, 400, 400]
    assert missing_to.json()["code"] == 21604 and missing_body.json()["code"] == 21602
    assert invalid.json() == {"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.",
                              "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}


def test_twilio_accepts_a_message_with_a_message_sid_and_queued_status(fake_providers: FakeProviders) -> None:  # noqa: F811
    """A good request is 201 with sid SM…, status queued and the segment count."""
    response = requests.post(twilio_url(fake_providers), auth=twilio_auth(fake_providers),
                             data={"To": "+14155552671", "From": "+15005550006", "Body": "x" * 161}, timeout=5)
    body = response.json()
    assert response.status_code == 201
    assert body["sid"].startswith("SM") and len(body["sid"]) == 34
    assert (body["status"], body["num_segments"], body["to"]) == ("queued", "2", "+14155552671")


def test_telegram_answers_errors_with_ok_false_bodies(fake_providers: FakeProviders) -> None:  # noqa: F811
    """Wrong token → 401 Unauthorized, unknown method → 404 Not Found, no chat_id → 400 'chat_id is empty'."""
    token = fake_providers.credentials.telegram_bot_token
    wrong = requests.post(f"{fake_providers.url}/bot1:wrong/sendMessage", json={"chat_id": 1, "text": "x"}, timeout=5)
    unknown = requests.post(f"{fake_providers.url}/bot{token}/sendTelepathy", json={}, timeout=5)
    no_chat = requests.post(f"{fake_providers.url}/bot{token}/sendMessage", json={"text": "x"}, timeout=5)
    assert (wrong.status_code, wrong.json()) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    assert (unknown.status_code, unknown.json()["description"]) == (404, "Not Found")
    assert (no_chat.status_code, no_chat.json()["description"]) == (400, "Bad Request: chat_id is empty")


def test_telegram_refuses_text_buttons_in_an_inline_keyboard(fake_providers: FakeProviders) -> None:  # noqa: F811
    """An inline button without url or callback_data is a 400, as Telegram answers it."""
    token = fake_providers.credentials.telegram_bot_token
    response = requests.post(f"{fake_providers.url}/bot{token}/sendMessage", timeout=5, json={
        "chat_id": 5, "text": "x", "reply_markup": {"inline_keyboard": [[{"text": "no link"}]]}})
    assert response.status_code == 400
    assert response.json()["description"].startswith("Bad Request: can't parse inline keyboard button")


def test_whatsapp_answers_graph_api_errors(fake_providers: FakeProviders) -> None:  # noqa: F811
    """Wrong token → 401 OAuthException 190; no 'to' → (#100); unknown phone number id → 100 with subcode 33."""
    good = {"Authorization": f"Bearer {fake_providers.credentials.whatsapp_token}"}
    text = {"messaging_product": "whatsapp", "type": "text", "text": {"body": "hi"}}
    wrong = requests.post(whatsapp_url(fake_providers), headers={"Authorization": "Bearer x"},
                          json={**text, "to": "14155552671"}, timeout=5)
    no_to = requests.post(whatsapp_url(fake_providers), headers=good, json=text, timeout=5)
    unknown = requests.post(whatsapp_url(fake_providers, "999"), headers=good, json={**text, "to": "1"}, timeout=5)
    assert wrong.status_code == 401
    assert {k: wrong.json()["error"][k] for k in ("type", "code")} == {"type": "OAuthException", "code": 190}
    assert (no_to.status_code, no_to.json()["error"]["message"]) == (400, "(#100) The parameter to is required.")
    assert (unknown.json()["error"]["code"], unknown.json()["error"]["error_subcode"]) == (100, 33)
    assert all("fbtrace_id" in r.json()["error"] for r in (wrong, no_to, unknown))


def test_viber_reports_errors_in_the_status_field_of_a_200(fake_providers: FakeProviders) -> None:  # noqa: F811
    """Wrong token → status 2 invalidAuthToken; no receiver → status 4 missingData; both HTTP 200."""
    url = f"{fake_providers.url}/pa/send_message"
    message = {"receiver": "01234567890A=", "sender": {"name": "Shop"}, "type": "text", "text": "hi"}
    wrong = requests.post(url, headers={"X-Viber-Auth-Token": "x"}, json=message, timeout=5)
    missing = requests.post(url, headers={"X-Viber-Auth-Token": fake_providers.credentials.viber_auth_token},
                            json={**message, "receiver": ""}, timeout=5)
    assert (wrong.status_code, wrong.json()["status"], wrong.json()["status_message"]) == (200, 2, "invalidAuthToken")
    assert (missing.status_code, missing.json()["status"], missing.json()["status_message"]) == (200, 4, "missingData")


# --- fault injection -------------------------------------------------------------------------------


def test_fail_next_plays_the_given_number_of_errors_then_accepts(fake_providers: FakeProviders) -> None:  # noqa: F811
    """fail_next(times=2): two Twilio 500s with code 20500, then a 201."""
    fake_providers.fail_next("twilio", status=500, times=2)
    statuses = [requests.post(twilio_url(fake_providers), auth=twilio_auth(fake_providers), timeout=5,
                              data={"To": "+14155552671", "From": "+15005550006", "Body": "hi"}) for _ in range(3)]
    assert [r.status_code for r in statuses] == [500, 500, 201]
    assert statuses[0].json()["code"] == 20500
    assert len(fake_providers.messages_for("twilio")) == 1


def test_rate_limits_speak_each_providers_dialect(fake_providers: FakeProviders) -> None:  # noqa: F811
    """Twilio: 429, code 20429, Retry-After; Telegram: 429 with parameters.retry_after; Viber: status 12."""
    for provider in ("twilio", "telegram", "viber"):
        fake_providers.rate_limit_next(provider, retry_after=5)
    twilio = requests.post(twilio_url(fake_providers), auth=twilio_auth(fake_providers), timeout=5,
                           data={"To": "+14155552671", "From": "+15005550006", "Body": "hi"})
    telegram = requests.post(f"{fake_providers.url}/bot{fake_providers.credentials.telegram_bot_token}/sendMessage",
                             json={"chat_id": 5, "text": "x"}, timeout=5)
    viber = requests.post(f"{fake_providers.url}/pa/send_message", json={}, timeout=5,
                          headers={"X-Viber-Auth-Token": fake_providers.credentials.viber_auth_token})
    assert (twilio.status_code, twilio.json()["code"], twilio.headers["Retry-After"]) == (429, 20429, "5")
    assert telegram.json() == {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 5",
                               "parameters": {"retry_after": 5}}
    assert (viber.status_code, viber.json()["status"]) == (200, 12)


def test_faults_and_messages_can_be_steered_over_http(fake_providers: FakeProviders) -> None:  # noqa: F811
    """POST /_fake/faults queues a fault; GET /_fake/messages lists what was accepted; DELETE clears it."""
    control = f"{fake_providers.url}/_fake"
    assert requests.post(f"{control}/faults", json={"provider": "viber", "kind": "error", "status": 502},
                         timeout=5).status_code == 201
    assert requests.post(f"{control}/faults", json={"provider": "nope"}, timeout=5).status_code == 422
    c = fake_providers.credentials
    viber = ViberBot(auth_token=c.viber_auth_token, api_url=fake_providers.url)
    with pytest.raises(TransientSendError, match="502"):
        viber.send(message_to("01234567890A="))
    viber.send(message_to("01234567890A="))

    listed = requests.get(f"{control}/messages", params={"provider": "viber"}, timeout=5).json()["messages"]
    assert [(m["to"], m["message_id"], m["workspace_id"]) for m in listed] == [("01234567890A=", 4242,
                                                                                "ws-conformance")]
    requests.delete(f"{control}/messages", timeout=5)
    assert fake_providers.messages == []


# --- embedded mode: the outbox ---------------------------------------------------------------------------


def test_embedded_fakes_write_every_accepted_message_to_the_outbox(
    sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """With a database, each accepted message is an outbox row: channel, recipient, text, ids and buttons."""
    with FakeProviders(sessions=sessions, clock=clock) as fake:
        c = fake.credentials
        button = (Button("Open cart", "https://shop.example/c/1"),)
        TelegramBot(bot_token=c.telegram_bot_token, api_url=fake.url).send(
            message_to("4711", workspace_id=shop.id, message_id=17, text="Your cart", buttons=button))
        TwilioSms(account_sid=c.twilio_account_sid, auth_token=c.twilio_auth_token, sender=c.twilio_from,
                  api_url=fake.url).send(message_to("+14155552671", workspace_id=shop.id, message_id=18, text="SMS"))

    with sessions() as session:
        rows = session.scalars(select(OutboxCapture).where(OutboxCapture.workspace_id == shop.id)
                               .order_by(OutboxCapture.id)).all()
        assert [(r.channel, r.to_address, r.text, r.message_id, r.received_at) for r in rows] == [
            ("telegram", "4711", "Your cart", 17, clock()), ("sms", "+14155552671", "SMS", 18, clock())]
        assert rows[0].meta["buttons"] == [{"text": "Open cart", "url": "https://shop.example/c/1"}]
        assert rows[1].meta["from"] == c.twilio_from


# --- receipts and inbound messages posted back to us ----------------------------------------------------


def test_the_fakes_post_signed_receipts_our_readers_accept(webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    """Twilio posts sent+delivered to StatusCallback; WhatsApp sent+delivered and Viber delivered to our route."""
    with FakeProviders(callback_url=webhook_receiver.url, callback_delay=0) as fake:
        c = fake.credentials
        twilio = TwilioSms(account_sid=c.twilio_account_sid, auth_token=c.twilio_auth_token, sender=c.twilio_from,
                           api_url=fake.url)
        whatsapp = WhatsAppCloud(token=c.whatsapp_token, phone_number_id=c.whatsapp_phone_number_id,
                                 app_secret=c.whatsapp_app_secret, api_url=fake.url)
        viber = ViberBot(auth_token=c.viber_auth_token, api_url=fake.url)
        sms_receipt = twilio.send(message_to("+14155552671", workspace_id="ws_1",
                                             status_callback=f"{webhook_receiver.url}/twilio-status?m=4242"))
        wa_receipt = whatsapp.send(message_to("+14155552671", workspace_id="ws_1"))
        viber_receipt = viber.send(message_to("01234567890A=", workspace_id="ws_1"))
        received = webhook_receiver.wait_for(5)

    readers = {"/twilio-status": twilio, "/api/v1/providers/whatsapp/ws_1": whatsapp,
               "/api/v1/providers/viber/ws_1": viber}
    events = [event for r in received
              for event in readers[r.path].read_webhook(url=r.url, headers=r.headers, body=r.body).deliveries]
    assert sorted((e.channel, e.status, e.provider_id) for e in events) == sorted([
        ("sms", "sent", sms_receipt.provider_id), ("sms", "delivered", sms_receipt.provider_id),
        ("whatsapp", "sent", wa_receipt.provider_id), ("whatsapp", "delivered", wa_receipt.provider_id),
        ("viber", "delivered", viber_receipt.provider_id)])


@pytest.mark.parametrize("provider,sender", [("twilio", "+4915112345678"), ("telegram", "1111111"),
                                             ("whatsapp", "4915112345678"), ("viber", "01234567890A=")])
def test_inbound_plays_a_user_writing_to_us_in_the_providers_format(
    webhook_receiver: WebhookReceiver, provider: str, sender: str  # noqa: F811
) -> None:
    """fake.inbound() posts a signed message our reader turns into InboundMessage(sender, text)."""
    with FakeProviders(callback_url=webhook_receiver.url) as fake:
        status = fake.inbound(provider, workspace_id="ws_1", sender=sender, text="STOP", sender_name="Ada")
    c = fake.credentials
    readers = {
        "twilio": TwilioSms(account_sid=c.twilio_account_sid, auth_token=c.twilio_auth_token),
        "telegram": TelegramBot(bot_token=c.telegram_bot_token, webhook_secret=c.telegram_webhook_secret),
        "whatsapp": WhatsAppCloud(token="", phone_number_id="", app_secret=c.whatsapp_app_secret),
        "viber": ViberBot(auth_token=c.viber_auth_token),
    }
    [request] = webhook_receiver.requests
    [inbound] = readers[provider].read_webhook(url=request.url, headers=request.headers, body=request.body).inbound
    assert status == 200
    assert (inbound.sender, inbound.text) == (sender, "STOP")


def test_the_fake_providers_command_serves_until_terminated() -> None:
    """`rapport fake-providers --port N` answers /_fake/health and exits 0 on SIGTERM."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "fake-providers", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert requests.get(f"http://127.0.0.1:{port}/_fake/health", timeout=1).json() == {"ok": True}
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

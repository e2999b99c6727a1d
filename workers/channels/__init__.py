"""SMS and messenger adapters, built from the process settings.

A channel is available when its credentials are set. SMS goes through Twilio when
TWILIO_ACCOUNT_SID is set, else through the generic HTTP gateway when SMS_GATEWAY_URL
is. A webhook reader needs the secret its provider signs with; a channel without one
accepts no webhooks (the route answers as for an unknown provider) rather than
trusting unsigned receipts. Email is built elsewhere (workers/channels/email/smtp.py).
"""

from __future__ import annotations

from engine.delivery.ports import MessageSender, WebhookReader
from engine.settings import ProviderSettings, Settings
from workers.channels.sms_gateway import HttpSmsGateway
from workers.channels.telegram import TelegramBot
from workers.channels.twilio import TwilioSms
from workers.channels.viber import ViberBot
from workers.channels.whatsapp import WhatsAppCloud, verify_subscription

__all__ = ["build_readers", "build_senders", "verify_subscription"]


def _sms(p: ProviderSettings) -> TwilioSms | HttpSmsGateway | None:
    if p.twilio_account_sid and p.twilio_auth_token:
        return TwilioSms(account_sid=p.twilio_account_sid, auth_token=p.twilio_auth_token, sender=p.twilio_from,
                         api_url=p.twilio_api_url)
    if p.sms_gateway_url:
        return HttpSmsGateway(url_template=p.sms_gateway_url, method=p.sms_gateway_method, token=p.sms_gateway_token,
                              id_path=p.sms_gateway_id_path, webhook_secret=p.sms_gateway_webhook_secret)
    return None


def _telegram(p: ProviderSettings) -> TelegramBot | None:
    if not p.telegram_bot_token and not p.telegram_webhook_secret:
        return None
    return TelegramBot(bot_token=p.telegram_bot_token, webhook_secret=p.telegram_webhook_secret,
                       api_url=p.telegram_api_url)


def _whatsapp(p: ProviderSettings) -> WhatsAppCloud | None:
    if not (p.whatsapp_token and p.whatsapp_phone_number_id) and not p.whatsapp_app_secret:
        return None
    return WhatsAppCloud(token=p.whatsapp_token, phone_number_id=p.whatsapp_phone_number_id,
                         app_secret=p.whatsapp_app_secret, api_url=p.whatsapp_api_url)


def _viber(p: ProviderSettings) -> ViberBot | None:
    if not p.viber_auth_token:
        return None
    return ViberBot(auth_token=p.viber_auth_token, sender_name=p.viber_sender_name, api_url=p.viber_api_url)


def build_senders(settings: Settings) -> dict[str, MessageSender]:
    """channel -> adapter, for the channels whose send credentials are configured."""
    p = settings.providers
    senders: dict[str, MessageSender] = {}
    sms = _sms(p)
    if sms is not None:
        senders["sms"] = sms
    telegram = _telegram(p)
    if telegram is not None and p.telegram_bot_token:
        senders["telegram"] = telegram
    whatsapp = _whatsapp(p)
    if whatsapp is not None and p.whatsapp_token and p.whatsapp_phone_number_id:
        senders["whatsapp"] = whatsapp
    viber = _viber(p)
    if viber is not None:
        senders["viber"] = viber
    return senders


def build_readers(settings: Settings) -> dict[str, WebhookReader]:
    """channel -> webhook reader, for the channels whose signing secret is configured."""
    p = settings.providers
    readers: dict[str, WebhookReader] = {}
    sms = _sms(p)
    if isinstance(sms, TwilioSms) or (isinstance(sms, HttpSmsGateway) and p.sms_gateway_webhook_secret):
        readers["sms"] = sms
    telegram = _telegram(p)
    if telegram is not None and p.telegram_webhook_secret:
        readers["telegram"] = telegram
    whatsapp = _whatsapp(p)
    if whatsapp is not None and p.whatsapp_app_secret:
        readers["whatsapp"] = whatsapp
    viber = _viber(p)
    if viber is not None:
        readers["viber"] = viber
    return readers

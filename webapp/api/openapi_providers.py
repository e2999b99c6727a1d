"""OpenAPI paths of the providers' webhooks and the contacts' messenger links.

Describes webapp/api/provider_webhooks.py, engine/tracking/inbound.py and
engine/links/messenger.py; merged into webapp/api/openapi.py's SPEC.
"""

from __future__ import annotations

from typing import Any

from engine.channels import TEXT_CHANNELS

PROVIDER_CHANNELS = list(TEXT_CHANNELS)
ERROR = {"type": "object", "required": ["error", "message"], "properties": {
    "error": {"type": "string"}, "message": {"type": "string"}}}


def _answer(description: str, schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def _error(description: str, code: str) -> dict[str, Any]:
    return _answer(description, {"allOf": [ERROR, {"properties": {"error": {"const": code}}}]})


WORKSPACE_ID = {"name": "workspace_id", "in": "path", "required": True, "schema": {"type": "string"},
                "description": "The workspace's id, e.g. `ws_3f9a0c6e1b7d4a2f`."}
CHANNEL = {"name": "channel", "in": "path", "required": True, "schema": {"enum": PROVIDER_CHANNELS},
           "description": "`sms` (Twilio), `telegram`, `whatsapp` (Cloud API) or `viber`."}
SIGNATURES = (
    "Verified per provider, with the secrets from the environment: sms by `X-Twilio-Signature` "
    "(HMAC-SHA1 with the auth token over the public URL — BASE_URL + path + query — followed by the "
    "sorted form fields), telegram by `X-Telegram-Bot-Api-Secret-Token` (the secret_token given to "
    "setWebhook), whatsapp by `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret), "
    "viber by `X-Viber-Content-Signature` (HMAC-SHA256 of the raw body with the bot token)."
)
INBOUND = (
    "Delivery receipts move the message they name only forward (sent → delivered → opened → clicked → "
    "replied; bounced/failed/complained are final), however late or out of order; a repeat changes "
    "nothing. Each contact message becomes a `message_received` event on the contact (properties "
    "`channel`, `text`, `keyword` — trimmed, case-folded —, `sender`, `provider_message_id`, and "
    "`command` for stop/start commands), found by phone (sms, whatsapp) or messenger id; an unknown "
    "sender gets a contact `<channel>:<sender>`. SMS/WhatsApp keywords STOP, STOPALL, UNSUBSCRIBE, "
    "CANCEL, END, QUIT, СТОП, ОТПИСАТЬСЯ opt out of that channel and START, UNSTOP, СТАРТ opt back in; "
    "Telegram/Viber `/stop` opts out, `/start` opts in and `/start <token>` (from the contact's "
    "messenger link) links the chat to that contact. A token that does not verify links nothing. "
    "`last_inbound_at[channel]` is updated (WhatsApp's 24-hour window)."
)

PROVIDER_PATHS: dict[str, Any] = {
    "/api/v1/providers/{channel}/{workspace_id}": {"parameters": [CHANNEL, WORKSPACE_ID], "post": {
        "operationId": "postProviderWebhook", "tags": ["webhooks"], "security": [],
        "summary": "Receive a provider's webhook: receipts and contacts' messages",
        "description": f"Point the provider's status callback / webhook here. {SIGNATURES} {INBOUND}",
        "requestBody": {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": {
                "type": "object", "description": "Twilio: a status callback or an incoming message."}},
            "application/json": {"schema": {
                "type": "object", "description": "Telegram Update, WhatsApp change notification, Viber callback."}},
        }},
        "responses": {
            "200": {"description": "Applied, or a repeat that changed nothing. Twilio (sms) gets an empty "
                                   "TwiML document, `<Response/>` (send no reply); the others get JSON: "
                                   "`{\"ok\": true}` or the answer the provider expects.",
                    "content": {"text/xml": {"schema": {"type": "string"}},
                                "application/json": {"schema": {"type": "object"}}}},
            "400": _error("The body is not the provider's format. Nothing is stored.", "malformed_webhook"),
            "403": _error("The signature header is missing or does not match. Nothing is stored.", "forbidden"),
            "404": _error("No such workspace, or no adapter is configured for the channel.", "not_found"),
            "413": _error("The request body is larger than 1 MiB (1024 KiB).", "request_entity_too_large"),
            "500": _error("Applying it failed; nothing is stored and the provider should retry.",
                          "internal_error"),
        },
    }},
    "/api/v1/providers/whatsapp/{workspace_id}": {"parameters": [WORKSPACE_ID], "get": {
        "operationId": "verifyWhatsappWebhook", "tags": ["webhooks"], "security": [],
        "summary": "WhatsApp's subscription handshake",
        "description": "Meta calls this when the webhook is set up: with `hub.mode=subscribe` and "
                       "`hub.verify_token` equal to WHATSAPP_VERIFY_TOKEN, `hub.challenge` is echoed.",
        "parameters": [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                       for name in ("hub.mode", "hub.verify_token", "hub.challenge")],
        "responses": {
            "200": _answer("The challenge, echoed.", {"type": "string"}, "text/plain"),
            "403": _error("Wrong or missing verify token (or none configured).", "forbidden"),
            "404": _error("No such workspace.", "not_found"),
        },
    }},
    "/api/v1/contacts/{external_id}/messenger-links": {"get": {
        "operationId": "getMessengerLinks", "tags": ["contacts"], "security": [{"ApiKey": []}],
        "summary": "Deep links that connect the contact's Telegram or Viber chat",
        "description": "Show these to the contact (order page, email): opening one and pressing Start "
                       "links their chat, so messages can reach them there. Links carry a signed token "
                       "naming the contact; they do not expire. `null` where the installation has no "
                       "bot (TELEGRAM_BOT_USERNAME, VIBER_CHAT_URI).",
        "parameters": [{"name": "external_id", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": "The contact's external_id. May contain slashes."}],
        "responses": {
            "200": _answer("The links.", {"type": "object", "required": ["telegram", "viber"], "properties": {
                "telegram": {"type": ["string", "null"], "examples": ["https://t.me/shop_bot?start=AQAAAA"]},
                "viber": {"type": ["string", "null"],
                          "examples": ["viber://pa?chatURI=shop&context=AQAAAA"]}}}),
            "401": _error("Missing or invalid API key.", "unauthorized"),
            "404": _error("No contact with this external_id in the caller's workspace.", "not_found"),
        },
    }},
}

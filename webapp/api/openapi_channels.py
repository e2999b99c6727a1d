"""OpenAPI paths of the channels and delivery-settings API (webapp/api/channels.py) and /metrics."""

from __future__ import annotations

from typing import Any

from engine.channels import CHANNELS

CHANNEL = {"name": "channel", "in": "path", "required": True, "schema": {"enum": list(CHANNELS)}}
ERRORS = {"type": "object", "required": ["error", "message"], "properties": {
    "error": {"type": "string"}, "message": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "field": {"type": "string", "description": "Path of the bad field, e.g. quiet_hours.sms.start"},
        "message": {"type": "string"}}}}}}

CHANNEL_STATUS = {"type": "object", "properties": {
    "channel": {"enum": list(CHANNELS)},
    "configured": {"type": "boolean", "description": "This deployment has credentials for the channel's adapter "
                                                     "(SMTP_URL; TWILIO_ACCOUNT_SID or SMS_GATEWAY_URL; "
                                                     "TELEGRAM_BOT_TOKEN; WHATSAPP_TOKEN; VIBER_AUTH_TOKEN)."},
    "state": {"enum": ["closed", "open", "half_open"],
              "description": "The channel's circuit breaker. closed: messages go out. open: its messages go to "
                             "their step's fallback channel, or without one are held (not failed), after "
                             "RAPPORT_CHANNEL_PAUSE_AFTER (default 10) failures in a row that retries did not clear "
                             "(a message's first transient failure does not count), or because a person paused it. "
                             "half_open: after a cool-down (1 min, doubling after each failed probe up to 30 min) one "
                             "message probes the provider; its success closes the breaker and sends the held "
                             "messages at once, its failure re-opens it."},
    "paused": {"type": "boolean", "description": "Messages are held or sent by their fallback: state is not closed."},
    "paused_by": {"enum": ["breaker", "person", None],
                  "description": "Who paused it: the breaker (it probes and closes by itself) or a person (only a "
                                 "resume ends it)."},
    "since": {"type": ["string", "null"], "format": "date-time", "description": "When it entered its state."},
    "paused_at": {"type": ["string", "null"], "format": "date-time"},
    "next_probe_at": {"type": ["string", "null"], "format": "date-time",
                      "description": "open: when a probe may go; half_open: when a probe with no answer is "
                                     "replaced; null otherwise."},
    "consecutive_failures": {"type": "integer", "minimum": 0,
                             "description": "Counted failures in a row (a success resets it)."},
    "opened_total": {"type": "integer", "minimum": 0, "description": "Times the breaker opened by itself."},
    "last_error": {"type": ["string", "null"]},
    "messages_24h": {"type": "object", "additionalProperties": {"type": "integer"},
                     "description": "Messages created in the last 24 hours, by status."},
}}

TIME = {"type": "string", "pattern": r"^([01]?\d|2[0-3]):[0-5]\d$", "examples": ["21:00"]}
WINDOW = {"type": ["object", "null"], "additionalProperties": False, "required": ["start", "end"],
          "properties": {"start": TIME, "end": TIME},
          "description": "Local time in the contact's time zone; start after end runs over midnight. null: none."}
CAP = {"type": ["object", "null"], "additionalProperties": False, "required": ["max", "days"], "properties": {
    "max": {"type": "integer", "minimum": 1, "maximum": 1000},
    "days": {"type": "integer", "minimum": 1, "maximum": 365}}}
DELIVERY_SETTINGS = {"type": "object", "additionalProperties": False, "properties": {
    "quiet_hours": {"type": ["object", "null"], "additionalProperties": False,
                    "properties": {c: WINDOW for c in CHANNELS},
                    "description": "Sends falling in the window are deferred to its end. Channels not given keep "
                                   "the default: 21:00-09:00 for sms, telegram, whatsapp and viber; none for email."},
    "frequency_caps": {"type": ["object", "null"], "additionalProperties": False,
                       "properties": {c: CAP for c in [*CHANNELS, "all"]},
                       "description": "At most `max` marketing messages per contact in any `days` days, per "
                                      "channel or across all (`all`). None by default."},
    "attribution": {"type": ["object", "null"], "additionalProperties": False, "properties": {
        "click_days": {"type": "integer", "minimum": 0, "maximum": 90, "default": 5},
        "open_days": {"type": "integer", "minimum": 0, "maximum": 90, "default": 1}},
        "description": "An order within this many days of a click (open) is credited to the message."},
    "held_messages": {"type": ["object", "null"], "additionalProperties": False, "properties": {
        "expire_after_hours": {"type": "integer", "minimum": 0, "maximum": 720, "default": 24}},
        "description": "A marketing message held for a paused channel and older than this when the channel is "
                       "resumed is skipped instead of sent late; transactional ones always go. 0: never skip."},
    "in_doubt": {"type": ["object", "null"], "additionalProperties": False, "properties": {
        "transactional": {"enum": ["resend", "skip"], "default": "resend"},
        "marketing": {"enum": ["resend", "skip"], "default": "skip"}},
        "description": "What happens to a message whose body may have reached the provider without its answer "
                       "being recorded (its worker was killed mid-send, or the connection broke after the body "
                       "went out): `resend` sends it again (a possible duplicate, same Message-ID), `skip` leaves "
                       "it `unknown` (a possible loss)."},
}}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    common = {"401": _answer("Bad or missing API key.", ERRORS)}
    return {"operationId": op_id, "tags": ["channels"], "summary": summary, "responses": responses | common,
            **extra}


SETTINGS_ANSWER = _answer("The settings in effect, defaults filled in (a valid PUT body).", DELIVERY_SETTINGS)

CHANNEL_PATHS: dict[str, Any] = {
    "/api/v1/channels": {"get": _op(
        "listChannels", "Each channel's health, configuration and last 24 hours of messages",
        {"200": _answer("Every channel, in a fixed order.", {
            "type": "object", "properties": {"channels": {"type": "array", "items": CHANNEL_STATUS}}})})},
    "/api/v1/channels/{channel}/pause": {"parameters": [CHANNEL], "post": _op(
        "pauseChannel", "Pause a channel by hand: its messages take their fallback or are held until a person "
                        "resumes it (no probe goes, no success closes it)",
        {"200": _answer("The channel's status now.", CHANNEL_STATUS),
         "404": _answer("No channel by that name.", ERRORS)})},
    "/api/v1/channels/{channel}/resume": {"parameters": [CHANNEL], "post": _op(
        "resumeChannel", "Resume a paused channel, whoever paused it (the breaker closes and its failure count is "
                         "cleared); its held messages go out at once",
        {"200": _answer("The channel's status now.", CHANNEL_STATUS),
         "404": _answer("No channel by that name.", ERRORS)})},
    "/api/v1/settings/delivery": {
        "get": _op("getDeliverySettings", "Quiet hours, frequency caps, attribution windows and held-message expiry",
                   {"200": SETTINGS_ANSWER}),
        "put": _op("putDeliverySettings",
                   "Change delivery settings: each section given replaces the stored one, null restores its "
                   "defaults, sections left out are kept",
                   {"200": SETTINGS_ANSWER, "400": _answer("The body is not a JSON object.", ERRORS),
                    "422": _answer("Invalid fields; `errors` names each path.", ERRORS)},
                   requestBody={"required": True, "content": {"application/json": {"schema": DELIVERY_SETTINGS}}}),
    },
    "/metrics": {"get": {
        "operationId": "metrics", "tags": ["meta"], "security": [],
        "summary": "Prometheus metrics (text format 0.0.4), computed from the database and Redis at scrape time",
        "description": "With RAPPORT_METRICS_TOKEN set, send `Authorization: Bearer <token>`. Without it, only "
                       "loopback clients not behind a proxy may scrape. Families: rapport_messages{channel,status}, "
                       "rapport_queue_depth{queue}, rapport_send_latency_seconds (histogram over the last hour), "
                       "rapport_provider_errors_total{channel,kind}, rapport_channel_state{workspace,channel,state}, "
                       "rapport_channel_paused{workspace,channel}, rapport_channel_opened_total{workspace,channel}, "
                       "rapport_channel_consecutive_failures{workspace,channel}, rapport_dead_letters{kind,status}, "
                       "rapport_scrape_source_up{source}.",
        "responses": {
            "200": {"description": "The metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "401": _answer("A token is configured and was not sent, or is wrong.", ERRORS),
            "403": _answer("No token is configured and the caller is not local.", ERRORS),
        },
    }},
}

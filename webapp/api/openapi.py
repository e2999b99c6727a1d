"""Hand-written OpenAPI 3.1 description of /api/v1 and /healthz, served at /api/v1/openapi.json.

It describes what webapp/api/contacts.py, webapp/ops/health.py, webapp/api/shop_webhooks.py,
engine/contacts/ingest.py, engine/contacts/profiles.py, engine/shops/webhooks.py
and engine/signing.py do; tests/webapp/api/test_openapi.py checks that it is valid and that
its /api/v1 paths match the blueprints' routes.
"""

from __future__ import annotations

from typing import Any

from engine.channels import CHANNELS
from engine.contacts.consent import PERSON_SOURCES
from engine.reasons import Reason
from webapp.api.openapi_channels import CHANNEL_PATHS
from webapp.api.openapi_dead_letters import DEAD_LETTER_PATHS
from webapp.api.openapi_drafts import DRAFT_PATHS
from webapp.api.openapi_journeys import JOURNEY_PATHS
from webapp.api.openapi_providers import PROVIDER_PATHS
from webapp.api.openapi_templates import TEMPLATE_PATHS

CONSENT_STATES = ["opted_in", "opted_out", "pending"]
BEARER: dict[str, list[str]] = {"ApiKey": []}
SIGNED: dict[str, list[str]] = {"ApiKey": [], "RapportSignature": []}  # both, in one requirement


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _null(type_: str, **extra: Any) -> dict[str, Any]:
    return {"type": [type_, "null"], **extra}


def _obj(props: dict[str, Any], required: list[str] | str = "all", **extra: Any) -> dict[str, Any]:
    """An object schema; by default every listed property is always present."""
    return {"type": "object", "required": list(props) if required == "all" else required,
            "properties": props, **extra}


def _json(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}, **extra}


def _error(description: str, *codes: str) -> dict[str, Any]:
    schema = {"allOf": [_ref("Error"), {"properties": {"error": {"enum": list(codes)}}}]}
    return _json(description, schema)


def _unauthorized(signed: bool) -> dict[str, Any]:
    what = "the API key or the Rapport-Signature" if signed else "the API key"
    return _error(f"Missing or invalid {what}. The message says what is wrong.", "unauthorized") | {
        "headers": {"WWW-Authenticate": {"schema": {"type": "string", "const": 'Bearer realm="rapport"'}}}}


TOO_LARGE = _error("The request body is larger than 1 MiB (1024 KiB).", "request_entity_too_large")
NOT_FOUND = _error("No contact with this external_id in the caller's workspace.", "not_found")
MALFORMED = _error("The body is not valid JSON (UTF-8), or it nests deeper than 64 levels.", "malformed_json")
UNSTORABLE = _error("A value in the body cannot be stored: NaN, Infinity or a number beyond ±1.8e308, a NUL "
                    "character (\\u0000) or a lone UTF-16 surrogate in a string or key, an integer of more "
                    "than 4300 digits. `errors` names each field.", "invalid_json")

EXTERNAL_ID = {
    "name": "external_id", "in": "path", "required": True, "schema": {"type": "string"},
    "description": "The contact's external_id. A contact sent with an email but no external_id is "
                   "stored under `email:<lower-cased email>`. May contain slashes.",
}

SIGNATURE_TEXT = (
    "`Rapport-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, Stripe style, on every write. The HMAC "
    "is computed with the workspace's signing secret and hex-encoded in lower case. For `POST "
    "/api/v1/events` and `/api/v1/events/batch` it is over the ASCII bytes of `<t>.` followed by the raw "
    "request body, exactly as sent; for every other write over `<t>.<METHOD> <path>\\n<body>`: the "
    "method in capitals, a space, the path as sent with its query string if any, a newline and the raw "
    "body (empty for a DELETE), so a signature cannot be replayed on another path (the event endpoints "
    "accept this form too). The timestamp must be within 5 minutes "
    "(300 s) of the server's clock, so a captured request cannot be replayed later. Several `v1=` "
    "values may be sent (one per secret) so a secret can be rotated without downtime; one must match."
)

EVENT_EXAMPLE = {
    "id": "evt_cart_8f2c1a-0003",
    "type": "cart_updated",
    "occurred_at": "2026-11-23T10:00:00Z",
    "contact": {"external_id": "cust_1042", "email": "ada@example.com", "first_name": "Ada",
                "timezone": "Europe/Berlin", "locale": "de-DE", "consent": {"email": "opted_in"}},
    "properties": {
        "cart_id": "cart_8f2c1a",
        "items": [{"name": "Merino scarf", "quantity": 1, "price": 49.0,
                   "url": "https://shop.example.com/p/merino-scarf"},
                  {"name": "Wool socks", "quantity": 2, "price": 12.5,
                   "url": "https://shop.example.com/p/wool-socks"}],
        "total": 74.0,
        "currency": "EUR",
        "recovery_url": "https://shop.example.com/cart/recover/8f2c1a",
    },
}

CONTACT_FIELDS = {
    "email": _null("string", maxLength=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                   description="Stored lower-cased; must look like `local@domain.tld`."),
    "phone": _null("string", maxLength=32, pattern=r"^\+?[0-9 ()./-]{5,31}$"),
    "first_name": _null("string", maxLength=200),
    "last_name": _null("string", maxLength=200),
    "timezone": _null("string", maxLength=64, examples=["Europe/Berlin"],
                      description="An IANA time zone name such as `Europe/Berlin`."),
    "locale": _null("string", maxLength=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$",
                    examples=["de-DE"]),
}

SCHEMAS: dict[str, Any] = {
    "Event": _obj({
        "id": {"type": "string", "minLength": 1, "maxLength": 200,
               "description": "Your id for the event, unique per workspace. Sending an id again is "
                              "answered as a duplicate and changes nothing, so webhooks can be retried."},
        "type": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"^[A-Za-z0-9_.:/-]+$",
                 "examples": ["contact_updated", "cart_updated", "checkout_started", "order_placed"],
                 "description": "Canonical types are `contact_updated`, `cart_updated`, "
                                "`checkout_started` and `order_placed`; any other type matching the "
                                "pattern is accepted as a custom event and can trigger journeys too."},
        "occurred_at": {"type": "string", "format": "date-time",
                        "description": "RFC 3339 with a time zone offset, e.g. `2026-11-23T10:00:00Z`. "
                                       "Defaults to the time the event was received."},
        "contact": _ref("Contact"),
        "properties": {"type": "object", "additionalProperties": True, "default": {},
                       "description": "Free-form event data, available to journey conditions and templates."},
    }, required=["id", "type", "contact"], additionalProperties=False,
        description="One event about one contact. Unknown fields are rejected; strings are stripped.",
        examples=[EVENT_EXAMPLE]),
    "Contact": _obj({
        "external_id": _null("string", minLength=1, maxLength=200, description="Your id for the contact."),
        **CONTACT_FIELDS,
        "birthday": _null("string", format="date", description="An ISO date, `YYYY-MM-DD`."),
        "attributes": {"type": "object", "additionalProperties": True, "default": {},
                       "description": "Custom fields, merged key by key into the stored ones."},
        "consent": {"type": "object", "default": {}, "additionalProperties": False,
                    "properties": {c: _ref("ConsentIn") for c in CHANNELS},
                    "description": "Channel -> consent, applied channel by channel. A withdrawal by the "
                                   "person (unsubscribe, preference center, STOP, a spam complaint) is not "
                                   "undone by an opt-in here unless it carries an `at` later than the "
                                   "withdrawal and a `source` naming the person's own act; a refused change "
                                   "is shown on the contact's timeline (`consent_refused`)."},
    }, required=[], additionalProperties=False,
        anyOf=[{"required": ["external_id"], "properties": {"external_id": {"type": "string"}}},
               {"required": ["email"], "properties": {"email": {"type": "string"}}}],
        description="The contact an event is about, created or updated (upserted) with the event. It "
                    "needs an external_id or an email. Profile fields left out or null keep their "
                    "stored values."),
    "ConsentIn": {
        "oneOf": [
            {"enum": CONSENT_STATES, "description": "The state alone: the shop's word, timed by the event."},
            _obj({
                "status": {"enum": CONSENT_STATES},
                "at": {"type": "string", "format": "date-time",
                       "description": "When the consent was given or withdrawn (RFC 3339 with an offset). "
                                      "Defaults to the event's occurred_at."},
                "source": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[A-Za-z0-9_.:-]+$",
                           "description": "How it was given. The person's own: " + ", ".join(
                               f"`{source}`" for source in sorted(PERSON_SOURCES)) + "; any other source "
                               "is the shop's."},
            }, required=["status"], additionalProperties=False),
        ],
        "examples": ["opted_in", {"status": "opted_in", "at": "2026-12-01T10:00:00Z", "source": "checkout_checkbox"}],
        "description": "One channel's consent: a state, or a state with when and how it was given.",
    },
    "ConsentRecord": _obj({
        "status": {"enum": CONSENT_STATES},
        "at": {"type": "string", "format": "date-time"},
        "source": {"type": "string", "examples": ["one-click unsubscribe", "checkout_checkbox", "sms STOP"]},
        "by": {"enum": ["person", "shop", "system"],
               "description": "`person`: the contact did it; `shop`: the shop's record said so."},
    }, description="When, how and by whom a channel's consent was last set."),
    "ContactProfile": _obj({
        "id": {"type": "integer"},
        "external_id": {"type": "string"},
        **CONTACT_FIELDS,
        "birthday": _null("string", description="ISO date `YYYY-MM-DD`; the year may be `0004` when unknown."),
        "attributes": {"type": "object", "additionalProperties": True},
        "messenger_ids": {"type": "object", "additionalProperties": True},
        "consent": _obj({c: {"enum": [*CONSENT_STATES, "unknown"]} for c in CHANNELS},
                        description="Every channel, `unknown` where no consent was ever sent."),
        "consent_records": {"type": "object", "additionalProperties": False,
                            "properties": {c: _ref("ConsentRecord") for c in CHANNELS},
                            "description": "The channels whose consent origin is known (set since "
                                           "records were kept)."},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    }, description="A stored contact."),
    "ItemResult": _obj({
        "index": {"type": "integer", "minimum": 0, "description": "Position of the event in the request."},
        "status": {"enum": ["accepted", "duplicate", "invalid"]},
        "event_id": {"type": "string", "description": "The event's id; absent when invalid."},
        "id": {"type": "integer", "description": "Rapport's id of the stored event; only when accepted."},
        "contact_id": {"type": "integer", "description": "Rapport's id of the contact; only when accepted."},
        "errors": {"type": "array", "items": _ref("FieldError"), "description": "Only when invalid."},
    }, required=["index", "status"], description="What happened to one event. Absent keys are never null."),
    "BatchResult": _obj({
        "accepted": {"type": "integer", "minimum": 0},
        "duplicate": {"type": "integer", "minimum": 0,
                      "description": "Ids already stored, or repeated earlier in the same batch."},
        "invalid": {"type": "integer", "minimum": 0},
        "results": {"type": "array", "items": _ref("ItemResult"), "description": "One per event, in order."},
    }),
    "FieldError": _obj({
        "field": {"type": "string", "examples": ["contact.email"],
                  "description": "Dotted path to the bad field, or `(root)`."},
        "message": {"type": "string"},
    }),
    "Error": _obj({
        "error": {"type": "string", "description": "A stable, machine-readable code."},
        "message": {"type": "string", "description": "One line for humans."},
        "errors": {"type": "array", "items": _ref("FieldError")},
    }, required=["error", "message"]),
    "Run": _obj({
        "id": {"type": "integer"},
        "journey": _null("string", description="The journey's name."),
        "key": {"type": "string", "description": "Correlation key, e.g. a cart id."},
        "status": {"enum": ["active", "waiting", "completed", "exited"]},
        "step": _null("string"),
        "next_at": _null("string", format="date-time"),
        "exit_reason": _null("string"),
        "created_at": {"type": "string", "format": "date-time"},
    }, description="One enrollment of the contact in a journey."),
    "ContactMessage": _obj({
        "id": {"type": "integer"},
        "channel": {"enum": [*CHANNELS, "webhook"]},
        "template": {"type": "string"},
        "status": {"enum": ["scheduled", "claimed", "sending", "sent", "delivered", "opened", "clicked", "replied",
                            "bounced", "complained", "skipped", "failed", "unknown"]},
        "to": _null("string"),
        "subject": _null("string"),
        "skip_reason": _null("string"),
        "error": _null("string"),
        "step": _null("string"),
        "transactional": {"type": "boolean"},
        "arm": _null("string", description="The split-test arm that chose this message."),
        "details": {"type": "object", "additionalProperties": True,
                    "description": "What the provider told us, e.g. SMS `segments` and `encoding`."},
        "scheduled_at": _null("string", format="date-time",
                              description="When it is due: later than now when quiet hours or a cap deferred it."),
        "sent_at": _null("string", format="date-time"),
        "delivered_at": _null("string", format="date-time"),
        "opened_at": _null("string", format="date-time"),
        "clicked_at": _null("string", format="date-time"),
    }, description="A message decided for the contact."),
    "TimelineEntry": {
        "description": "An event, or a journal entry explaining a journey decision. Journal kinds include "
                       "enrolled, not_enrolled, waiting, goal, exited, completed, message_scheduled, "
                       "message_deferred (quiet hours, frequency cap), skipped, sent, retrying, fallback, "
                       "channel_paused (its breaker opened, or re-opened after a failed probe), channel_probe "
                       "(this message probes a paused channel), channel_resumed (the probe went through), failed, "
                       "in_doubt_resent and in_doubt_skipped (the body may have reached the provider without its "
                       "answer being recorded; the workspace's in_doubt policy resent it, or left it unknown), "
                       "unknown (the same, before the policy existed), "
                       "delivered, opened, clicked, bounced, complained, "
                       "suppressed, processing_failed (a job failed on this event, run or message; it is retried), "
                       "dead_letter (set aside after repeated failures), dead_letter_retried and "
                       "dead_letter_resolved.",
        "oneOf": [
            _obj({"kind": {"const": "event"}, "at": {"type": "string", "format": "date-time"},
                  "type": {"type": "string"}, "event_id": {"type": "string"},
                  "properties": {"type": "object", "additionalProperties": True}}),
            _obj({"kind": {"type": "string", "not": {"const": "event"}},
                  "at": {"type": "string", "format": "date-time"},
                  "run_id": _null("integer"), "journey": _null("string"), "step": _null("string"),
                  "message_id": _null("integer"), "detail": _null("string", description="The sentence a person reads."),
                  "label": _null("string", description="The branch taken (`branch`)."),
                  "reason": {"enum": [*(reason.value for reason in Reason), None], "description":
                             "Why, as a code: a run exited (`exited`), a contact was not enrolled (`not_enrolled`), "
                             "a message was skipped, deferred or held."},
                  "arm": _null("string", description="The split-test arm, `<split step id>:<arm name>`: on the "
                                                     "split's `branch` line and on every line about a message of it."),
                  "goal": _null("string", description="The goal reached (`goal`, and `exited` by a goal).")}),
        ],
    },
    "OutboxMessage": _obj({
        "id": {"type": "integer"},
        "channel": {"type": "string"},
        "to": {"type": "string"},
        "subject": _null("string"),
        "text": _null("string", description="The text; tracked links show their destination."),
        "html": _null("string", description="A preview: the open pixel is left out and tracked links point "
                                            "straight at their destination, so showing it counts no open or click."),
        "sent_at": {"type": "string", "format": "date-time", "description": "When the sink received it."},
        "message_id": _null("integer", description="The ContactMessage it delivered, if known."),
        "meta": {"type": "object", "additionalProperties": True,
                 "description": "Channel extras: link buttons, the WhatsApp template and its parameters."},
    }, description="A message as captured by the built-in SMTP sink (or a fake provider)."),
}

EVENTS_REQUIRE = "Needs the API key and a Rapport-Signature over the raw body."

PATHS: dict[str, Any] = {
    "/api/v1/events": {"post": {
        "operationId": "postEvent", "tags": ["events"], "security": [SIGNED],
        "summary": "Ingest one event",
        "description": "Upserts the contact, stores the event and queues its evaluation. An event "
                       "answered 202 is committed. " + EVENTS_REQUIRE,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref("Event"), "examples": {"abandoned_cart": {"value": EVENT_EXAMPLE}}}}},
        "responses": {
            "202": _json("Accepted and stored.", {"allOf": [_ref("ItemResult"), {
                "required": ["event_id", "id", "contact_id"],
                "properties": {"index": {"const": 0}, "status": {"const": "accepted"}}}]}),
            "200": _json("An event with this id was already stored; nothing changed.", _obj(
                {"duplicate": {"const": True}, "event_id": {"type": "string"}})),
            "400": MALFORMED,
            "401": _unauthorized(signed=True),
            "413": TOO_LARGE,
            "422": _error("The event has invalid fields, listed in `errors`.", "invalid_event"),
        },
    }},
    "/api/v1/events/batch": {"post": {
        "operationId": "postEventBatch", "tags": ["events"], "security": [SIGNED],
        "summary": "Ingest up to 1000 events",
        "description": "Each event is validated and stored on its own; invalid ones are reported per "
                       "item and do not stop the rest. Status: 202 if any event was accepted; 200 if "
                       "none was but not all were invalid (e.g. all duplicates); 422 if all were "
                       "invalid or the batch itself is malformed. " + EVENTS_REQUIRE,
        "requestBody": {"required": True, "content": {"application/json": {"schema": _obj({
            "events": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _ref("Event")}}),
            "examples": {"one_cart": {"value": {"events": [EVENT_EXAMPLE]}}}}}},
        "responses": {
            "202": _json("At least one event was accepted.", _ref("BatchResult")),
            "200": _json("None accepted, not all invalid.", _ref("BatchResult")),
            "400": MALFORMED,
            "401": _unauthorized(signed=True),
            "413": TOO_LARGE,
            "422": _json("Every event was invalid (a BatchResult), or the body is not "
                         "`{\"events\": [...]}` with 1 to 1000 events (an `invalid_batch` Error).",
                         {"oneOf": [_ref("BatchResult"), {"allOf": [_ref("Error"), {
                             "properties": {"error": {"enum": ["invalid_batch", "invalid_json"]}}}]}]}),
        },
    }},
    "/api/v1/contacts/{external_id}": {
        "parameters": [EXTERNAL_ID],
        "get": {
            "operationId": "getContact", "tags": ["contacts"], "security": [BEARER],
            "summary": "A contact's profile",
            "responses": {"200": _json("The contact.", _ref("ContactProfile")),
                          "401": _unauthorized(signed=False), "404": NOT_FOUND},
        },
        "delete": {
            "operationId": "eraseContact", "tags": ["contacts"], "security": [BEARER],
            "summary": "Erase a contact (GDPR)",
            "description": "Deletes the contact with its events, runs, messages, journal entries and "
                           "outbox captures, keeping only a data-free record (counts and a keyed "
                           "digest of the id) that an erasure happened.",
            "responses": {
                "200": _json("Erased; `deleted` counts what was removed.", _obj({
                    "erased": {"const": True},
                    "deleted": _obj({k: {"type": "integer", "minimum": 0}
                                     for k in ("events", "messages", "runs")})})),
                "401": _unauthorized(signed=False), "404": NOT_FOUND,
            },
        },
    },
    "/api/v1/contacts/{external_id}/timeline": {
        "parameters": [EXTERNAL_ID],
        "get": {
            "operationId": "getContactTimeline", "tags": ["contacts"], "security": [BEARER],
            "summary": "Why everything happened to a contact",
            "description": "The profile, journey runs, messages, and a timeline of the latest 500 events "
                           "and 500 journal entries, merged oldest first.",
            "responses": {
                "200": _json("The contact's history.", _obj({
                    "contact": _ref("ContactProfile"),
                    "runs": {"type": "array", "items": _ref("Run")},
                    "messages": {"type": "array", "items": _ref("ContactMessage")},
                    "reviews": {"type": "array", "description": "Ratings per order, newest first.", "items": _obj({
                        "order_id": {"type": "string"}, "score": _null("integer"),
                        "comments": {"type": "array", "items": {"type": "string"}}, "at": _null("string")})},
                    "timeline": {"type": "array", "items": _ref("TimelineEntry")}})),
                "401": _unauthorized(signed=False), "404": NOT_FOUND,
            },
        },
    },
    "/api/v1/outbox": {"get": {
        "operationId": "getOutbox", "tags": ["outbox"], "security": [BEARER],
        "summary": "Recently captured messages, newest first",
        "parameters": [{
            "name": "limit", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
            "description": "How many to return. Out-of-range values are clamped to 1..500; "
                           "0 or a non-integer means the default.",
        }],
        "responses": {
            "200": _json("The captured messages.", _obj(
                {"messages": {"type": "array", "items": _ref("OutboxMessage")}})),
            "401": _unauthorized(signed=False),
        },
    }},
    "/api/v1/openapi.json": {"get": {
        "operationId": "getOpenapi", "tags": ["meta"], "security": [],
        "summary": "This document",
        "responses": {"200": _json("The OpenAPI 3.1 description.", {"type": "object"})},
    }},
    "/healthz": {"get": {
        "operationId": "healthz", "tags": ["meta"], "security": [],
        "summary": "Liveness of the database and Redis",
        "responses": {code: _json(text, _obj({
            "status": {"enum": ["ok", "down"]},
            "down": {"type": "array", "items": {"enum": ["database", "redis"]}},
            "checks": _obj({name: {"type": "string", "description": "`ok` or `down: <exception name>`."}
                            for name in ("database", "redis")}),
        })) for code, text in (("200", "Both answer."), ("503", "Something is down; `down` names it."))},
    }},
}

# --- shop platform webhooks (webapp/api/shop_webhooks.py, engine/shops/webhooks.py) ---

WORKSPACE_ID = {"name": "workspace_id", "in": "path", "required": True, "schema": {"type": "string"},
                "description": "The workspace's id, e.g. `ws_3f9a0c6e1b7d4a2f`."}
SHOP_SIGNATURE_TEXT = (
    "base64(HMAC-SHA256(shop secret, raw request body)), compared in constant time. The secret is "
    "stored per workspace with `rapport workspace connect {platform} WORKSPACE_ID --secret SECRET`."
)
SHOP_ANSWERS: dict[str, Any] = {
    "202": _json("Mapped: the events are stored (source = the platform) and queued for evaluation. "
                 "Or unmapped (unknown topic, missing data, or values that cannot be stored: NaN, "
                 "Infinity, a number beyond ±1.8e308, a NUL character, a lone surrogate): the payload is kept "
                 "for inspection and `warning` says why, naming the fields; nothing is dropped silently.",
                 {"oneOf": [
                     _obj({"accepted": {"const": True}, "event_ids": {"type": "array", "items": {"type": "string"}}}),
                     _obj({"accepted": {"const": False}, "warning": {"type": "string"}})]}),
    "200": _json("This delivery id was received before and nothing changed (`duplicate`); or the "
                 "delivery was understood and deliberately not made an event (`ignored`, with the "
                 "`reason`, e.g. a completed checkout or an order status already recorded); or "
                 "WooCommerce's ping.", {"oneOf": [
                     _obj({"duplicate": {"const": True}}),
                     _obj({"accepted": {"const": False}, "ignored": {"const": True}, "reason": {"type": "string"}}),
                     _obj({"ping": {"const": True}})]}),
    "401": _error("The signature header is missing or does not match (or the workspace has no secret "
                  "for this platform). Nothing is stored.", "unauthorized"),
    "400": _error("The body nests deeper than 64 levels. Nothing is stored.", "malformed_json"),
    "404": _error("No such workspace. The message says no more.", "not_found"),
    "413": TOO_LARGE,
}
SHOP_WEBHOOK_PATHS: dict[str, Any] = {
    "/api/v1/webhooks/shopify/{workspace_id}": {"parameters": [WORKSPACE_ID], "post": {
        "operationId": "postShopifyWebhook", "tags": ["webhooks"], "security": [{"ShopifyHmac": []}],
        "summary": "Receive a Shopify webhook",
        "description": "Point the shop's webhooks here. Headers: `X-Shopify-Hmac-Sha256` (the signature), "
                       "`X-Shopify-Event-Id` (de-duplicates: a repeat of the event answers 200 duplicate, under any "
                       "webhook id), `X-Shopify-Webhook-Id` (de-duplicates when there is no event id), "
                       "`X-Shopify-Topic`. Topics read: `checkouts/create` → checkout_started and "
                       "`checkouts/update` → cart_updated (cart_id = the checkout token, items, total, "
                       "currency, recovery_url = abandoned_checkout_url; a completed checkout is ignored), "
                       "`orders/create` → order_placed (cart_id = checkout_token, so the order ends that "
                       "cart's journey), `orders/paid` → order_paid, `orders/fulfilled` → order_fulfilled, "
                       "`orders/cancelled` → order_cancelled, `customers/create` and `customers/update` → "
                       "contact_updated. The contact is `shopify:<customer id>` (or the email of a guest), "
                       "with email consent from the customer's marketing consent. Event id: "
                       "`shopify:<X-Shopify-Event-Id>` (the same on every delivery of one event, so a "
                       "repeat under a new webhook id is a duplicate too), or `shopify:<X-Shopify-Webhook-Id>` "
                       "without it.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "description": "The checkout, order or customer as Shopify sends it."}}}},
        "responses": SHOP_ANSWERS,
    }},
    "/api/v1/webhooks/woocommerce/{workspace_id}": {"parameters": [WORKSPACE_ID], "post": {
        "operationId": "postWoocommerceWebhook", "tags": ["webhooks"], "security": [{"WooCommerceSignature": []}],
        "summary": "Receive a WooCommerce webhook",
        "description": "Point the store's webhooks (API version 3) here. Headers: `X-WC-Webhook-Signature`, "
                       "`X-WC-Webhook-Delivery-ID` (de-duplicates), `X-WC-Webhook-Topic`. Topics read: "
                       "`order.created` → order_placed; `order.updated` by status: processing → order_paid, "
                       "completed → order_fulfilled, cancelled → order_cancelled, refunded → order_refunded, "
                       "any other → order_updated with `status`; `customer.created` and `customer.updated` → "
                       "contact_updated. Events are keyed by what happened (`woocommerce:order:<id>:<status>`), "
                       "since WooCommerce sends order.updated on every save: a second save of a paid order "
                       "is answered 200 ignored. The unsigned ping WooCommerce sends when a webhook is saved "
                       "(form body `webhook_id=<n>`) is answered 200.",
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {
                "type": "object", "description": "The order or customer as WooCommerce's REST API shows it."}},
            "application/x-www-form-urlencoded": {"schema": _obj(
                {"webhook_id": {"type": "string"}}, description="The ping, sent unsigned.")}}},
        "responses": SHOP_ANSWERS,
    }},
}
PATHS |= SHOP_WEBHOOK_PATHS | JOURNEY_PATHS | PROVIDER_PATHS
PATHS |= CHANNEL_PATHS
PATHS |= DEAD_LETTER_PATHS
PATHS |= DRAFT_PATHS
PATHS |= TEMPLATE_PATHS


def _json_bodies(paths: dict[str, Any]) -> dict[str, Any]:
    """Every API operation that takes JSON reads it with the strict reader (webapp/api/json_body.py):
    400 when it is not JSON or nests too deeply, 422 naming the values that cannot be stored."""
    for operations in paths.values():
        for method, operation in operations.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            takes_json = "application/json" in operation.get("requestBody", {}).get("content", {})
            if not takes_json or operation.get("tags") == ["webhooks"]:
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("400", MALFORMED)
            responses.setdefault("422", UNSTORABLE)
    return paths


def _signed_writes(paths: dict[str, Any]) -> dict[str, Any]:
    """Every write the workspace key authorizes needs the signature too (webapp/api/auth.py says so
    for every request): mark it here, once, so a newly added write endpoint is described right."""
    for operations in paths.values():
        for method, operation in operations.items():
            if method in ("post", "put", "patch", "delete") and operation.get("security", [BEARER]) == [BEARER]:
                operation["security"] = [SIGNED]
                if "401" in operation.get("responses", {}):
                    operation["responses"]["401"] = _unauthorized(signed=True)
    return paths


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Rapport API",
        "version": "1",
        "description": "Send shop events in; Rapport runs journeys and sends messages. Reads use the "
                       "workspace API key; every write is also signed (Rapport-Signature). Errors are JSON: "
                       "`{\"error\": <code>, \"message\": <text>}`, plus `errors` for field problems.",
    },
    "tags": [{"name": n} for n in ("events", "contacts", "journeys", "templates", "outbox", "webhooks", "meta")],
    "security": [BEARER],
    "paths": _signed_writes(_json_bodies(PATHS)),
    "components": {
        "securitySchemes": {
            "ApiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "API key",
                       "description": "The workspace API key: `Authorization: Bearer <key>`."},
            "RapportSignature": {"type": "apiKey", "in": "header", "name": "Rapport-Signature",
                                 "description": SIGNATURE_TEXT},
            "ShopifyHmac": {"type": "apiKey", "in": "header", "name": "X-Shopify-Hmac-Sha256",
                            "description": SHOP_SIGNATURE_TEXT.format(platform="shopify")},
            "WooCommerceSignature": {"type": "apiKey", "in": "header", "name": "X-WC-Webhook-Signature",
                                     "description": SHOP_SIGNATURE_TEXT.format(platform="woocommerce")},
        },
        "schemas": SCHEMAS,
    },
}

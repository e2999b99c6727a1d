"""Hostile JSON on every endpoint that takes JSON, against the real app, database and Redis.

NaN, Infinity, numbers past ±1.8e308, NUL characters and lone surrogates cannot be
stored; a body nested 50,000 levels deep must not crash the parser. Each is refused with
a 4xx naming the field (a batch refuses only the items holding one), shop webhooks keep
such a body for inspection, and whatever is stored reads back as valid JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from engine.journeys.versions import create_journey
from engine.settings import ProviderSettings, Settings
from engine.shops.webhooks import connect_shop, sign_body
from engine.store.models import Event, Run, WebhookReceipt
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, drain
from tests.webapp.conftest import post_signed, send_signed
from triggers import abandoned_cart
from workers.dev.demo import cart_event
from workers.runtime import Runtime

EVENTS = "/api/v1/events"
BATCH = "/api/v1/events/batch"
SHOP_SECRET = "shop-secret-for-hostile-json"
TELEGRAM_SECRET = "tg-secret-for-hostile-json"
DEEP = b"[" * 50_000 + b"]" * 50_000
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with a Telegram bot and Twilio, so their webhook endpoints exist."""
    return replace(settings, providers=ProviderSettings(
        telegram_bot_token="123456:ABC", telegram_webhook_secret=TELEGRAM_SECRET,
        twilio_account_sid="AC" + "0" * 32, twilio_auth_token="twilio-token", twilio_from="+15005550006"))


def with_total(literal: str) -> bytes:
    """A valid cart event whose total is written as `literal`, exactly as a hostile client sends it."""
    text = json.dumps(cart_event("cart-x") | {"id": "evt-hostile"})
    return text.replace('"total": 59.0', f'"total": {literal}').encode()


def events_of(sessions: sessionmaker[Session], workspace_id: str) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).where(Event.workspace_id == workspace_id).order_by(Event.id)))


def raw_stored_json(sessions: sessionmaker[Session], workspace_id: str) -> list[str]:
    """The events' properties as the database itself writes them out."""
    with sessions() as session:
        cast = "CAST(properties AS TEXT)" if session.get_bind().dialect.name == "postgresql" else "properties"
        rows = session.execute(text(f"SELECT {cast} FROM events WHERE workspace_id = :ws ORDER BY id"),
                               {"ws": workspace_id})
        return [row[0] for row in rows]


# --- events: non-finite numbers, NUL, depth -------------------------------------------


@pytest.mark.parametrize("literal", NON_FINITE)
def test_a_non_finite_number_in_an_event_is_refused_naming_its_field(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], literal: str
) -> None:
    """NaN, ±Infinity and 1e400 in properties: 422 naming properties.total, nothing stored."""
    body = with_total(literal)
    assert literal.encode() in body
    response = post_signed(client, EVENTS, body, shop.credentials)
    assert response.status_code == 422, response.json
    assert [e["field"] for e in response.json["errors"]] == ["properties.total"]
    assert "finite" in response.json["errors"][0]["message"]
    assert events_of(sessions, shop.id) == []


@pytest.mark.parametrize(("where", "field"), [
    ("properties", "properties.note"),
    ("contact", "contact.first_name"),
    ("key", "properties.bad\\u0000key"),
    ("id", "id"),
])
def test_a_nul_character_anywhere_in_an_event_is_refused_naming_its_field(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], where: str, field: str
) -> None:
    """A NUL in a property, a contact field, a key or the id: 422 naming it (PostgreSQL cannot store it)."""
    event = cart_event("cart-nul")
    if where == "properties":
        event["properties"]["note"] = "gift\x00wrap"
    elif where == "contact":
        event["contact"]["first_name"] = "A\x00da"
    elif where == "key":
        event["properties"]["bad\x00key"] = 1
    else:
        event["id"] = "evt-\x00"
    response = post_signed(client, EVENTS, event, shop.credentials)
    assert response.status_code == 422, response.json
    assert field in [e["field"] for e in response.json["errors"]]
    assert "NUL" in response.json["errors"][0]["message"]
    assert events_of(sessions, shop.id) == []


def test_a_lone_surrogate_in_an_event_is_refused_naming_its_field(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """"\\ud800" alone is not text (it cannot be encoded for the database): 422 naming the field."""
    body = json.dumps(cart_event("cart-s")).replace('"currency": "EUR"', '"currency": "\\ud800"').encode()
    response = post_signed(client, EVENTS, body, shop.credentials)
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == ["properties.currency"]
    assert events_of(sessions, shop.id) == []


@pytest.mark.parametrize("path", [EVENTS, BATCH])
def test_a_body_nested_fifty_thousand_levels_deep_is_refused_with_400(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], path: str
) -> None:
    """No RecursionError and no 500: 400 saying how deep is too deep."""
    response = post_signed(client, path, DEEP, shop.credentials)
    assert response.status_code == 400
    assert response.json["error"] == "malformed_json"
    assert "deeper than 64" in response.json["message"]
    assert events_of(sessions, shop.id) == []


def test_properties_nested_65_levels_are_refused_and_64_are_kept(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """The limit is 64 levels for the whole body, the event object itself being the first."""
    def nested(levels: int) -> Any:
        value: Any = "bottom"
        for _ in range(levels):
            value = {"x": value}
        return value

    too_deep = cart_event("cart-deep") | {"properties": {"cart_id": "c", "deep": nested(63)}}  # 1 + 1 + 63
    assert post_signed(client, EVENTS, too_deep, shop.credentials).status_code == 400
    deep_enough = cart_event("cart-deep") | {"properties": {"cart_id": "c", "deep": nested(62)}}
    assert post_signed(client, EVENTS, deep_enough, shop.credentials).status_code == 202


def test_integers_beyond_64_bits_are_kept_exactly(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """2**70 and 10**30 in properties and contact attributes read back as the same integers."""
    event = cart_event("cart-big")
    event["properties"] |= {"points": 2**70, "serial": 10**30}
    event["contact"]["attributes"] = {"lifetime_points": -(2**80)}
    response = post_signed(client, EVENTS, event, shop.credentials)
    assert response.status_code == 202, response.json
    [stored] = events_of(sessions, shop.id)
    assert (stored.properties["points"], stored.properties["serial"]) == (2**70, 10**30)
    profile = client.get(f"/api/v1/contacts/{event['contact']['external_id']}",
                         headers={"Authorization": f"Bearer {shop.credentials.api_key}"})
    assert json.loads(profile.data)["attributes"]["lifetime_points"] == -(2**80)
    [raw] = raw_stored_json(sessions, shop.id)
    assert json.loads(raw)["points"] == 2**70


def test_an_integer_of_five_thousand_digits_is_refused_naming_its_field(client: FlaskClient, shop: Shop) -> None:
    """Past Python's 4300-digit limit: 422 naming the field, not a 400 about the whole body."""
    response = post_signed(client, EVENTS, with_total("9" * 5000), shop.credentials)
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == ["properties.total"]


def test_an_occurred_at_offset_beyond_15_59_is_refused_naming_it(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """+16:00 is a valid ISO 8601 offset that PostgreSQL cannot store: 422 naming occurred_at."""
    event = cart_event("cart-tz") | {"occurred_at": "2030-01-07T09:00:00+16:00"}
    response = post_signed(client, EVENTS, event, shop.credentials)
    assert response.status_code == 422, response.json
    assert [e["field"] for e in response.json["errors"]] == ["occurred_at"]
    ok = cart_event("cart-tz") | {"occurred_at": "2030-01-07T09:00:00-15:59"}
    assert post_signed(client, EVENTS, ok, shop.credentials).status_code == 202


def test_an_occurred_at_at_the_edge_of_the_calendar_is_refused(client: FlaskClient, shop: Shop) -> None:
    """Year 1 or 9999 with an offset would leave the datetime range once in UTC: 422, not 500."""
    for stamp in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        event = cart_event("cart-edge") | {"occurred_at": stamp}
        response = post_signed(client, EVENTS, event, shop.credentials)
        assert response.status_code == 422, (stamp, response.json)
        assert [e["field"] for e in response.json["errors"]] == ["occurred_at"]


# --- batches: bad items by index, the others stored ----------------------------------


def batch_body(events: list[dict[str, Any]], *, poison: dict[int, str]) -> bytes:
    """A batch whose items at the given indexes have their total written as a hostile literal."""
    parts = []
    for index, event in enumerate(events):
        item = json.dumps(event)
        if index in poison:
            item = item.replace('"total": 59.0', f'"total": {poison[index]}')
        parts.append(item)
    return ('{"events": [' + ", ".join(parts) + "]}").encode()


def test_nineteen_carts_and_one_nan_event_in_a_batch_store_and_evaluate_the_nineteen(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock, runtime: Runtime
) -> None:
    """The NaN item is refused by its index; the 19 valid carts are stored, evaluated and enrolled."""
    with sessions.begin() as session:
        create_journey(session, shop.id, "Cart reminder", abandoned_cart.recipe(wait_seconds=3600),
                       templates=SEED_TEMPLATES, now=clock())
    events = [cart_event(f"cart-{i}", customer=f"cust-{i}", email=f"c{i}@example.com") for i in range(20)]
    response = post_signed(client, BATCH, batch_body(events, poison={7: "NaN"}), shop.credentials)

    assert response.status_code == 202, response.json
    assert (response.json["accepted"], response.json["invalid"]) == (19, 1)
    refused = response.json["results"][7]
    assert refused["status"] == "invalid"
    assert refused["errors"][0]["field"] == "properties.total"
    stored = events_of(sessions, shop.id)
    assert len(stored) == 19 and events[7]["id"] not in {e.external_id for e in stored}

    drain(runtime)
    assert all(e.evaluated_at is not None for e in events_of(sessions, shop.id))
    with sessions() as session:
        enrolled = session.scalars(select(Run).where(Run.workspace_id == shop.id)).all()
    assert len(enrolled) == 19


def test_a_batch_item_with_a_nul_is_refused_alone(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """On PostgreSQL a NUL once made the whole batch 500: now item 1 is refused, items 0 and 2 stored."""
    events = [cart_event(f"cart-n{i}", customer=f"n{i}") for i in range(3)]
    events[1]["contact"]["last_name"] = "Love\x00lace"
    response = post_signed(client, BATCH, {"events": events}, shop.credentials)
    assert response.status_code == 202, response.json
    statuses = [r["status"] for r in response.json["results"]]
    assert statuses == ["accepted", "invalid", "accepted"]
    assert response.json["results"][1]["errors"][0]["field"] == "contact.last_name"
    assert len(events_of(sessions, shop.id)) == 2


def test_a_batch_of_only_hostile_items_is_answered_422_item_by_item(client: FlaskClient, shop: Shop) -> None:
    """Every item refused: 422, each with its own field."""
    events = [cart_event(f"cart-h{i}", customer=f"h{i}") for i in range(2)]
    response = post_signed(client, BATCH, batch_body(events, poison={0: "Infinity", 1: "-Infinity"}),
                           shop.credentials)
    assert response.status_code == 422
    assert [r["errors"][0]["field"] for r in response.json["results"]] == ["properties.total"] * 2


def test_a_hostile_value_outside_the_events_refuses_the_whole_batch(client: FlaskClient, shop: Shop) -> None:
    """A NaN beside the list belongs to no item: the whole body is refused naming it."""
    body = b'{"events": [' + json.dumps(cart_event("c")).encode() + b'], "note": NaN}'
    response = post_signed(client, BATCH, body, shop.credentials)
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == ["note"]


def test_what_is_stored_reads_back_as_valid_json(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """After a batch mixing hostile and valid items, every stored properties value parses strictly."""
    events = [cart_event(f"cart-r{i}", customer=f"r{i}") for i in range(4)]
    post_signed(client, BATCH, batch_body(events, poison={1: "NaN", 3: "1e400"}), shop.credentials)
    stored = raw_stored_json(sessions, shop.id)
    assert len(stored) == 2

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} stored")

    for raw in stored:
        assert json.loads(raw, parse_constant=refuse)["total"] == 59.0


# --- the other endpoints that take JSON -----------------------------------------------


def test_delivery_settings_with_nan_are_refused_naming_the_field(client: FlaskClient, shop: Shop) -> None:
    """PUT /api/v1/settings/delivery with NaN: 422 naming the field."""
    body = b'{"held_messages": {"expire_after_hours": NaN}}'
    response = send_signed(client, "PUT", "/api/v1/settings/delivery", shop.credentials, body)
    assert response.status_code == 422, response.json
    assert [e["field"] for e in response.json["errors"]] == ["held_messages.expire_after_hours"]


def test_delivery_settings_refuse_false_for_a_number_of_hours(client: FlaskClient, shop: Shop) -> None:
    """`expire_after_hours: false` was stored as 0: now 422 naming the field, the setting unchanged."""
    path = "/api/v1/settings/delivery"
    response = send_signed(client, "PUT", path, shop.credentials, {"held_messages": {"expire_after_hours": False}})
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == ["held_messages.expire_after_hours"]
    current = client.get(path, headers={"Authorization": f"Bearer {shop.credentials.api_key}"})
    assert current.json["held_messages"] == {"expire_after_hours": 24}


def test_delivery_settings_refuse_a_string_for_a_cap(client: FlaskClient, shop: Shop) -> None:
    """"3" is not 3, and true is not 1: 422 naming each field."""
    body = {"frequency_caps": {"email": {"max": "3", "days": True}}}
    response = send_signed(client, "PUT", "/api/v1/settings/delivery", shop.credentials, body)
    assert response.status_code == 422
    assert sorted(e["field"] for e in response.json["errors"]) == ["frequency_caps.email.days",
                                                                    "frequency_caps.email.max"]


def test_a_journey_with_infinity_in_its_definition_is_refused_naming_the_field(
    client: FlaskClient, shop: Shop
) -> None:
    """POST /api/v1/journeys with Infinity in a filter: 422 naming it, no journey made."""
    definition = abandoned_cart.recipe(wait_seconds=60)
    definition["trigger"]["filter"] = {"property": "total", "op": "gte", "value": "INFINITY"}
    body = json.dumps({"name": "Carts", "definition": definition}).replace('"INFINITY"', "Infinity")
    response = send_signed(client, "POST", "/api/v1/journeys", shop.credentials, body.encode())
    assert response.status_code == 422, response.json
    assert response.json["errors"][0]["field"] == "definition.trigger.filter.value"
    listed = client.get("/api/v1/journeys", headers={"Authorization": f"Bearer {shop.credentials.api_key}"})
    assert listed.json["journeys"] == []


def test_a_journey_body_nested_fifty_thousand_levels_is_refused_with_400(client: FlaskClient, shop: Shop) -> None:
    """No RecursionError on the journeys API either."""
    response = send_signed(client, "POST", "/api/v1/journeys", shop.credentials, DEEP)
    assert response.status_code == 400


@pytest.mark.parametrize("journey_id", [str(2**63), str(10**30), "9" * 5000])
@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("PUT", ""), ("POST", "/publish"),
                                                 ("GET", "/stats"), ("GET", "/versions")])
def test_a_journey_id_larger_than_the_database_holds_is_404(
    client: FlaskClient, shop: Shop, journey_id: str, method: str, suffix: str
) -> None:
    """An id past BIGINT in any journey path: 404, never an out-of-range 500."""
    path = f"/api/v1/journeys/{journey_id}{suffix}"
    response = send_signed(client, method, path, shop.credentials, {"name": "x"} if method == "PUT" else None)
    assert response.status_code == 404


# --- webhooks we do not control -------------------------------------------------------


@pytest.fixture
def connected(shop: Shop, sessions: sessionmaker[Session]) -> Shop:
    with sessions.begin() as session:
        connect_shop(session, shop.id, "shopify", SHOP_SECRET)
        connect_shop(session, shop.id, "woocommerce", SHOP_SECRET)
    return shop


SHOP_HEADERS = {
    "shopify": {"sig": "X-Shopify-Hmac-Sha256", "id": "X-Shopify-Webhook-Id", "topic": "X-Shopify-Topic"},
    "woocommerce": {"sig": "X-WC-Webhook-Signature", "id": "X-WC-Webhook-Delivery-ID", "topic": "X-WC-Webhook-Topic"},
}


def shop_delivery(client: FlaskClient, platform: str, workspace_id: str, body: bytes, *, delivery_id: str) -> Any:
    names = SHOP_HEADERS[platform]
    topic = "orders/create" if platform == "shopify" else "order.created"
    headers = {"Content-Type": "application/json", names["sig"]: sign_body(SHOP_SECRET, body),
               names["id"]: delivery_id, names["topic"]: topic}
    return client.post(f"/api/v1/webhooks/{platform}/{workspace_id}", data=body, headers=headers)


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_shop_webhook_nested_fifty_thousand_levels_is_refused_and_nothing_kept(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session], platform: str
) -> None:
    """A signed delivery 50,000 levels deep: 400, no receipt, no event."""
    response = shop_delivery(client, platform, connected.id, DEEP, delivery_id="d-deep")
    assert response.status_code == 400
    with sessions() as session:
        assert session.scalars(select(WebhookReceipt).where(WebhookReceipt.workspace_id == connected.id)).all() == []


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
@pytest.mark.parametrize("hostile", ['{"id": 1, "total_price": NaN}', '{"id": 1, "note": "a\\u0000b"}'])
def test_a_shop_webhook_with_unstorable_values_is_kept_for_inspection(
    client: FlaskClient, connected: Shop, sessions: sessionmaker[Session], platform: str, hostile: str
) -> None:
    """NaN or a NUL from a shop: 202 accepted false with a warning naming the field; the body is kept
    as text in webhook_receipts, nothing becomes an event, and a retry is a duplicate."""
    body = hostile.encode()
    response = shop_delivery(client, platform, connected.id, body, delivery_id="d-hostile")
    assert response.status_code == 202, response.json
    assert response.json["accepted"] is False
    field = "total_price" if "NaN" in hostile else "note"
    assert f"{field}:" in response.json["warning"]
    with sessions() as session:
        [receipt] = session.scalars(select(WebhookReceipt).where(WebhookReceipt.workspace_id == connected.id))
    assert receipt.status == "unmapped"
    assert receipt.payload == {"body": hostile}
    assert events_of(sessions, connected.id) == []
    again = shop_delivery(client, platform, connected.id, body, delivery_id="d-hostile")
    assert again.json == {"duplicate": True}


def test_a_provider_webhook_with_nan_is_refused_naming_the_field(client: FlaskClient, shop: Shop) -> None:
    """A Telegram update with NaN and the right secret: 400 naming the field (the sender's bug), never a 500."""
    response = client.post(f"/api/v1/providers/telegram/{shop.id}", data=b'{"update_id": NaN}',
                           headers={"Content-Type": "application/json",
                                    "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    assert response.status_code == 400
    assert "update_id" in response.json["message"]


@pytest.mark.parametrize(("yaml_text", "field"), [
    ("name: x\ndefinition: " + "[" * 50_000 + "]" * 50_000, "(yaml)"),
    ("name: x\ndefinition: {trigger: {event: cart_updated, filter: {property: total, op: gte, value: .nan}}, "
     "steps: [{type: exit, id: e}]}", "definition.trigger.filter.value"),
    ('name: "Carts\\0"\ndefinition: {trigger: {event: cart_updated}, steps: [{type: exit, id: e}]}', "name"),
])
def test_a_journey_file_with_what_json_may_not_hold_is_refused_naming_it(
    client: FlaskClient, shop: Shop, yaml_text: str, field: str
) -> None:
    """POST /api/v1/journeys/import of YAML nested 50,000 deep, with .nan or with a NUL: 422 naming it."""
    response = send_signed(client, "POST", "/api/v1/journeys/import", shop.credentials, yaml_text.encode(),
                           headers={"Content-Type": "application/yaml"})
    assert response.status_code == 422, response.json
    assert [e["field"] for e in response.json["errors"]] == [field]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/contacts/ada%00x"), ("GET", "/api/v1/contacts/ada%00x/timeline"),
    ("DELETE", "/api/v1/contacts/ada%00x"), ("POST", "/api/v1/webhooks/shopify/ws%00x"),
])
def test_a_nul_in_a_path_names_nothing_and_is_404(client: FlaskClient, shop: Shop, method: str, path: str) -> None:
    """Nothing stored can hold a NUL, so a path holding one is 404 (PostgreSQL refused the look-up: 500)."""
    response = send_signed(client, method, path, shop.credentials)
    assert response.status_code == 404


def test_a_nul_in_the_subscription_form_is_refused_with_400(client: FlaskClient, shop: Shop) -> None:
    """A form value with a NUL is refused before it reaches the database (PostgreSQL: 500)."""
    page = client.get(f"/s/{shop.id}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    response = client.post(f"/s/{shop.id}", data={"csrf_token": token[1], "email": "ada@example.com",
                                                   "first_name": "A\x00da"})
    assert response.status_code == 400
    assert "NUL" in response.json["message"]


def test_a_twilio_webhook_form_with_a_nul_is_refused_with_400(client: FlaskClient, shop: Shop) -> None:
    """A signed SMS whose text holds a NUL cannot be stored: 400 malformed_webhook, not a 500 on PostgreSQL."""
    path = f"/api/v1/providers/sms/{shop.id}"
    form = {"AccountSid": "AC" + "0" * 32, "MessageSid": "SM" + "1" * 32, "From": "+447700900123",
            "To": "+15005550006", "Body": "st\x00op", "NumMedia": "0"}
    signed = "http://127.0.0.1:8000" + path + "".join(k + v for k, v in sorted(form.items()))
    signature = base64.b64encode(hmac.new(b"twilio-token", signed.encode(), hashlib.sha1).digest()).decode()
    response = client.post(path, data=urlencode(form), headers={
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert response.json["error"] == "malformed_webhook"

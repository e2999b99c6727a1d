"""POST /api/v1/events and /events/batch against the real database and Redis.

An accepted event is stored, its contact upserted and one evaluation job enqueued
after the commit; everything refused (auth, JSON, validation, size) stores nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import MAX_BATCH
from engine.signing import sign
from engine.store.db import DeferredJob, make_sessionmaker
from engine.store.models import Contact, Event
from tests.conftest import FakeClock, Shop
from tests.webapp.conftest import auth_headers, post_signed
from workers.dev.demo import cart_event, order_event
from workers.queues import make_job_sink, make_queues, relay_inbox

EVENTS = "/api/v1/events"
BATCH = "/api/v1/events/batch"


# --- what the database and the queue hold ------------------------------------------


def stored_events(sessions: sessionmaker[Session], workspace_id: str) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).where(Event.workspace_id == workspace_id).order_by(Event.id)))


def stored_contact(sessions: sessionmaker[Session], workspace_id: str, external_id: str) -> Contact | None:
    with sessions() as session:
        return session.scalar(
            select(Contact).where(Contact.workspace_id == workspace_id, Contact.external_id == external_id)
        )


def contact_count(sessions: sessionmaker[Session], workspace_id: str) -> int:
    with sessions() as session:
        count = select(func.count()).select_from(Contact).where(Contact.workspace_id == workspace_id)
        return session.scalar(count) or 0


def queued_event_batches(redis: Redis, namespace: str) -> list[list[int]]:
    """The id batches of the evaluation jobs on this test's events queue, once relayed."""
    relay_inbox(redis, namespace)
    jobs = make_queues(redis, namespace)["events"].get_jobs()
    assert all(job.func_name == "workers.jobs.evaluate_events" for job in jobs)
    return [list(job.args[0]) for job in jobs]


def assert_nothing_stored(sessions: sessionmaker[Session], redis: Redis, namespace: str, workspace_id: str) -> None:
    assert stored_events(sessions, workspace_id) == []
    assert contact_count(sessions, workspace_id) == 0
    assert queued_event_batches(redis, namespace) == []


def minimal_event(event_id: str, customer: str = "c-1") -> dict[str, Any]:
    return {"id": event_id, "type": "contact_updated", "contact": {"external_id": customer}}


def error_fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body["errors"]}


# --- one event: accepted ------------------------------------------------------------


def test_valid_event_is_answered_202_with_its_ids(client: FlaskClient, shop: Shop) -> None:
    """A valid signed event answers 202 with its own id, the stored row's id and the contact's id."""
    event = cart_event(customer="cust-1")
    response = post_signed(client, EVENTS, event, shop.credentials)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "accepted"
    assert body["event_id"] == event["id"]
    assert isinstance(body["id"], int) and isinstance(body["contact_id"], int)


def test_accepted_event_is_stored_with_its_properties(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    """The 202 means the event row is committed, under the ids the answer gave."""
    event = cart_event(customer="cust-1")
    body = post_signed(client, EVENTS, event, shop.credentials).get_json()
    [stored] = stored_events(sessions, shop.id)
    assert (stored.id, stored.external_id, stored.contact_id) == (body["id"], event["id"], body["contact_id"])
    assert stored.type == "cart_updated"
    assert stored.properties == event["properties"]
    assert stored.received_at == clock()
    assert stored.occurred_at == clock()  # no occurred_at given: it happened when it arrived


def test_accepted_event_upserts_its_contact(client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]) -> None:
    """The event's contact is created with the profile and consent the event carried."""
    event = cart_event(customer="cust-1", email="Ada@Example.com")
    body = post_signed(client, EVENTS, event, shop.credentials).get_json()
    contact = stored_contact(sessions, shop.id, "cust-1")
    assert contact is not None
    assert contact.id == body["contact_id"]
    assert (contact.email, contact.first_name, contact.timezone) == ("ada@example.com", "Ada", "Europe/London")
    assert contact.consent == {"email": "opted_in", "sms": "opted_in"} and contact.phone == "+447700900123"


def test_later_event_updates_the_contact_without_erasing_fields_it_leaves_out(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """A second event for the same contact updates only what it says; other fields keep their value."""
    cart = cart_event(customer="cust-1")
    post_signed(client, EVENTS, cart, shop.credentials)
    update = minimal_event("evt-rename", "cust-1")
    update["contact"]["first_name"] = "Augusta"
    post_signed(client, EVENTS, update, shop.credentials)
    contact = stored_contact(sessions, shop.id, "cust-1")
    assert contact is not None
    assert (contact.first_name, contact.last_name, contact.email) == ("Augusta", "Lovelace", "ada@example.com")
    assert contact_count(sessions, shop.id) == 1


def test_accepted_event_enqueues_exactly_one_evaluation_job_with_its_id(
    client: FlaskClient, shop: Shop, redis: Redis, namespace: str
) -> None:
    """One RQ job on the events queue carries the stored event's id."""
    body = post_signed(client, EVENTS, cart_event(), shop.credentials).get_json()
    assert queued_event_batches(redis, namespace) == [[body["id"]]]


def test_evaluation_job_reaches_the_queue_only_after_the_event_is_committed(
    app: Flask, client: FlaskClient, shop: Shop, redis: Redis, namespace: str, sessions: sessionmaker[Session]
) -> None:
    """At the moment the job is handed to Redis, another connection can already read the event."""
    queue_sink = make_job_sink(redis, namespace)
    visible_when_enqueued: list[bool] = []

    def checking_sink(jobs: list[DeferredJob]) -> None:
        with sessions() as session:
            visible_when_enqueued.extend(session.get(Event, id_) is not None for job in jobs for id_ in job.ids)
        queue_sink(jobs)

    parts = app.extensions["rapport"]
    parts["sessions"] = make_sessionmaker(parts["engine"], checking_sink)
    post_signed(client, EVENTS, cart_event(), shop.credentials)
    assert visible_when_enqueued == [True]
    assert len(queued_event_batches(redis, namespace)) == 1


# --- one event: duplicate -----------------------------------------------------------


def test_repeated_event_id_is_answered_200_as_a_duplicate(client: FlaskClient, shop: Shop) -> None:
    """A shop retrying a webhook gets 200 {"duplicate": true} the second time."""
    event = cart_event()
    post_signed(client, EVENTS, event, shop.credentials)
    response = post_signed(client, EVENTS, event, shop.credentials)
    assert response.status_code == 200
    assert response.get_json() == {"duplicate": True, "event_id": event["id"]}


def test_repeated_event_id_changes_neither_the_event_nor_the_contact(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    """A duplicate with a different first_name and payload leaves the stored event and contact as they were."""
    event = cart_event(customer="cust-1")
    post_signed(client, EVENTS, event, shop.credentials)
    before_event = stored_events(sessions, shop.id)[0]
    before_contact = stored_contact(sessions, shop.id, "cust-1")
    assert before_contact is not None

    clock.advance(minutes=1)
    retry = json.loads(json.dumps(event))
    retry["contact"]["first_name"] = "Someone Else"
    retry["contact"]["consent"] = {"email": "opted_out"}
    retry["properties"]["total"] = 1.0
    assert post_signed(client, EVENTS, retry, shop.credentials).status_code == 200

    [after_event] = stored_events(sessions, shop.id)
    after_contact = stored_contact(sessions, shop.id, "cust-1")
    assert after_contact is not None
    assert (after_event.id, after_event.properties) == (before_event.id, before_event.properties)
    assert after_contact.first_name == "Ada"
    assert after_contact.consent == {"email": "opted_in", "sms": "opted_in"}
    assert after_contact.updated_at == before_contact.updated_at


def test_repeated_event_id_enqueues_no_second_job(
    client: FlaskClient, shop: Shop, redis: Redis, namespace: str
) -> None:
    """Only the first delivery of an event id is queued for evaluation."""
    event = cart_event()
    first = post_signed(client, EVENTS, event, shop.credentials).get_json()
    post_signed(client, EVENTS, event, shop.credentials)
    assert queued_event_batches(redis, namespace) == [[first["id"]]]


def test_same_event_id_in_another_workspace_is_not_a_duplicate(
    client: FlaskClient, shop: Shop, second_shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """Event ids are unique per workspace: two shops may both send evt-1."""
    event = minimal_event("evt-1")
    assert post_signed(client, EVENTS, event, shop.credentials).status_code == 202
    assert post_signed(client, EVENTS, event, second_shop.credentials).status_code == 202
    assert len(stored_events(sessions, shop.id)) == len(stored_events(sessions, second_shop.id)) == 1


# --- authentication -----------------------------------------------------------------


def test_wrong_api_key_is_refused_with_401_and_nothing_stored(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str
) -> None:
    """An unknown API key answers 401 with a Bearer challenge, even with a valid signature."""
    response = post_signed(client, EVENTS, cart_event(), shop.credentials,
                           headers={"Authorization": "Bearer rk_not-a-real-key"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_nothing_stored(sessions, redis, namespace, shop.id)


@pytest.mark.parametrize("authorization", [None, "", "Bearer ", "Basic dXNlcjpwYXNz", "KEY"],
                         ids=["absent", "empty", "no-key", "basic", "key-without-scheme"])
def test_missing_bearer_key_is_refused_with_401_and_nothing_stored(
    client: FlaskClient, shop: Shop, clock: FakeClock, sessions: sessionmaker[Session], redis: Redis,
    namespace: str, authorization: str | None,
) -> None:
    """Without 'Authorization: Bearer <key>' a correctly signed event is refused."""
    body = json.dumps(cart_event()).encode()
    headers = {"Rapport-Signature": sign(shop.credentials.signing_secret, body, int(clock().timestamp()))}
    if authorization is not None:
        headers["Authorization"] = shop.credentials.api_key if authorization == "KEY" else authorization
    response = client.post(EVENTS, data=body, headers=headers)
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.get_json()["message"]
    assert_nothing_stored(sessions, redis, namespace, shop.id)


def test_signature_made_with_another_secret_is_refused(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str
) -> None:
    """A body signed with the wrong secret answers 401 'does not match'."""
    response = post_signed(client, EVENTS, cart_event(), shop.credentials, secret="whsec_wrong")
    assert response.status_code == 401
    assert "does not match" in response.get_json()["message"]
    assert_nothing_stored(sessions, redis, namespace, shop.id)


def test_body_changed_after_signing_is_refused(
    client: FlaskClient, shop: Shop, clock: FakeClock, sessions: sessionmaker[Session], redis: Redis, namespace: str
) -> None:
    """A signature over one body does not vouch for another: the tampered body answers 401."""
    event = cart_event()
    signed_body = json.dumps(event).encode()
    event["properties"]["total"] = 0.01
    tampered = json.dumps(event).encode()
    signature = sign(shop.credentials.signing_secret, signed_body, int(clock().timestamp()))
    headers = {**auth_headers(shop.credentials), "Rapport-Signature": signature}
    response = client.post(EVENTS, data=tampered, headers=headers)
    assert response.status_code == 401
    assert "does not match" in response.get_json()["message"]
    assert_nothing_stored(sessions, redis, namespace, shop.id)


@pytest.mark.parametrize("offset_minutes", [-6, 6], ids=["six-minutes-old", "six-minutes-ahead"])
def test_signature_timestamp_more_than_five_minutes_off_is_refused(
    client: FlaskClient, shop: Shop, clock: FakeClock, sessions: sessionmaker[Session], redis: Redis, namespace: str,
    offset_minutes: int,
) -> None:
    """A correctly signed request stamped 6 minutes away from now answers 401 naming the 5-minute limit."""
    timestamp = int(clock().timestamp()) + offset_minutes * 60
    response = post_signed(client, EVENTS, cart_event(), shop.credentials, timestamp=timestamp)
    assert response.status_code == 401
    assert "5 minutes" in response.get_json()["message"]
    assert_nothing_stored(sessions, redis, namespace, shop.id)


def test_signature_timestamp_four_minutes_off_is_accepted(client: FlaskClient, shop: Shop, clock: FakeClock) -> None:
    """Clock skew inside the 5-minute tolerance is fine."""
    timestamp = int(clock().timestamp()) - 4 * 60
    assert post_signed(client, EVENTS, cart_event(), shop.credentials, timestamp=timestamp).status_code == 202


@pytest.mark.parametrize(
    "signature",
    ["", "garbage", "t=abc,v1=00ff", "t=1700000000", "v1=00ff", "sha256=00ff"],
    ids=["empty", "garbage", "non-numeric-t", "no-v1", "no-t", "other-scheme"],
)
def test_malformed_signature_header_is_refused(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str, signature: str
) -> None:
    """A Rapport-Signature that is not t=<unix>,v1=<hex> answers 401."""
    response = post_signed(client, EVENTS, cart_event(), shop.credentials, headers={"Rapport-Signature": signature})
    assert response.status_code == 401
    assert "Rapport-Signature" in response.get_json()["message"]
    assert_nothing_stored(sessions, redis, namespace, shop.id)


def test_missing_signature_header_is_refused(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str
) -> None:
    """A valid API key alone does not let anyone write events: the body must be signed."""
    response = client.post(EVENTS, json=cart_event(), headers=auth_headers(shop.credentials))
    assert response.status_code == 401
    assert "missing Rapport-Signature" in response.get_json()["message"]
    assert_nothing_stored(sessions, redis, namespace, shop.id)


def test_event_signed_with_another_workspaces_secret_is_refused(
    client: FlaskClient, shop: Shop, second_shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str
) -> None:
    """Workspace A's key with a signature by B's secret answers 401 and writes to neither workspace."""
    b_secret = second_shop.credentials.signing_secret
    response = post_signed(client, EVENTS, cart_event(), shop.credentials, secret=b_secret)
    assert response.status_code == 401
    assert_nothing_stored(sessions, redis, namespace, shop.id)
    assert_nothing_stored(sessions, redis, namespace, second_shop.id)


def test_batch_needs_a_valid_signature_too(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str
) -> None:
    """The batch endpoint refuses a badly signed body like the single one."""
    response = post_signed(client, BATCH, {"events": [cart_event()]}, shop.credentials, secret="whsec_wrong")
    assert response.status_code == 401
    assert_nothing_stored(sessions, redis, namespace, shop.id)


# --- malformed and invalid bodies ---------------------------------------------------


@pytest.mark.parametrize("raw", [b'{"id": "evt-1", ', b"not json", b"\xff\xfe{}"],
                         ids=["truncated", "text", "not-utf8"])
def test_malformed_json_is_answered_400(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str, raw: bytes
) -> None:
    """A correctly signed body that is not JSON answers 400 malformed_json."""
    response = post_signed(client, EVENTS, raw, shop.credentials)
    assert response.status_code == 400
    assert response.get_json()["error"] == "malformed_json"
    assert_nothing_stored(sessions, redis, namespace, shop.id)


def test_malformed_json_batch_is_answered_400(client: FlaskClient, shop: Shop) -> None:
    """The batch endpoint answers a body that is not JSON with 400 malformed_json as well."""
    response = post_signed(client, BATCH, b'{"events": [', shop.credentials)
    assert response.status_code == 400
    assert response.get_json()["error"] == "malformed_json"


def _without(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != field}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_without(minimal_event("evt-1"), "id"), "id"),
        (_without(minimal_event("evt-1"), "type"), "type"),
        (_without(minimal_event("evt-1"), "contact"), "contact"),
        ({**minimal_event("evt-1"), "contact": {"first_name": "Ada"}}, "contact"),
        ({**minimal_event("evt-1"), "contact": {"external_id": ""}}, "contact.external_id"),
    ],
    ids=["no-id", "no-type", "no-contact", "contact-without-identity", "empty-external-id"],
)
def test_missing_required_field_is_answered_422_naming_it(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str,
    payload: dict[str, Any], field: str,
) -> None:
    """An event missing a required field answers 422 with an error on that field's path."""
    response = post_signed(client, EVENTS, payload, shop.credentials)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "invalid_event"
    assert field in error_fields(body)
    assert_nothing_stored(sessions, redis, namespace, shop.id)


@pytest.mark.parametrize("payload", [[], None, "evt-1", 1, [minimal_event("evt-1")]],
                         ids=["empty-list", "null", "string", "number", "list-of-events"])
def test_json_that_is_not_an_object_is_answered_422(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str, payload: Any
) -> None:
    """Valid JSON that is not an event object answers 422 with an error on the body itself."""
    response = post_signed(client, EVENTS, payload, shop.credentials)
    assert response.status_code == 422
    assert error_fields(response.get_json()) == {"(root)"}
    assert_nothing_stored(sessions, redis, namespace, shop.id)


def test_every_missing_field_is_named_at_once(client: FlaskClient, shop: Shop) -> None:
    """An empty object gets one error each for id, type and contact, not just the first."""
    response = post_signed(client, EVENTS, {}, shop.credentials)
    assert response.status_code == 422
    assert error_fields(response.get_json()) >= {"id", "type", "contact"}


def _with_contact(**fields: Any) -> dict[str, Any]:
    event = minimal_event("evt-1")
    event["contact"] = {**event["contact"], **fields}
    return event


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**minimal_event("evt-1"), "properties": ["not", "an", "object"]}, "properties"),
        ({**minimal_event("evt-1"), "occurred_at": "2026-11-23T10:00:00"}, "occurred_at"),
        ({**minimal_event("evt-1"), "occurred_at": "yesterday"}, "occurred_at"),
        ({**minimal_event("evt-1"), "type": "cart updated!"}, "type"),
        ({**minimal_event("evt-1"), "surprise": 1}, "surprise"),
        (_with_contact(email="not-an-email"), "contact.email"),
        (_with_contact(consent={"email": "maybe"}), "contact.consent.email"),
        (_with_contact(consent={"fax": "opted_in"}), "contact.consent.fax.[key]"),
        (_with_contact(timezone="Mars/Olympus_Mons"), "contact.timezone"),
        (_with_contact(timezone="America"), "contact.timezone"),
        (_with_contact(birthday="31/12/1990"), "contact.birthday"),
    ],
    ids=["properties-list", "occurred-at-naive", "occurred-at-text", "type-pattern", "unknown-field",
         "bad-email", "unknown-consent-state", "unknown-consent-channel", "unknown-timezone", "timezone-folder",
         "bad-birthday"],
)
def test_field_of_wrong_type_is_answered_422_naming_it(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str,
    payload: dict[str, Any], field: str,
) -> None:
    """A field with a value of the wrong shape answers 422 with an error on that field's path."""
    response = post_signed(client, EVENTS, payload, shop.credentials)
    assert response.status_code == 422
    assert field in error_fields(response.get_json())
    assert_nothing_stored(sessions, redis, namespace, shop.id)


def test_occurred_at_with_an_offset_is_stored_in_utc(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """occurred_at with +01:00 is accepted and stored as the same instant."""
    event = {**minimal_event("evt-1"), "occurred_at": "2026-11-23T10:00:00+01:00"}
    assert post_signed(client, EVENTS, event, shop.credentials).status_code == 202
    [stored] = stored_events(sessions, shop.id)
    assert stored.occurred_at.isoformat() == "2026-11-23T09:00:00+00:00"


@pytest.mark.parametrize("path", [EVENTS, BATCH])
def test_body_over_one_mebibyte_is_answered_413_as_json(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str, path: str
) -> None:
    """A signed body just over 1 MiB answers 413 with a JSON error, and nothing is stored."""
    event = cart_event()
    event["properties"]["note"] = "x" * (1024 * 1024)
    payload = {"events": [event]} if path == BATCH else event
    response = post_signed(client, path, payload, shop.credentials)
    assert response.status_code == 413
    body = response.get_json()
    assert body["error"] == "request_entity_too_large"
    assert "KiB" in body["message"]
    assert_nothing_stored(sessions, redis, namespace, shop.id)


# --- batches -----------------------------------------------------------------------


@pytest.fixture
def mixed_batch(client: FlaskClient, shop: Shop) -> tuple[list[dict[str, Any]], Any]:
    """[new, invalid, new, repeat of the first, already stored], posted once the last was stored."""
    already = order_event("cart-1", customer="cust-2")
    assert post_signed(client, EVENTS, already, shop.credentials).status_code == 202
    first, second = cart_event(customer="cust-1"), minimal_event("evt-new", "cust-3")
    events = [first, {"id": "evt-bad", "type": "cart_updated"}, second, first, already]
    return events, post_signed(client, BATCH, {"events": events}, shop.credentials)


def test_mixed_batch_reports_each_item_in_order_with_counts(mixed_batch: tuple[list[dict[str, Any]], Any]) -> None:
    """A batch with new, invalid and duplicate items answers 202 with one result per item, in order."""
    events, response = mixed_batch
    assert response.status_code == 202
    body = response.get_json()
    assert [(r["index"], r["status"]) for r in body["results"]] == [
        (0, "accepted"), (1, "invalid"), (2, "accepted"), (3, "duplicate"), (4, "duplicate"),
    ]
    assert (body["accepted"], body["duplicate"], body["invalid"]) == (2, 2, 1)
    assert [body["results"][i]["event_id"] for i in (0, 2, 3, 4)] == [events[i]["id"] for i in (0, 2, 3, 4)]
    assert "contact" in error_fields(body["results"][1])


def test_mixed_batch_stores_only_the_valid_new_events(
    mixed_batch: tuple[list[dict[str, Any]], Any], shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """Only the two new valid events are added, each once, under the ids the answer gave."""
    events, response = mixed_batch
    results = response.get_json()["results"]
    stored = stored_events(sessions, shop.id)
    assert sorted(e.external_id for e in stored) == sorted([events[0]["id"], events[2]["id"], events[4]["id"]])
    by_external_id = {e.external_id: e.id for e in stored}
    assert [by_external_id[events[i]["id"]] for i in (0, 2)] == [results[0]["id"], results[2]["id"]]


def test_mixed_batch_queues_exactly_the_accepted_ids_for_evaluation(
    mixed_batch: tuple[list[dict[str, Any]], Any], redis: Redis, namespace: str
) -> None:
    """The batch's accepted ids, and only those, join the evaluation work after the earlier event's."""
    _, response = mixed_batch
    results = response.get_json()["results"]
    batches = queued_event_batches(redis, namespace)
    assert len(batches) == 1  # coalesced: the earlier single event and the batch make one job
    assert batches[0][1:] == [results[0]["id"], results[2]["id"]]


def test_batch_upserts_a_repeated_contact_once(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """Two events for one contact in a batch make one contact, with the later event's fields."""
    first, second = minimal_event("evt-1", "cust-1"), minimal_event("evt-2", "cust-1")
    first["contact"]["first_name"], second["contact"]["first_name"] = "Ada", "Augusta"
    assert post_signed(client, BATCH, {"events": [first, second]}, shop.credentials).status_code == 202
    assert contact_count(sessions, shop.id) == 1
    contact = stored_contact(sessions, shop.id, "cust-1")
    assert contact is not None and contact.first_name == "Augusta"


def test_batch_of_only_invalid_events_is_answered_422(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str
) -> None:
    """When no item is valid the batch answers 422, still reporting each item."""
    events = [{"id": "evt-1"}, {"type": "cart_updated"}]
    response = post_signed(client, BATCH, {"events": events}, shop.credentials)
    assert response.status_code == 422
    body = response.get_json()
    assert [r["status"] for r in body["results"]] == ["invalid", "invalid"]
    assert body["invalid"] == 2
    assert_nothing_stored(sessions, redis, namespace, shop.id)


def test_batch_of_only_duplicates_is_answered_200(
    client: FlaskClient, shop: Shop, redis: Redis, namespace: str
) -> None:
    """A batch that is entirely a retry answers 200 and queues nothing new."""
    events = [minimal_event("evt-1"), minimal_event("evt-2")]
    post_signed(client, BATCH, {"events": events}, shop.credentials)
    response = post_signed(client, BATCH, {"events": events}, shop.credentials)
    assert response.status_code == 200
    assert response.get_json()["duplicate"] == 2
    assert len(queued_event_batches(redis, namespace)) == 1


def test_batch_over_the_limit_is_answered_422(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str
) -> None:
    """More than 1000 events answer 422 naming the limit, and none of them is stored."""
    events = [minimal_event(f"evt-{i}") for i in range(MAX_BATCH + 1)]
    response = post_signed(client, BATCH, {"events": events}, shop.credentials)
    assert response.status_code == 422
    body = response.get_json()
    assert error_fields(body) == {"events"}
    assert str(MAX_BATCH) in body["message"]
    assert_nothing_stored(sessions, redis, namespace, shop.id)


def test_batch_at_the_limit_is_accepted(client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]) -> None:
    """Exactly 1000 events are accepted and stored."""
    events = [minimal_event(f"evt-{i}", f"cust-{i % 10}") for i in range(MAX_BATCH)]
    response = post_signed(client, BATCH, {"events": events}, shop.credentials)
    assert response.status_code == 202
    assert response.get_json()["accepted"] == MAX_BATCH
    assert len(stored_events(sessions, shop.id)) == MAX_BATCH


@pytest.mark.parametrize(
    "payload",
    [{"events": {"id": "evt-1"}}, {"events": "evt-1"}, {"events": []}, {}, [minimal_event("evt-1")]],
    ids=["object", "string", "empty-list", "absent", "bare-list"],
)
def test_batch_without_a_list_of_events_is_answered_422(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], redis: Redis, namespace: str, payload: Any
) -> None:
    """The batch body must be {"events": [...]} with at least one item."""
    response = post_signed(client, BATCH, payload, shop.credentials)
    assert response.status_code == 422
    assert error_fields(response.get_json()) == {"events"}
    assert_nothing_stored(sessions, redis, namespace, shop.id)


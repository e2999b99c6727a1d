"""The read side of /api/v1 (contacts, timeline, erasure, outbox), workspace isolation, and /healthz.

Data gets in the way a shop puts it in (signed events through the API); rows the API
cannot create (runs, messages, outbox captures) are inserted with the test's sessions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.profiles import subject_digest
from engine.journeys.versions import create_journey
from engine.settings import Settings
from engine.store.models import Contact, Erasure, Event, JournalEntry, Message, OutboxCapture, Run
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, drain
from tests.webapp.conftest import auth_headers, close_app, post_signed, send_signed
from triggers import abandoned_cart
from webapp.api.openapi import SPEC
from webapp.app import create_app
from workers.dev.demo import cart_event, order_event
from workers.runtime import Runtime

CHANNELS = ("email", "sms", "telegram", "whatsapp", "viber")


def contact_url(external_id: str, suffix: str = "") -> str:
    return f"/api/v1/contacts/{external_id}{suffix}"


def send_event(client: FlaskClient, shop: Shop, event: dict[str, Any]) -> dict[str, Any]:
    response = post_signed(client, "/api/v1/events", event, shop.credentials)
    assert response.status_code == 202, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def rows_of(sessions: sessionmaker[Session], model: Any, contact_id: int) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(model.contact_id == contact_id)) or 0


# --- profile and timeline -----------------------------------------------------------


def test_profile_shows_the_contact_the_events_built(client: FlaskClient, shop: Shop) -> None:
    """GET /contacts/<id> answers the upserted profile under the contact's id."""
    accepted = send_event(client, shop, cart_event(customer="cust-1", email="ada@example.com"))
    response = client.get(contact_url("cust-1"), headers=auth_headers(shop.credentials))
    assert response.status_code == 200
    profile = response.get_json()
    assert profile["id"] == accepted["contact_id"]
    assert (profile["external_id"], profile["email"], profile["first_name"]) == ("cust-1", "ada@example.com", "Ada")


def test_profile_shows_consent_per_channel_and_unknown_where_none_was_given(client: FlaskClient, shop: Shop) -> None:
    """Consent lists every channel: the states the shop sent, 'unknown' for the rest."""
    event = cart_event(customer="cust-1")
    event["contact"]["consent"] = {"email": "opted_in", "sms": "opted_out"}
    send_event(client, shop, event)
    consent = client.get(contact_url("cust-1"), headers=auth_headers(shop.credentials)).get_json()["consent"]
    assert consent == {"email": "opted_in", "sms": "opted_out", "telegram": "unknown", "whatsapp": "unknown",
                       "viber": "unknown"}


def test_consent_from_a_later_event_is_merged_per_channel(client: FlaskClient, shop: Shop) -> None:
    """An event that only mentions sms consent leaves the stored email consent alone."""
    send_event(client, shop, cart_event(customer="cust-1"))  # email: opted_in
    send_event(client, shop, {"id": "evt-sms", "type": "contact_updated",
                              "contact": {"external_id": "cust-1", "consent": {"sms": "pending"}}})
    consent = client.get(contact_url("cust-1"), headers=auth_headers(shop.credentials)).get_json()["consent"]
    assert (consent["email"], consent["sms"]) == ("opted_in", "pending")


def test_contact_known_only_by_email_is_found_under_its_email_key(client: FlaskClient, shop: Shop) -> None:
    """A contact sent with an email and no external_id is stored and served as 'email:<address>'."""
    send_event(client, shop, {"id": "evt-1", "type": "contact_updated", "contact": {"email": "Bob@Example.com"}})
    response = client.get(contact_url("email:bob@example.com"), headers=auth_headers(shop.credentials))
    assert response.status_code == 200
    assert response.get_json()["email"] == "bob@example.com"


def test_unknown_contact_is_answered_404(client: FlaskClient, shop: Shop) -> None:
    """Asking for an external id the workspace never sent answers 404 not_found."""
    response = client.get(contact_url("nobody"), headers=auth_headers(shop.credentials))
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_reading_a_contact_needs_an_api_key(client: FlaskClient, shop: Shop) -> None:
    """GET /contacts/<id> without a key, or with an unknown one, answers 401."""
    send_event(client, shop, cart_event(customer="cust-1"))
    assert client.get(contact_url("cust-1")).status_code == 401
    assert client.get(contact_url("cust-1"), headers={"Authorization": "Bearer rk_nope"}).status_code == 401


def test_timeline_lists_the_contacts_events(client: FlaskClient, shop: Shop, clock: FakeClock) -> None:
    """The timeline shows each event with its type, id, time and properties, oldest first."""
    cart = cart_event("cart-1", customer="cust-1")
    send_event(client, shop, cart)
    clock.advance(minutes=5)
    update = {"id": "evt-later", "type": "contact_updated", "contact": {"external_id": "cust-1"}}
    send_event(client, shop, update)

    response = client.get(contact_url("cust-1", "/timeline"), headers=auth_headers(shop.credentials))
    assert response.status_code == 200
    body = response.get_json()
    assert body["contact"]["external_id"] == "cust-1"
    events = [item for item in body["timeline"] if item["kind"] == "event"]
    assert [(e["event_id"], e["type"]) for e in events] == [
        (cart["id"], "cart_updated"), ("evt-later", "contact_updated"),
    ]
    assert events[0]["properties"]["cart_id"] == "cart-1"
    assert events[0]["at"] == (clock() - timedelta(minutes=5)).isoformat()


def test_timeline_keeps_the_order_things_happened_in_within_one_instant(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock, runtime: Runtime
) -> None:
    """Entries with the same timestamp read in the order they were written: the event, enrolled, then waiting."""
    with sessions.begin() as session:
        create_journey(session, shop.id, abandoned_cart.NAME, abandoned_cart.recipe(), templates=SEED_TEMPLATES,
                       now=clock())
    send_event(client, shop, cart_event("cart-1", customer="cust-1"))
    drain(runtime)  # the event is evaluated at the same instant: enrolled and waiting share its timestamp

    body = client.get(contact_url("cust-1", "/timeline"), headers=auth_headers(shop.credentials)).get_json()
    entries = [item for item in body["timeline"] if item["kind"] != "consent_changed"]  # the event's consent
    kinds = [item["kind"] for item in entries]
    assert kinds[:3] == ["event", "enrolled", "waiting"], kinds
    assert len({item["at"] for item in entries[:3]}) == 1


def test_timeline_says_why_in_words_and_in_fields_a_program_can_count(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock, runtime: Runtime
) -> None:
    """An order ending the cart journey: the sentence as ever, beside it the reason code and the goal."""
    with sessions.begin() as session:
        create_journey(session, shop.id, abandoned_cart.NAME, abandoned_cart.recipe(), templates=SEED_TEMPLATES,
                       now=clock())
    send_event(client, shop, cart_event("cart-1", customer="cust-1"))
    drain(runtime)
    send_event(client, shop, order_event("cart-1", customer="cust-1"))
    drain(runtime)

    body = client.get(contact_url("cust-1", "/timeline"), headers=auth_headers(shop.credentials)).get_json()
    schema = Draft202012Validator(SPEC["components"]["schemas"]["TimelineEntry"])
    assert [error.message for entry in body["timeline"] for error in schema.iter_errors(entry)] == []
    [exited] = [item for item in body["timeline"] if item["kind"] == "exited"]
    assert (exited["detail"], exited["reason"], exited["goal"]) == (
        "goal reached: order placed", "goal_reached", "order placed")
    [waiting] = [item for item in body["timeline"] if item["kind"] == "waiting"]
    assert (waiting["label"], waiting["reason"], waiting["arm"], waiting["goal"]) == (None, None, None, None)


def test_timeline_of_an_unknown_contact_is_answered_404(client: FlaskClient, shop: Shop) -> None:
    """There is no empty timeline for a contact that does not exist."""
    assert client.get(contact_url("nobody", "/timeline"), headers=auth_headers(shop.credentials)).status_code == 404


# --- erasure ------------------------------------------------------------------------

ERASED_ID = "cust-erase-7f3a9c"
ERASED_EMAIL = "erase-me-7f3a9c@example.com"


@dataclass(frozen=True)
class EnrolledContact:
    """A contact with an event, a run, a sent message, a journal entry and an outbox capture."""

    contact_id: int
    event_id: int
    message_id: int


@pytest.fixture
def enrolled(client: FlaskClient, shop: Shop, sessions: sessionmaker[Session], clock: FakeClock) -> EnrolledContact:
    accepted = send_event(client, shop, cart_event("cart-1", customer=ERASED_ID, email=ERASED_EMAIL))
    now = clock()
    with sessions.begin() as session:
        journey = create_journey(session, shop.id, abandoned_cart.NAME, abandoned_cart.recipe(),
                                 templates=SEED_TEMPLATES, now=now)
        assert journey.live_version_id is not None
        run = Run(workspace_id=shop.id, journey_id=journey.id, journey_version_id=journey.live_version_id,
                  contact_id=accepted["contact_id"], key="cart-1", trigger_event_id=accepted["id"],
                  status="completed", step_id="reminder-email", step_entered_at=now, created_at=now, ended_at=now)
        session.add(run)
        session.flush()
        message = Message(workspace_id=shop.id, contact_id=accepted["contact_id"], run_id=run.id,
                          journey_id=journey.id, step_id="reminder-email", channel="email",
                          template="abandoned_cart", to_address=ERASED_EMAIL, context={"first_name": "Ada"},
                          status="sent", scheduled_at=now, sent_at=now, subject="You left something", created_at=now)
        session.add(message)
        session.flush()
        session.add(JournalEntry(workspace_id=shop.id, contact_id=accepted["contact_id"], run_id=run.id,
                                 message_id=message.id, at=now, kind="sent", step_id="reminder-email"))
        session.add(OutboxCapture(workspace_id=shop.id, message_id=message.id, channel="email",
                                  to_address=ERASED_EMAIL, subject="You left something", text="Hi Ada",
                                  html="<p>Hi Ada</p>", received_at=now))
    return EnrolledContact(accepted["contact_id"], accepted["id"], message.id)


def erase(client: FlaskClient, shop: Shop, external_id: str = ERASED_ID) -> Any:
    return send_signed(client, "DELETE", contact_url(external_id), shop.credentials)


def test_erasure_answers_with_what_it_deleted(client: FlaskClient, shop: Shop, enrolled: EnrolledContact) -> None:
    """DELETE /contacts/<id> answers 200 with the number of events, messages and runs removed."""
    response = erase(client, shop)
    assert response.status_code == 200
    assert response.get_json() == {"erased": True, "deleted": {"events": 1, "messages": 1, "runs": 1}}


def test_erased_contact_is_gone_from_the_api(client: FlaskClient, shop: Shop, enrolled: EnrolledContact) -> None:
    """After erasure both the profile and the timeline answer 404."""
    erase(client, shop)
    assert client.get(contact_url(ERASED_ID), headers=auth_headers(shop.credentials)).status_code == 404
    assert client.get(contact_url(ERASED_ID, "/timeline"), headers=auth_headers(shop.credentials)).status_code == 404


def test_erasure_deletes_every_row_holding_the_contacts_data(
    client: FlaskClient, shop: Shop, enrolled: EnrolledContact, sessions: sessionmaker[Session]
) -> None:
    """The contact, its events, runs, messages, journal entries and outbox captures are all deleted."""
    erase(client, shop)
    for model in (Event, Run, Message, JournalEntry):
        assert rows_of(sessions, model, enrolled.contact_id) == 0, model.__name__
    with sessions() as session:
        assert session.get(Contact, enrolled.contact_id) is None
        assert session.scalars(select(OutboxCapture).where(OutboxCapture.message_id == enrolled.message_id)).all() == []


def test_erasure_leaves_a_record_without_personal_data(
    client: FlaskClient, shop: Shop, enrolled: EnrolledContact, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """One erasures row is kept; none of its columns holds the external id or the email."""
    erase(client, shop)
    with sessions() as session:
        rows = session.execute(select(Erasure.__table__).where(Erasure.workspace_id == shop.id)).mappings().all()
    assert len(rows) == 1
    stored = json.dumps({name: str(value) for name, value in rows[0].items()})
    assert ERASED_ID not in stored
    assert ERASED_EMAIL not in stored and ERASED_EMAIL.split("@")[0] not in stored
    assert rows[0]["subject_digest"] == subject_digest(settings.secret_key, shop.id, ERASED_ID)


def test_erasure_keeps_the_workspaces_other_contacts(
    client: FlaskClient, shop: Shop, enrolled: EnrolledContact, sessions: sessionmaker[Session]
) -> None:
    """Erasing one contact leaves another contact of the same workspace and its events intact."""
    other = send_event(client, shop, cart_event(customer="cust-keep", email="keep@example.com"))
    erase(client, shop)
    assert client.get(contact_url("cust-keep"), headers=auth_headers(shop.credentials)).status_code == 200
    assert rows_of(sessions, Event, other["contact_id"]) == 1


def test_erasing_an_unknown_contact_is_answered_404_and_records_nothing(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """No erasure record is written for a contact that was never there."""
    assert erase(client, shop, "nobody").status_code == 404
    with sessions() as session:
        assert session.scalars(select(Erasure).where(Erasure.workspace_id == shop.id)).all() == []


def test_erased_contact_can_come_back_as_a_new_contact(
    client: FlaskClient, shop: Shop, enrolled: EnrolledContact
) -> None:
    """A later event for the erased external id creates a fresh contact, with no old history."""
    erase(client, shop)
    send_event(client, shop, {"id": "evt-return", "type": "contact_updated", "contact": {"external_id": ERASED_ID}})
    body = client.get(contact_url(ERASED_ID, "/timeline"), headers=auth_headers(shop.credentials)).get_json()
    assert [item["event_id"] for item in body["timeline"]] == ["evt-return"]
    assert (body["contact"]["email"], body["contact"]["consent"]["email"]) == (None, "unknown")
    assert (body["runs"], body["messages"]) == ([], [])


# --- workspace isolation ------------------------------------------------------------


def test_key_of_one_workspace_cannot_read_anothers_contact(
    client: FlaskClient, shop: Shop, second_shop: Shop
) -> None:
    """Workspace A's key gets 404 for B's contact and B's timeline, as if they did not exist."""
    send_event(client, second_shop, cart_event(customer="b-only"))
    headers = auth_headers(shop.credentials)
    assert client.get(contact_url("b-only"), headers=headers).status_code == 404
    assert client.get(contact_url("b-only", "/timeline"), headers=headers).status_code == 404
    assert client.get(contact_url("b-only"), headers=auth_headers(second_shop.credentials)).status_code == 200


def test_key_of_one_workspace_cannot_erase_anothers_contact(
    client: FlaskClient, shop: Shop, second_shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """DELETE with A's key answers 404 for B's contact, and B's contact and events survive."""
    accepted = send_event(client, second_shop, cart_event(customer="b-only"))
    assert erase(client, shop, "b-only").status_code == 404
    assert client.get(contact_url("b-only"), headers=auth_headers(second_shop.credentials)).status_code == 200
    assert rows_of(sessions, Event, accepted["contact_id"]) == 1


def test_same_external_id_in_two_workspaces_are_separate_contacts(
    client: FlaskClient, shop: Shop, second_shop: Shop
) -> None:
    """Each workspace's 'cust-1' is its own contact with its own profile and events."""
    a_event, b_event = cart_event(customer="cust-1"), cart_event(customer="cust-1")
    b_event["contact"]["first_name"] = "Grace"
    a = send_event(client, shop, a_event)
    b = send_event(client, second_shop, b_event)
    assert a["contact_id"] != b["contact_id"]

    a_timeline, b_timeline = (
        client.get(contact_url("cust-1", "/timeline"), headers=auth_headers(s.credentials)).get_json()
        for s in (shop, second_shop)
    )
    assert (a_timeline["contact"]["first_name"], b_timeline["contact"]["first_name"]) == ("Ada", "Grace")
    assert [i["event_id"] for i in a_timeline["timeline"] if i["kind"] == "event"] == [a_event["id"]]
    assert [i["event_id"] for i in b_timeline["timeline"] if i["kind"] == "event"] == [b_event["id"]]


def test_erasing_in_one_workspace_keeps_the_same_external_id_in_another(
    client: FlaskClient, shop: Shop, second_shop: Shop
) -> None:
    """Erasing A's 'cust-1' leaves B's 'cust-1' readable."""
    send_event(client, shop, cart_event(customer="cust-1"))
    send_event(client, second_shop, cart_event(customer="cust-1"))
    assert erase(client, shop, "cust-1").status_code == 200
    assert client.get(contact_url("cust-1"), headers=auth_headers(second_shop.credentials)).status_code == 200


# --- outbox -------------------------------------------------------------------------


def capture(workspace_id: str | None, to: str, at: Any, **fields: Any) -> OutboxCapture:
    return OutboxCapture(workspace_id=workspace_id, channel=fields.pop("channel", "email"), to_address=to,
                         subject=fields.pop("subject", f"For {to}"), text=fields.pop("text", "Hello"),
                         html=fields.pop("html", "<p>Hello</p>"), received_at=at, **fields)


@pytest.fixture
def captures(shop: Shop, second_shop: Shop, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    """Two captures for the shop, one for the second shop and one the sink could not attribute."""
    with sessions.begin() as session:
        session.add(capture(shop.id, "first@example.com", clock(), subject="First", text="one", html="<p>1</p>"))
        session.add(capture(second_shop.id, "b-secret@example.com", clock()))
        session.add(capture(None, "stray@example.com", clock()))
        session.add(capture(shop.id, "second@example.com", clock() + timedelta(minutes=1), subject="Second"))


def outbox(client: FlaskClient, shop: Shop, query: str = "") -> Any:
    response = client.get(f"/api/v1/outbox{query}", headers=auth_headers(shop.credentials))
    assert response.status_code == 200
    return response.get_json()["messages"]


def test_outbox_lists_only_the_callers_captures_newest_first(
    client: FlaskClient, shop: Shop, captures: None
) -> None:
    """The outbox holds the shop's own two captures, the later one first; nothing of B's or unattributed."""
    assert [m["to"] for m in outbox(client, shop)] == ["second@example.com", "first@example.com"]


def test_outbox_entries_carry_what_was_sent(client: FlaskClient, shop: Shop, captures: None, clock: FakeClock) -> None:
    """Each entry has channel, to, subject, text, html and sent_at."""
    entry = outbox(client, shop)[1]
    assert {k: entry[k] for k in ("channel", "to", "subject", "text", "html", "sent_at")} == {
        "channel": "email", "to": "first@example.com", "subject": "First", "text": "one", "html": "<p>1</p>",
        "sent_at": clock().isoformat(),
    }


def test_other_workspace_sees_only_its_own_capture(
    client: FlaskClient, second_shop: Shop, captures: None
) -> None:
    """B's key lists B's single capture and none of A's."""
    assert [m["to"] for m in outbox(client, second_shop)] == ["b-secret@example.com"]


def test_outbox_limit_keeps_the_newest(client: FlaskClient, shop: Shop, captures: None) -> None:
    """?limit=1 answers only the newest capture."""
    assert [m["to"] for m in outbox(client, shop, "?limit=1")] == ["second@example.com"]


def test_outbox_needs_an_api_key(client: FlaskClient, captures: None) -> None:
    """Without a key the outbox answers 401, not everyone's mail."""
    assert client.get("/api/v1/outbox").status_code == 401


# --- health -------------------------------------------------------------------------


def test_healthz_answers_200_when_database_and_redis_answer(client: FlaskClient) -> None:
    """With both servers up /healthz is 200 with every check ok."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "down": [], "checks": {"database": "ok", "redis": "ok"}}


@pytest.fixture
def client_without_redis(settings: Settings, clock: FakeClock) -> Iterator[FlaskClient]:
    """An app whose Redis URL points at a socket nobody listens on."""
    app = create_app(replace(settings, redis_url="unix:///tmp/nonexistent-rapport.sock"), clock=clock)
    yield app.test_client()
    close_app(app)


def test_healthz_answers_503_naming_redis_when_it_is_down(client_without_redis: FlaskClient) -> None:
    """With Redis unreachable /healthz is 503, lists redis as down and the database as ok."""
    response = client_without_redis.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "down"
    assert body["down"] == ["redis"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("down")

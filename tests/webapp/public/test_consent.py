"""Consent the person withdrew stays withdrawn: a shop's stale record cannot undo it, the person can."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery.policies import Recipient as Routed
from engine.delivery.policies import consent_skip_reason
from engine.delivery.ports import DeliveryEvent, InboundMessage, WebhookBatch
from engine.settings import Settings
from engine.shops.webhooks import connect_shop
from engine.tracking.inbound import receive
from engine.tracking.receipts import apply_deliveries
from tests.conftest import FakeClock, Shop
from tests.fixtures import load
from tests.webapp.api.test_shop_webhooks import SHOPIFY_SECRET, deliver
from tests.webapp.conftest import auth_headers, post_signed
from tests.webapp.public.test_preferences import save
from tests.webapp.public.test_unsubscribe import Recipient, contact_of, journal_of, links_for, make_recipient, path_of
from webapp.api.openapi import SPEC

PHONE = "+4915112345678"


def shop_event(event_id: str, consent: dict[str, Any], external_id: str = "c-1") -> dict[str, Any]:
    """A shop's customer record, as a `contact_updated` event."""
    return {"id": event_id, "type": "contact_updated", "contact": {"external_id": external_id, "consent": consent}}


def send(client: FlaskClient, shop: Shop, event: dict[str, Any]) -> Any:
    return post_signed(client, "/api/v1/events", event, shop.credentials)


def one_click(client: FlaskClient, settings: Settings, shop: Shop, recipient: Recipient) -> None:
    url = path_of(links_for(settings, shop, recipient).unsubscribe_url)
    answer = client.post(url, data="List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200


def gets_marketing(sessions: sessionmaker[Session], contact_id: int, channel: str) -> bool:
    """What sending decides for a marketing message on `channel` (engine.delivery.policies)."""
    contact = contact_of(sessions, contact_id)
    return consent_skip_reason(channel, Routed(consent=contact.consent), transactional=False) is None


def refusals(sessions: sessionmaker[Session], contact_id: int) -> list[str]:
    return [line.detail or "" for line in journal_of(sessions, contact_id, "consent_refused")]


def test_a_stale_shop_opt_in_after_a_one_click_unsubscribe_is_refused_and_says_why(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """After a one-click unsubscribe, a shop event with `consent: {email: opted_in}` leaves email opted out."""
    ada = make_recipient(sessions, shop, clock)
    clock.advance(days=1)
    one_click(client, settings, shop, ada)
    clock.advance(hours=2)
    assert send(client, shop, shop_event("evt-9", {"email": "opted_in"})).status_code == 202
    assert contact_of(sessions, ada.contact_id).consent["email"] == "opted_out"
    assert not gets_marketing(sessions, ada.contact_id, "email")
    unsubscribed_on = (clock() - timedelta(hours=2)).date().isoformat()
    assert refusals(sessions, ada.contact_id) == [
        f"consent email opted_in from api event evt-9 not applied: withdrawn by the person on {unsubscribed_on} "
        "(one-click unsubscribe)"]


def test_a_stale_shop_opt_in_after_an_sms_stop_is_refused(
    client: FlaskClient, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """СТОП by SMS withdraws SMS consent; the shop's record saying opted_in does not bring it back."""
    ada = make_recipient(sessions, shop, clock, contact={"phone": PHONE, "consent": {"sms": "opted_in"}})
    with sessions.begin() as session:
        receive(session, shop.id, WebhookBatch(deliveries=[], inbound=[InboundMessage(
            channel="sms", sender=PHONE, text="СТОП", receipt_key="SM-stop", occurred_at=clock())]), now=clock())
    clock.advance(minutes=30)
    assert send(client, shop, shop_event("evt-10", {"sms": "opted_in"})).status_code == 202
    assert contact_of(sessions, ada.contact_id).consent["sms"] == "opted_out"
    assert not gets_marketing(sessions, ada.contact_id, "sms")
    [line] = refusals(sessions, ada.contact_id)
    assert "withdrawn by the person" in line and "(sms СТОП)" in line


def test_a_stale_shop_opt_in_after_a_spam_complaint_is_refused(
    client: FlaskClient, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """Marking an email as spam opts the person out of email; a later shop record does not opt them in."""
    ada = make_recipient(sessions, shop, clock)
    with sessions.begin() as session:
        apply_deliveries(session, shop.id, [DeliveryEvent(
            channel="email", status="complained", receipt_key="fbl-1", occurred_at=clock(),
            message_id=ada.message_id)], now=clock())
    clock.advance(days=3)
    assert send(client, shop, shop_event("evt-11", {"email": "opted_in"})).status_code == 202
    assert contact_of(sessions, ada.contact_id).consent["email"] == "opted_out"
    [line] = refusals(sessions, ada.contact_id)
    assert "withdrawn by the person" in line and "spam complaint" in line


def test_a_newer_opt_in_the_person_gave_at_checkout_subscribes_again(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """Consent with its own time after the withdrawal and a person's source (a ticked checkout box) is applied."""
    ada = make_recipient(sessions, shop, clock)
    one_click(client, settings, shop, ada)
    unsubscribed_at = clock()
    clock.advance(days=5)
    older = {"status": "opted_in", "at": (unsubscribed_at - timedelta(days=1)).isoformat(),
             "source": "checkout_checkbox"}
    by_shop = {"status": "opted_in", "at": clock().isoformat(), "source": "admin_import"}
    for event_id, consent in (("evt-old", older), ("evt-admin", by_shop)):
        assert send(client, shop, shop_event(event_id, {"email": consent})).status_code == 202
        assert contact_of(sessions, ada.contact_id).consent["email"] == "opted_out", event_id
    ticked = {"status": "opted_in", "at": (clock() - timedelta(minutes=1)).isoformat(),
              "source": "checkout_checkbox"}
    assert send(client, shop, shop_event("evt-checkout", {"email": ticked})).status_code == 202
    assert contact_of(sessions, ada.contact_id).consent["email"] == "opted_in"
    assert gets_marketing(sessions, ada.contact_id, "email")
    [changed] = [line.detail for line in journal_of(sessions, ada.contact_id, "consent_changed")
                 if "evt-checkout" in (line.detail or "")]
    assert changed == f"consent email opted_in from api event evt-checkout (checkout_checkbox, at {ticked['at']})"


def test_the_preference_center_subscribes_the_person_again(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """The person's own newer choice on the preference center undoes their unsubscribe."""
    ada = make_recipient(sessions, shop, clock)
    one_click(client, settings, shop, ada)
    clock.advance(days=1)
    url = path_of(links_for(settings, shop, ada).preferences_url)
    answer = save(client, url, {"channel_email": "on", "topic_newsletter": "on", "topic_offers": "on",
                                "action": "save"})
    assert answer.status_code == 200 and "Your preferences are saved" in answer.text
    assert contact_of(sessions, ada.contact_id).consent["email"] == "opted_in"
    assert contact_of(sessions, ada.contact_id).consent_records["email"]["source"] == "preference center"


def test_the_contact_api_shows_consent_with_its_time_and_source(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """`consent_records` says per channel when, how and by whom the state was set; the timeline shows the refusal."""
    ada = make_recipient(sessions, shop, clock, contact={"phone": PHONE, "consent": {"sms": "opted_in"}})
    one_click(client, settings, shop, ada)
    send(client, shop, shop_event("evt-9", {"email": "opted_in"}))
    profile = client.get("/api/v1/contacts/c-1", headers=auth_headers(shop.credentials)).get_json()
    assert profile["consent"]["email"] == "opted_out"
    assert profile["consent_records"] == {
        "email": {"status": "opted_out", "at": clock().isoformat(), "source": "one-click unsubscribe",
                  "by": "person"},
        "sms": {"status": "opted_in", "at": clock().isoformat(), "source": "api event", "by": "shop"},
    }
    timeline = client.get("/api/v1/contacts/c-1/timeline", headers=auth_headers(shop.credentials)).get_json()
    assert [item["kind"] for item in timeline["timeline"]][-1] == "consent_refused"


def test_a_bad_consent_object_is_answered_422_naming_each_field(client: FlaskClient, shop: Shop) -> None:
    """Each wrong part of a consent object is named by its path; nothing is stored."""
    bad = {"email": {"status": "yes", "at": "2026-12-01T10:00:00", "source": "check out!", "extra": 1},
           "sms": 7, "fax": "opted_in", "viber": "subscribed"}
    answer = send(client, shop, shop_event("evt-bad", bad))
    assert answer.status_code == 422
    fields = {error["field"] for error in answer.get_json()["errors"]}
    assert fields == {"contact.consent.email.status", "contact.consent.email.at", "contact.consent.email.source",
                      "contact.consent.email.extra", "contact.consent.sms", "contact.consent.fax.[key]",
                      "contact.consent.viber"}


def test_a_shopify_customer_record_is_honoured_only_when_the_customer_opted_in_after_unsubscribing(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """customers/update with an older consent_updated_at is refused; one from after the unsubscribe is applied."""
    with sessions.begin() as session:
        connect_shop(session, shop.id, "shopify", SHOPIFY_SECRET)
    grace = make_recipient(sessions, shop, clock, external_id="shopify:7391042250000")
    one_click(client, settings, shop, grace)
    customer = load("shopify", "customers_create")
    customer["email_marketing_consent"] |= {"state": "subscribed", "opt_in_level": "single_opt_in"}
    assert deliver(client, "shopify", shop.id, customer, topic="customers/update",
                   delivery_id="d-stale").status_code == 202
    assert contact_of(sessions, grace.contact_id).consent["email"] == "opted_out"
    clock.advance(days=2)
    customer["email_marketing_consent"]["consent_updated_at"] = (clock() - timedelta(hours=1)).isoformat()
    assert deliver(client, "shopify", shop.id, customer, topic="customers/update",
                   delivery_id="d-new").status_code == 202
    assert contact_of(sessions, grace.contact_id).consent_records["email"] == {
        "status": "opted_in", "at": (clock() - timedelta(hours=1)).isoformat(), "source": "shopify_single_opt_in",
        "by": "person"}
    [refused] = refusals(sessions, grace.contact_id)
    assert refused.startswith("consent email opted_in from shop event shopify:d-stale (shopify_single_opt_in, at ")


def spec_schema(name: str) -> Any:
    """A validator for one of the served spec's schemas (its references resolved within the spec)."""
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]})


def test_the_openapi_spec_describes_both_consent_shapes_and_the_consent_records(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """The spec takes a state or {status, at, source}, refuses other shapes, and matches the profile served."""
    contact = spec_schema("Contact")
    timed = {"status": "opted_in", "at": "2026-12-01T10:00:00Z", "source": "checkout_checkbox"}
    for consent in ({"email": "opted_in"}, {"email": timed, "sms": "opted_out"}):
        assert contact.is_valid({"external_id": "c-1", "consent": consent}), consent
    for consent in ({"email": "yes"}, {"email": {"at": "2026-12-01T10:00:00Z"}}, {"email": {**timed, "by": "x"}}):
        assert not contact.is_valid({"external_id": "c-1", "consent": consent}), consent
    ada = make_recipient(sessions, shop, clock)
    one_click(client, settings, shop, ada)
    profile = client.get("/api/v1/contacts/c-1", headers=auth_headers(shop.credentials)).get_json()
    spec_schema("ContactProfile").validate(profile)
    assert "checkout_checkbox" in SPEC["components"]["schemas"]["ConsentIn"]["oneOf"][1]["properties"]["source"][
        "description"]


def test_a_batch_applies_a_new_contacts_consent_in_order(client: FlaskClient, shop: Shop,
                                                         sessions: sessionmaker[Session]) -> None:
    """In one batch, a new contact's own opt-out in account settings is not undone by the shop's record after it."""
    events = [shop_event("evt-1", {"email": {"status": "opted_out", "source": "account_settings"}}, "c-new"),
              shop_event("evt-2", {"email": "opted_in", "sms": "opted_in"}, "c-new")]
    answer = post_signed(client, "/api/v1/events/batch", {"events": events}, shop.credentials)
    assert answer.status_code == 202, answer.get_json()
    contact_id = answer.get_json()["results"][0]["contact_id"]
    assert contact_of(sessions, contact_id).consent == {"email": "opted_out", "sms": "opted_in"}
    [line] = refusals(sessions, contact_id)
    assert line.startswith("consent email opted_in from api event evt-2 not applied: withdrawn by the person")

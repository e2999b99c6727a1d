"""Every write of the API needs the signing secret as well as the key; reads need the key alone.

The key may sit in places the signing secret never goes (a reporting tool, a proxy's log):
with it alone one can read, but not erase a contact, change settings or resume a channel.
Shop and provider webhooks are signed by their sender's own scheme and are not covered here.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.signing import sign, sign_request
from engine.store.models import Contact
from tests.conftest import FakeClock, Shop
from tests.webapp.conftest import auth_headers, post_signed, send_signed, signed_headers
from workers.dev.demo import cart_event

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OWN_SCHEMES = ("/api/v1/webhooks/", "/api/v1/providers/")  # Shopify, WooCommerce, Twilio... sign their own way


def api_writes(app: Flask) -> list[tuple[str, str]]:
    """(method, path) of every write route under /api/v1 that a workspace key authorizes, placeholders filled."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule.startswith(OWN_SCHEMES):
            continue
        path = re.sub(r"<int:[^>]+>", "1", rule.rule)
        path = re.sub(r"<[^>]+>", "x", path)
        found += [(method, path) for method in sorted(rule.methods & WRITES)]
    return found


def contact_exists(sessions: sessionmaker[Session], shop: Shop, external_id: str) -> bool:
    with sessions() as session:
        return session.scalar(select(Contact.id).where(Contact.workspace_id == shop.id,
                                                       Contact.external_id == external_id)) is not None


def add_contact(client: FlaskClient, shop: Shop, external_id: str) -> None:
    assert post_signed(client, "/api/v1/events", cart_event(customer=external_id), shop.credentials).status_code == 202


def test_every_api_write_refuses_the_key_alone(app: Flask, client: FlaskClient, shop: Shop) -> None:
    """Each POST, PUT, PATCH and DELETE under /api/v1 (webhooks aside) answers 401 without a signature."""
    writes = api_writes(app)
    assert ("DELETE", "/api/v1/contacts/x") in writes and ("PUT", "/api/v1/settings/delivery") in writes
    for method, path in writes:
        response = client.open(path, method=method, json={}, headers=auth_headers(shop.credentials))
        assert response.status_code == 401, (method, path, response.status_code)
        assert "Rapport-Signature" in response.get_json()["message"], (method, path)


def test_erasing_a_contact_with_the_key_alone_erases_nothing(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """DELETE /contacts/<id> without a signature is 401 and the contact is still there."""
    add_contact(client, shop, "cust-1")
    response = client.delete("/api/v1/contacts/cust-1", headers=auth_headers(shop.credentials))
    assert response.status_code == 401
    assert contact_exists(sessions, shop, "cust-1")


def test_a_signed_erasure_erases(client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]) -> None:
    """The same DELETE signed over method and path is carried out."""
    add_contact(client, shop, "cust-1")
    assert send_signed(client, "DELETE", "/api/v1/contacts/cust-1", shop.credentials).status_code == 200
    assert not contact_exists(sessions, shop, "cust-1")


def test_a_signature_for_one_request_does_not_authorize_another(
    client: FlaskClient, shop: Shop, sessions: sessionmaker[Session]
) -> None:
    """A captured signed DELETE of one contact, replayed against another contact's path, is 401."""
    add_contact(client, shop, "cust-1")
    add_contact(client, shop, "cust-2")
    captured = signed_headers(client, "DELETE", "/api/v1/contacts/cust-1", b"", shop.credentials)
    replayed = client.delete("/api/v1/contacts/cust-2", headers=captured)
    assert replayed.status_code == 401
    assert "DELETE <path>" in replayed.get_json()["message"]
    assert contact_exists(sessions, shop, "cust-2")


def test_a_body_only_signature_is_refused_outside_event_ingestion(client: FlaskClient, shop: Shop) -> None:
    """The event scheme (the body alone) does not sign a settings change: its path would be replayable."""
    body = b'{"frequency_caps": {"all": {"max": 1, "days": 1}}}'
    headers = auth_headers(shop.credentials) | {"Content-Type": "application/json", "Rapport-Signature": sign(
        shop.credentials.signing_secret, body, int(client.application.extensions["rapport"]["clock"]().timestamp()))}
    assert client.put("/api/v1/settings/delivery", data=body, headers=headers).status_code == 401
    assert send_signed(client, "PUT", "/api/v1/settings/delivery", shop.credentials,
                       {"frequency_caps": {"all": {"max": 1, "days": 1}}}).status_code == 200


def test_another_workspaces_secret_does_not_sign_a_write(client: FlaskClient, shop: Shop, second_shop: Shop) -> None:
    """Shop A's key with a signature made with shop B's secret is 401."""
    timestamp = int(client.application.extensions["rapport"]["clock"]().timestamp())
    headers = auth_headers(shop.credentials) | {"Rapport-Signature": sign_request(
        second_shop.credentials.signing_secret, "POST", "/api/v1/channels/sms/resume", b"", timestamp)}
    assert client.post("/api/v1/channels/sms/resume", headers=headers).status_code == 401


def test_a_stale_signature_is_refused(client: FlaskClient, shop: Shop, clock: FakeClock) -> None:
    """A write signed more than five minutes ago is 401, as for events."""
    headers = signed_headers(client, "POST", "/api/v1/channels/sms/resume", b"", shop.credentials)
    clock.advance(minutes=6)
    response = client.post("/api/v1/channels/sms/resume", headers=headers)
    assert response.status_code == 401 and "5 minutes" in response.get_json()["message"]


def test_the_query_string_is_part_of_what_is_signed(client: FlaskClient, shop: Shop) -> None:
    """A signature over a path without its query string does not cover the request with one."""
    yaml_file = b"name: Imported\ndefinition:\n  trigger: {event: cart_updated}\n  steps: []\n"
    headers = signed_headers(client, "POST", "/api/v1/journeys/import", yaml_file, shop.credentials)
    response = client.post("/api/v1/journeys/import?publish=true", data=yaml_file, headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/api/v1/contacts/cust-1", "/api/v1/contacts/cust-1/timeline", "/api/v1/outbox",
                                  "/api/v1/channels", "/api/v1/settings/delivery", "/api/v1/journeys"])
def test_reads_need_the_key_alone(client: FlaskClient, shop: Shop, path: str) -> None:
    """GET requests are answered with the key and no signature."""
    add_contact(client, shop, "cust-1")
    assert client.get(path, headers=auth_headers(shop.credentials)).status_code == 200


def test_events_take_the_body_signature_or_the_request_signature(client: FlaskClient, shop: Shop) -> None:
    """Shops keep signing events over the body alone; a client that signs every write one way works too."""
    assert post_signed(client, "/api/v1/events", cart_event(customer="a"), shop.credentials).status_code == 202
    assert send_signed(client, "POST", "/api/v1/events", shop.credentials,
                       cart_event(customer="b")).status_code == 202

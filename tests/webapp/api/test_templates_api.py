"""The templates API as the template editor uses it: list, open, save a draft, publish, preview; errors at lines."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import Shop
from tests.webapp.conftest import auth_headers, send_signed

TEMPLATES = "/api/v1/templates"
WELCOME = {"subject": "Hello {{ contact.first_name }}",
           "body_mjml": "<mjml>\n  <mj-body>\n    <mj-section>\n      <mj-column>\n"
                        "        <mj-text>Hi {{ contact.first_name }}</mj-text>\n"
                        "      </mj-column>\n    </mj-section>\n  </mj-body>\n</mjml>\n",
           "body_text": "Hi {{ contact.first_name }}"}


def get(client: FlaskClient, shop: Shop, path: str = "") -> Any:
    return client.get(f"{TEMPLATES}{path}", headers=auth_headers(shop.credentials))


def put_draft(client: FlaskClient, shop: Shop, path: str, draft: Any) -> Any:
    return send_signed(client, "PUT", f"{TEMPLATES}/{path}/draft", shop.credentials, draft)


def post(client: FlaskClient, shop: Shop, path: str, payload: Any = None) -> Any:
    return send_signed(client, "POST", f"{TEMPLATES}/{path}", shop.credentials, payload)


def test_a_draft_is_saved_published_and_listed_as_the_workspace_own(client, shop) -> None:
    """PUT the draft, publish it: version 1 is live, the list says the workspace's own, the version is shown."""
    saved = put_draft(client, shop, "email/welcome", WELCOME)
    assert saved.status_code == 200 and saved.get_json()["draft_revision"] == 1
    published = post(client, shop, "email/welcome/publish")
    assert published.status_code == 201
    body = published.get_json()
    assert body["version"] == 1 and body["created"] is True and len(body["digest"]) == 12

    listed = {(t["channel"], t["name"]): t for t in get(client, shop).get_json()["templates"]}
    assert listed[("email", "welcome")]["source"] == "workspace"
    assert listed[("email", "abandoned_cart")]["source"] == "seed"
    shown = get(client, shop, "/email/welcome").get_json()
    assert shown["published_version"] == 1 and shown["draft"] == WELCOME
    assert [v["version"] for v in shown["versions"]] == [1] and shown["versions"][0]["parts"] == WELCOME
    assert shown["seed"]["subject"].startswith("Welcome to")


def test_a_journey_can_send_a_template_the_moment_it_is_published(client, shop) -> None:
    """A template the seeds lack: refused in a send step until published, accepted right after."""
    journey = {"name": "Spring", "publish": False, "definition": {
        "trigger": {"event": "cart_updated"},
        "steps": [{"type": "send", "id": "s", "channel": "email", "template": "spring_sale"}]}}
    assert send_signed(client, "POST", "/api/v1/journeys", shop.credentials, journey).status_code == 422
    put_draft(client, shop, "email/spring_sale", WELCOME)
    assert send_signed(client, "POST", "/api/v1/journeys", shop.credentials, journey).status_code == 422
    post(client, shop, "email/spring_sale/publish")
    assert send_signed(client, "POST", "/api/v1/journeys", shop.credentials, journey).status_code == 201


def test_a_jinja_error_is_refused_with_its_field_and_line(client, shop) -> None:
    """An unclosed expression on line 5 of the MJML: 422 naming body_mjml and line 5; nothing saved."""
    broken = WELCOME | {"body_mjml": WELCOME["body_mjml"].replace("first_name }}", "first_name }")}
    response = put_draft(client, shop, "email/welcome", broken)
    assert response.status_code == 422
    [error] = response.get_json()["errors"]
    assert (error["field"], error["line"]) == ("body_mjml", 5)
    assert get(client, shop, "/email/welcome").get_json()["has_draft"] is False


def test_an_mjml_error_names_the_line_of_the_tag_at_fault(client, shop) -> None:
    """A closing tag that closes nothing is reported at its line."""
    broken = WELCOME | {"body_mjml": WELCOME["body_mjml"].replace("</mj-section>", "</mj-section></mj-column>")}
    response = put_draft(client, shop, "email/welcome", broken)
    assert response.status_code == 422
    [error] = response.get_json()["errors"]
    assert error["field"] == "body_mjml" and error["line"] == 7 and "MJML" in error["message"]


def test_a_stale_draft_revision_gets_a_conflict_and_the_newer_draft_stays(client, shop) -> None:
    """Two tabs read revision 1; the second one to save gets 409 with the current revision."""
    put_draft(client, shop, "sms/nudge", {"body_text": "First"})
    assert put_draft(client, shop, "sms/nudge", {"body_text": "Tab A", "revision": 1}).status_code == 200
    stale = put_draft(client, shop, "sms/nudge", {"body_text": "Tab B", "revision": 1})
    assert stale.status_code == 409 and stale.get_json()["revision"] == 2
    assert get(client, shop, "/sms/nudge").get_json()["draft"]["body_text"] == "Tab A"


def test_a_preview_renders_unsaved_parts_for_a_sample_event(client, shop) -> None:
    """The live preview as the marketer types: the draft in the request, rendered; a missing variable is 422 at its
    line."""
    shown = post(client, shop, "sms/nudge/preview", {"draft": {"body_text": "Cart {{ event.cart_id }}"},
                                                     "event": {"cart_id": "c-9"}})
    assert shown.status_code == 200
    assert shown.get_json()["text"] == "Cart c-9" and shown.get_json()["sms"]["segments"] == 1
    missing = post(client, shop, "sms/nudge/preview", {"draft": {"body_text": "Cart\n{{ event.cart_id }}"}})
    assert missing.status_code == 422 and missing.get_json()["errors"][0]["line"] == 2


def test_a_workspace_never_sees_another_workspace_templates(client, shop, second_shop) -> None:
    """Shop A's draft and version are invisible to shop B, which still sees the seed and cannot publish A's."""
    put_draft(client, shop, "email/welcome", WELCOME)
    post(client, shop, "email/welcome/publish")
    put_draft(client, shop, "sms/spring_sale", {"body_text": "Spring sale"})

    other = get(client, second_shop, "/email/welcome").get_json()
    assert other["source"] == "seed" and other["versions"] == [] and other["draft"] == other["seed"]
    assert get(client, second_shop, "/sms/spring_sale").status_code == 404
    assert post(client, second_shop, "sms/spring_sale/publish").status_code == 404
    names = {t["name"] for t in get(client, second_shop).get_json()["templates"]}
    assert "spring_sale" not in names


def test_writes_need_the_signature(client, shop) -> None:
    """The API key alone may read templates, not save or publish them."""
    response = client.put(f"{TEMPLATES}/sms/nudge/draft", json={"body_text": "x"},
                          headers=auth_headers(shop.credentials))
    assert response.status_code == 401


@pytest.mark.parametrize("path, payload", [
    ("sms/nudge/draft", []),
    ("sms/nudge/draft", {"body_text": 12}),
    ("sms/nudge/draft", {"body_text": "x", "revision": "1"}),
    ("sms/nudge/draft", {"body_text": "x", "revision": True}),
    ("sms/nudge/draft", {"body_text": "x", "unknown": 1}),
    ("sms/nudge/draft", {"body_text": "x", "buttons": [{"text": "a"}]}),
    ("whatsapp/nudge/draft", {"body_text": "", "provider_template": {"name": 3}}),
    ("email/nudge/draft", {"subject": "", "body_mjml": "<mjml>", "body_text": "x"}),
    ("email/nudge/draft", {"subject": "x", "body_mjml": "not mjml at all", "body_text": "x"}),
    ("fax/nudge/draft", {"body_text": "x"}),
    ("sms/NUDGE/draft", {"body_text": "x"}),
    ("sms/nudge/publish", {"version": "two"}),
    ("sms/nudge/publish", {"version": 0, "extra": 1}),
    ("sms/nudge/preview", {"contact": 5}),
    ("sms/nudge/preview", {"event": []}),
    ("sms/nudge/preview", {"contact": "nobody"}),
    ("sms/nudge/preview", {"draft": {"body_text": "{{ ''.__class__ }}"}}),
    ("email/welcome/preview", {"draft": "text"}),
])
def test_bad_input_is_a_4xx_with_fields_never_a_500(client, shop, path: str, payload: Any) -> None:
    """Malformed drafts, publishes and previews are refused with field-level errors."""
    method = "PUT" if path.endswith("/draft") else "POST"
    response = send_signed(client, method, f"{TEMPLATES}/{path}", shop.credentials, payload)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] and (response.status_code != 422 or body["errors"])

"""The journeys API as the marketer UI uses it: drafts, validation, versions, pause/resume/archive, stats."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.conftest import FakeClock, Shop, SmtpServer, drain
from tests.webapp.conftest import auth_headers, post_signed, send_signed
from triggers import abandoned_cart
from workers.dev.demo import cart_event, order_event
from workers.runtime import Runtime
from workers.scheduler import run_once

JOURNEYS = "/api/v1/journeys"


def create(client: FlaskClient, shop: Shop, definition: Any, *, publish: bool = True, name: str = "Cart") -> Any:
    return send_signed(client, "POST", JOURNEYS, shop.credentials,
                       {"name": name, "definition": definition, "publish": publish})


def act(client: FlaskClient, shop: Shop, path: str, *, json: Any = None, data: bytes | None = None) -> Any:
    return send_signed(client, "POST", f"{JOURNEYS}/{path}", shop.credentials, data if data is not None else json)


def get(client: FlaskClient, shop: Shop, path: str = "") -> Any:
    return client.get(f"{JOURNEYS}{path}", headers=auth_headers(shop.credentials))


def tick(rt: Runtime) -> None:
    run_once(rt)
    drain(rt)


def test_an_invalid_definition_is_refused_with_the_path_of_each_bad_field(client, shop) -> None:
    """422 names the bad fields; nothing is created."""
    bad = {"trigger": {"event": "cart_updated"},
           "steps": [{"type": "wait", "id": "w", "hours": -1}, {"type": "send", "id": "s", "channel": "fax"}]}
    response = create(client, shop, bad)
    assert response.status_code == 422
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert "steps.0.wait.hours" in fields and "steps.1.send.channel" in fields
    assert get(client, shop).get_json()["journeys"] == []


def test_validate_reports_errors_without_saving_anything(client, shop) -> None:
    """POST /validate answers valid or the errors, and stores nothing."""
    ok = act(client, shop, "validate", json={"definition": abandoned_cart.recipe()})
    assert ok.get_json() == {"valid": True, "errors": []}
    missing = act(client, shop, "validate", json={"definition": {
        "trigger": {"event": "x"}, "steps": [{"type": "send", "id": "s", "channel": "email", "template": "nope"}]}})
    assert missing.get_json()["valid"] is False
    assert missing.get_json()["errors"] == [{"field": "steps[id=s].template", "message": "no template named 'nope'"}]
    assert get(client, shop).get_json()["journeys"] == []


def test_publishing_freezes_versions_and_running_contacts_finish_on_theirs(
    client, shop, clock: FakeClock, runtime: Runtime, smtp_server: SmtpServer
) -> None:
    """A contact who entered v1 (1 h wait) keeps it after v2 (1 day wait) is published; new contacts get v2."""
    journey = create(client, shop, abandoned_cart.recipe(wait_seconds=3600)).get_json()
    post_signed(client, "/api/v1/events", cart_event("cart-v1", customer="early", email="early@example.com"),
                shop.credentials)
    drain(runtime)
    edited = send_signed(client, "PUT", f"{JOURNEYS}/{journey['id']}", shop.credentials,
                         {"definition": abandoned_cart.recipe(wait_seconds=86400)})
    assert edited.status_code == 200
    assert act(client, shop, f"{journey['id']}/publish").get_json()["version"] == 2
    post_signed(client, "/api/v1/events", cart_event("cart-v2", customer="late", email="late@example.com"),
                shop.credentials)
    drain(runtime)
    clock.advance(hours=1, seconds=1)
    tick(runtime)
    assert [m["To"] for m in smtp_server.messages] == ["early@example.com"]
    clock.advance(days=1)
    tick(runtime)
    assert [m["To"] for m in smtp_server.messages] == ["early@example.com", "late@example.com"]
    versions = get(client, shop, f"/{journey['id']}/versions").get_json()["versions"]
    assert [(v["version"], v["definition"]["steps"][0]["seconds"]) for v in versions] == [(1, 3600), (2, 86400)]


def test_a_paused_journey_holds_its_timers_and_resuming_releases_them(
    client, shop, clock: FakeClock, runtime: Runtime, smtp_server: SmtpServer
) -> None:
    """While paused nobody enters and due timers wait; on resume they fire."""
    journey = create(client, shop, abandoned_cart.recipe(wait_seconds=3600)).get_json()
    post_signed(client, "/api/v1/events", cart_event("cart-p1"), shop.credentials)
    drain(runtime)
    assert act(client, shop, f"{journey['id']}/pause").get_json()["status"] == "paused"
    post_signed(client, "/api/v1/events", cart_event("cart-p2", customer="other", email="o@example.com"),
                shop.credentials)
    clock.advance(hours=2)
    tick(runtime)
    assert smtp_server.messages == []
    assert act(client, shop, f"{journey['id']}/resume").get_json()["status"] == "live"
    tick(runtime)
    assert [m["To"] for m in smtp_server.messages] == ["ada@example.com"]  # the one who entered before the pause


def test_archiving_ends_live_runs_and_cannot_be_undone(client, shop, runtime: Runtime, smtp_server) -> None:
    """Archive exits everyone with a reason; resume and publish then answer 409."""
    journey = create(client, shop, abandoned_cart.recipe()).get_json()
    post_signed(client, "/api/v1/events", cart_event("cart-a1"), shop.credentials)
    drain(runtime)
    assert act(client, shop, f"{journey['id']}/archive").status_code == 200
    stats = get(client, shop, f"/{journey['id']}/stats").get_json()
    assert stats["exits"] == {"journey archived": 1}
    assert act(client, shop, f"{journey['id']}/resume").status_code == 409
    assert act(client, shop, f"{journey['id']}/publish").status_code == 409


def test_stats_count_waiting_messages_exits_and_conversions_per_step(
    client, shop, clock: FakeClock, runtime: Runtime, smtp_server
) -> None:
    """Three carts: one waits, one converts, one is reminded; the counts say so per step."""
    journey = create(client, shop, abandoned_cart.recipe(wait_seconds=3600)).get_json()
    for n in range(3):
        post_signed(client, "/api/v1/events", cart_event(f"cart-s{n}", customer=f"s{n}", email=f"s{n}@example.com"),
                    shop.credentials)
    drain(runtime)
    post_signed(client, "/api/v1/events", order_event("cart-s0", customer="s0"), shop.credentials)
    drain(runtime)
    clock.advance(hours=1, seconds=1)
    run_once(runtime)  # the two unconverted runs fall due
    drain(runtime)
    post_signed(client, "/api/v1/events", cart_event("cart-s3", customer="s3", email="s3@example.com"),
                shop.credentials)
    drain(runtime)
    stats = get(client, shop, f"/{journey['id']}/stats").get_json()
    assert stats["runs"]["total"] == 4
    assert stats["conversions"] == 1 and stats["exits"] == {"goal reached: order placed": 1}
    assert stats["steps"]["wait-for-order"]["waiting"] == 1
    assert stats["steps"]["reminder-email"]["messages"] == {"sent": 2}


def test_another_workspaces_journey_is_not_found(client, shop, second_shop) -> None:
    """A key only ever reaches its own workspace's journeys."""
    journey = create(client, shop, abandoned_cart.recipe()).get_json()
    assert get(client, second_shop, f"/{journey['id']}").status_code == 404
    assert act(client, second_shop, f"{journey['id']}/pause").status_code == 404
    assert get(client, second_shop).get_json()["journeys"] == []


def test_a_journey_exported_as_yaml_imports_back_into_the_same_journey(client, shop) -> None:
    """Export gives a YAML file that names the journey; importing it updates that journey, not a second one."""
    journey = create(client, shop, abandoned_cart.recipe(wait_seconds=600)).get_json()
    exported = client.get(f"{JOURNEYS}/{journey['id']}/export", headers=auth_headers(shop.credentials))
    assert exported.status_code == 200 and exported.mimetype == "application/yaml"
    text = exported.get_data(as_text=True)
    assert "name: Cart" in text and f"uuid: {journey['uuid']}" in text
    imported = act(client, shop, "import?publish=true", data=text.replace("seconds: 600", "seconds: 900").encode())
    assert imported.status_code == 200, imported.get_json()
    again = imported.get_json()
    assert (again["id"], again["created"], again["status"]) == (journey["id"], False, "live")
    assert again["draft"]["steps"][0]["seconds"] == 900 and again["warnings"] == []
    versions = get(client, shop, f"/{journey['id']}/versions").get_json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert [j["id"] for j in get(client, shop).get_json()["journeys"]] == [journey["id"]]


def test_importing_a_copy_makes_a_second_journey_and_warns_about_the_shared_trigger(client, shop) -> None:
    """?copy=true creates a new journey; live on the same events as the first, the answer warns."""
    journey = create(client, shop, abandoned_cart.recipe(wait_seconds=600)).get_json()
    exported = client.get(f"{JOURNEYS}/{journey['id']}/export", headers=auth_headers(shop.credentials))
    copy = act(client, shop, "import?publish=true&copy=true", data=exported.get_data())
    assert copy.status_code == 201
    body = copy.get_json()
    assert body["id"] != journey["id"] and body["uuid"] != journey["uuid"] and body["created"] is True
    assert body["warnings"] == [f"journey {journey['id']} ('Cart') is also live on cart_updated, checkout_started: "
                                "a contact enters both and gets the messages of each"]


def test_importing_bad_yaml_names_the_line_or_the_field(client, shop) -> None:
    """YAML that does not parse names the line; a bad definition names the field; nothing is created."""
    broken = act(client, shop, "import", data=b"name: [oops\n")
    assert broken.status_code == 422 and broken.get_json()["errors"][0]["field"] == "(yaml)"
    assert "line" in broken.get_json()["errors"][0]["message"]
    invalid = act(client, shop, "import", data=(
        b"name: Bad\ndefinition:\n  trigger: {event: cart_updated}\n  steps:\n    - {type: wait, id: w, days: -2}\n"))
    assert invalid.status_code == 422
    assert invalid.get_json()["errors"] == [
        {"field": "definition.steps.0.wait.days", "message": "Input should be greater than or equal to 0"}]
    assert get(client, shop).get_json()["journeys"] == []


def test_a_file_whose_journey_was_archived_imports_only_as_a_copy(client, shop) -> None:
    """Importing into an archived journey is a 409 naming it; ?copy=true makes a new journey from the file."""
    journey = create(client, shop, abandoned_cart.recipe(wait_seconds=600)).get_json()
    exported = client.get(f"{JOURNEYS}/{journey['id']}/export", headers=auth_headers(shop.credentials)).get_data()
    act(client, shop, f"{journey['id']}/archive")
    refused = act(client, shop, "import?publish=true", data=exported)
    assert refused.status_code == 409 and refused.get_json()["journey_id"] == journey["id"]
    assert "is archived" in refused.get_json()["message"]
    copy = act(client, shop, "import?publish=true&copy=true", data=exported)
    assert copy.status_code == 201 and copy.get_json()["status"] == "live"

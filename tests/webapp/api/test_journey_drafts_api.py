"""The builder's draft over the API: saves with base_revision, 409 for a stale one, undo/redo, history,
problems, publishing refused with them, the diff and the runs in flight."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.conftest import Shop, drain
from tests.webapp.conftest import auth_headers, post_signed, send_signed
from workers.dev.demo import cart_event
from workers.runtime import Runtime

JOURNEYS = "/api/v1/journeys"


def cart(hours: int) -> dict[str, Any]:
    return {"trigger": {"event": "cart_updated", "key": "cart_id"},
            "steps": [{"type": "wait", "id": "w", "hours": hours},
                      {"type": "send", "id": "s", "channel": "email", "template": "abandoned_cart"}]}


def new_journey(client: FlaskClient, shop: Shop, *, publish: bool = False) -> int:
    created = send_signed(client, "POST", JOURNEYS, shop.credentials,
                          {"name": "Cart", "definition": cart(1), "publish": publish})
    assert created.status_code == 201, created.get_json()
    return int(created.get_json()["id"])


def get(client: FlaskClient, shop: Shop, path: str) -> Any:
    return client.get(f"{JOURNEYS}/{path}", headers=auth_headers(shop.credentials))


def put_draft(client: FlaskClient, shop: Shop, journey_id: int, definition: Any, base: Any) -> Any:
    return send_signed(client, "PUT", f"{JOURNEYS}/{journey_id}/draft", shop.credentials,
                       {"base_revision": base, "definition": definition})


def post(client: FlaskClient, shop: Shop, path: str, payload: Any = None) -> Any:
    return send_signed(client, "POST", f"{JOURNEYS}/{path}", shop.credentials, payload)


def test_a_second_tab_saving_on_an_old_revision_gets_409_and_the_first_tab_s_work_stays(client, shop) -> None:
    """Two tabs load revision 1; the first saves; the second's save answers 409 with the current revision."""
    journey_id = new_journey(client, shop)
    seen = get(client, shop, f"{journey_id}/draft").get_json()["revision"]

    first = put_draft(client, shop, journey_id, cart(2), seen)
    second = put_draft(client, shop, journey_id, cart(3), seen)

    assert first.status_code == 200 and first.get_json()["revision"] == 2
    assert second.status_code == 409
    assert second.get_json()["error"] == "stale_draft" and second.get_json()["current_revision"] == 2
    assert get(client, shop, f"{journey_id}/draft").get_json()["definition"] == cart(2)
    history = get(client, shop, f"{journey_id}/draft/history").get_json()
    assert [(r["revision"], r["action"], r["current"]) for r in history["revisions"]] == [
        (2, "edit", True), (1, "edit", False)]


def test_undo_and_redo_round_trip_over_the_api(client, shop) -> None:
    """Undo brings the old draft back as revision 3, redo the edit as revision 4; a stale undo is 409."""
    journey_id = new_journey(client, shop)
    put_draft(client, shop, journey_id, cart(2), 1)

    undone = post(client, shop, f"{journey_id}/draft/undo", {"base_revision": 2})
    stale = post(client, shop, f"{journey_id}/draft/redo", {"base_revision": 2})
    redone = post(client, shop, f"{journey_id}/draft/redo", {"base_revision": 3})

    assert (undone.status_code, undone.get_json()["revision"], undone.get_json()["definition"]) == (200, 3, cart(1))
    assert undone.get_json()["can_redo"] is True and stale.status_code == 409
    assert (redone.get_json()["revision"], redone.get_json()["definition"]) == (4, cart(2))
    nothing = post(client, shop, f"{journey_id}/draft/redo", {"base_revision": 4})
    assert nothing.status_code == 409 and nothing.get_json()["error"] == "journey_state"


def test_an_invalid_draft_saves_and_publishing_it_answers_422_with_its_problems(client, shop) -> None:
    """The draft with a negative wait is kept; publish lists the problem by path and step; no version is made."""
    journey_id = new_journey(client, shop)
    broken = {**cart(1), "steps": [{"type": "wait", "id": "w", "hours": -1}]}

    saved = put_draft(client, shop, journey_id, broken, 1)
    published = post(client, shop, f"{journey_id}/publish")

    assert saved.status_code == 200 and saved.get_json()["definition"] == broken
    assert [(p["field"], p["step_id"]) for p in saved.get_json()["problems"]] == [("steps.0.wait.hours", "w")]
    assert published.status_code == 422
    assert [(e["field"], e["step_id"]) for e in published.get_json()["errors"]] == [("steps.0.wait.hours", "w")]
    assert get(client, shop, f"{journey_id}/versions").get_json()["versions"] == []


def test_publishing_with_a_stale_base_revision_is_409(client, shop) -> None:
    """A publisher who reviewed revision 1 cannot publish revision 2 unseen; with the right one it publishes."""
    journey_id = new_journey(client, shop)
    put_draft(client, shop, journey_id, cart(2), 1)

    stale = post(client, shop, f"{journey_id}/publish", {"base_revision": 1})
    current = post(client, shop, f"{journey_id}/publish", {"base_revision": 2})

    assert stale.status_code == 409 and stale.get_json()["current_revision"] == 2
    assert current.status_code == 201 and current.get_json()["draft_revision"] == 2


def test_bad_changes_answer_422_naming_the_field(client, shop) -> None:
    """No base_revision, a text one, a draft that is not an object, a bad history page: 422 with the field."""
    journey_id = new_journey(client, shop)

    answers = [put_draft(client, shop, journey_id, cart(2), None), put_draft(client, shop, journey_id, cart(2), "1"),
               put_draft(client, shop, journey_id, "steps", 1), post(client, shop, f"{journey_id}/draft/undo", {}),
               get(client, shop, f"{journey_id}/draft/history?limit=0"),
               get(client, shop, f"{journey_id}/diff?from=yesterday")]

    assert [(a.status_code, a.get_json()["errors"][0]["field"]) for a in answers] == [
        (422, "base_revision"), (422, "base_revision"), (422, "definition"), (422, "base_revision"), (422, "limit"),
        (422, "from")]


def test_the_diff_and_the_runs_in_flight_before_publishing(client, shop, runtime: Runtime) -> None:
    """The draft's changed wait shows against the live version; the contact waiting on v1 is counted at its step."""
    journey_id = new_journey(client, shop, publish=True)
    post_signed(client, "/api/v1/events", cart_event("cart-1", customer="ada", email="ada@example.com"),
                shop.credentials)
    drain(runtime)
    put_draft(client, shop, journey_id, cart(24), 1)

    diff = get(client, shop, f"{journey_id}/diff").get_json()
    versions = get(client, shop, f"{journey_id}/diff?from=v1&to=v1").get_json()
    flight = get(client, shop, f"{journey_id}/in-flight").get_json()

    assert diff["changed"] == [{"step_id": "w", "type": "wait", "path": "steps.0",
                                "fields": [{"field": "hours", "from": 1, "to": 24}]}]
    assert versions["changed"] == [] and get(client, shop, f"{journey_id}/diff?to=v7").status_code == 404
    assert flight["versions"] == [{"version": 1, "live": True, "runs": 1, "steps": {"w": 1}}]


def test_another_workspace_and_an_unsigned_client_reach_nothing(client, shop, second_shop) -> None:
    """Another workspace's key finds no such journey; a save without a signature is 401."""
    journey_id = new_journey(client, shop)

    assert get(client, second_shop, f"{journey_id}/draft").status_code == 404
    assert put_draft(client, second_shop, journey_id, cart(2), 1).status_code == 404
    assert get(client, second_shop, f"{journey_id}/in-flight").status_code == 404
    unsigned = client.put(f"{JOURNEYS}/{journey_id}/draft", json={"base_revision": 1, "definition": cart(2)},
                          headers=auth_headers(shop.credentials))
    assert unsigned.status_code == 401
    assert get(client, shop, f"{journey_id}/draft").get_json()["revision"] == 1

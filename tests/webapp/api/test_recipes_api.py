"""The trigger library over the API: GET /api/v1/recipes and POST /api/v1/recipes/{name}/install."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.conftest import FakeClock, Shop, SmtpServer, drain
from tests.webapp.conftest import auth_headers, post_signed, send_signed
from triggers.library import RECIPES
from workers.dev.demo import cart_event
from workers.runtime import Runtime
from workers.scheduler import run_once

RECIPES_URL = "/api/v1/recipes"


def install(client: FlaskClient, shop: Shop, name: str, **body: Any) -> Any:
    return send_signed(client, "POST", f"{RECIPES_URL}/{name}/install", shop.credentials, body)


def test_the_listing_names_every_recipe_with_a_line_and_its_options(client, shop) -> None:
    """Each recipe of the library is listed with what to install it by, a description and its options."""
    response = client.get(RECIPES_URL, headers=auth_headers(shop.credentials))
    assert response.status_code == 200
    listed = {r["name"]: r for r in response.get_json()["recipes"]}
    assert set(listed) == set(RECIPES)
    assert listed["abandoned_cart"]["description"].startswith("One reminder an hour after a cart is left")
    assert listed["abandoned_cart"]["options"]["wait_seconds"] == {"default": 3600}
    assert listed["holiday_greeting"]["options"]["dates"] == {"required": True}


def test_an_installed_recipe_sends_its_shipped_template(
    client, shop, clock: FakeClock, runtime: Runtime, smtp_server: SmtpServer
) -> None:
    """Installed and published, the abandoned-cart recipe reminds a cart with its own email template."""
    response = install(client, shop, "abandoned_cart", publish=True, options={"wait_seconds": 60})
    assert response.status_code == 201, response.get_json()
    journey = response.get_json()
    assert (journey["name"], journey["status"], journey["recipe"]) == ("Abandoned cart reminder", "live",
                                                                       "abandoned_cart")
    assert journey["templates"] == [{"channel": "email", "template": "abandoned_cart",
                                     "path": "templates/email/abandoned_cart/"}]
    post_signed(client, "/api/v1/events", cart_event("cart-r1", email="ada@example.com"), shop.credentials)
    drain(runtime)
    clock.advance(seconds=61)
    run_once(runtime)
    drain(runtime)
    assert [m["To"] for m in smtp_server.messages] == ["ada@example.com"]


def test_installing_twice_names_the_journey_there_unless_a_copy_is_asked_for(client, shop) -> None:
    """A second install is a 409 naming the installed journey; copy: true makes a second one and warns."""
    first = install(client, shop, "abandoned_cart", publish=True).get_json()
    again = install(client, shop, "abandoned_cart", publish=True)
    assert again.status_code == 409
    assert again.get_json()["journey_id"] == first["id"]
    assert f"already installed as journey {first['id']}" in again.get_json()["message"]
    copy = install(client, shop, "abandoned_cart", publish=True, copy=True)
    assert copy.status_code == 201
    assert copy.get_json()["name"] == "Abandoned cart reminder (copy)"
    assert copy.get_json()["warnings"] == [
        f"journey {first['id']} ('Abandoned cart reminder') is also live on cart_updated, checkout_started: "
        "a contact enters both and gets the messages of each"]


def test_an_archived_install_can_be_installed_again(client, shop) -> None:
    """Once the installed journey is archived, installing the recipe again makes a fresh one."""
    first = install(client, shop, "win_back").get_json()
    assert first["status"] == "draft" and first["warnings"] == []
    send_signed(client, "POST", f"/api/v1/journeys/{first['id']}/archive", shop.credentials)
    assert install(client, shop, "win_back").status_code == 201


def test_bad_options_and_unknown_recipes_are_clear_4xx(client, shop) -> None:
    """A missing or unknown option is a 422 naming it; an unknown recipe a 404; nothing is installed."""
    missing = install(client, shop, "holiday_greeting")
    assert missing.status_code == 422
    assert missing.get_json()["errors"] == [{"field": "options.dates", "message": "required"}]
    unknown = install(client, shop, "win_back", options={"dayz": 30})
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["field"] == "options.dayz"
    wrong = install(client, shop, "browse_abandonment", options={"wait_hours": 500})
    assert wrong.status_code == 422 and "wait_hours must be 1 to 72" in wrong.get_json()["errors"][0]["message"]
    odd = install(client, shop, "support_bot", options={"keywords": [5]})
    assert odd.status_code == 422 and odd.get_json()["errors"][0]["field"] == "options"
    flag = install(client, shop, "win_back", publish="yes")
    assert flag.status_code == 422 and flag.get_json()["errors"][0]["field"] == "publish"
    nothing = install(client, shop, "no_such_recipe")
    assert nothing.status_code == 404 and "abandoned_cart" in nothing.get_json()["message"]
    journeys = client.get("/api/v1/journeys", headers=auth_headers(shop.credentials)).get_json()["journeys"]
    assert journeys == []

"""Every workspace page checks a permission, and shows one workspace's data only to that workspace's people:
a viewer is refused what needs more, a user of another workspace gets 403/404, never data."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.workspaces.roles import Permission, Role, can
from tests.conftest import FakeClock, Shop
from tests.engine.workspaces.conftest import add_member
from tests.webapp.ui.conftest import post_form, sign_in, text
from webapp.ui.access import PUBLIC

UI_BLUEPRINTS = ("sign_in", "workspace")


def ui_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(method, path, endpoint) of every route of the workspace UI."""
    return sorted((method, rule.rule, rule.endpoint) for rule in app.url_map.iter_rules()
                  if rule.endpoint.split(".")[0] in UI_BLUEPRINTS
                  for method in rule.methods or () if method in ("GET", "POST"))


def test_every_workspace_page_checks_a_permission_or_says_it_is_for_anyone(app: Flask) -> None:
    """Each view went through @requires(permission) or @anyone: none was forgotten."""
    routes = ui_routes(app)
    assert len(routes) >= 6
    for _method, path, endpoint in routes:
        mark = getattr(app.view_functions[endpoint], "required_permission", None)
        assert mark == PUBLIC or isinstance(mark, Permission), f"{path} checks no permission"


def test_an_owner_sees_who_did_what_in_the_workspace(client: FlaskClient, sessions: sessionmaker[Session],
                                                      shop: Shop, clock: FakeClock, domain: str) -> None:
    """The activity page lists the sign-ins, newest first, with who and from where."""
    add_member(sessions, shop.id, f"owner@{domain}", Role.OWNER, now=clock())
    sign_in(client, f"owner@{domain}")
    page = text(client.get("/app/activity"))
    assert "<td>signed in</td>" in page and f"<td>owner@{domain}</td>" in page and "address: 127.0.0.1" in page
    assert '<a href="/app/activity">Activity</a>' in text(client.get("/app/"))


def test_a_viewer_is_refused_the_activity_log_and_sees_none_of_it(
        client: FlaskClient, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """403 as a page saying why, with no entry of the log on it, and no link to it on the home."""
    add_member(sessions, shop.id, f"owner@{domain}", Role.OWNER, now=clock())
    add_member(sessions, shop.id, f"vic@{domain}", Role.VIEWER, now=clock())
    sign_in(client, f"vic@{domain}")
    refused = client.get("/app/activity")
    assert refused.status_code == 403
    assert "Your role in this workspace does not allow this." in text(refused)
    assert f"owner@{domain}" not in text(refused) and "signed in</td>" not in text(refused)
    assert "/app/activity" not in text(client.get("/app/"))


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR, Role.MARKETER, Role.OWNER])
def test_walking_every_route_each_role_gets_its_pages_and_403_for_the_rest(
        app: Flask, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str, role: Role) -> None:
    """Every GET of the UI answers 200 when the role has the view's permission and 403 when not; never a 5xx."""
    add_member(sessions, shop.id, f"{role.value}@{domain}", role, now=clock())
    client = app.test_client()
    sign_in(client, f"{role.value}@{domain}")
    for method, path, endpoint in ui_routes(app):
        if method != "GET":
            continue
        answer = client.get(path)
        mark = app.view_functions[endpoint].required_permission
        if mark == PUBLIC:
            assert answer.status_code in (200, 303), path
        else:
            assert answer.status_code == (200 if can(role, mark) else 403), (path, answer.status_code)


def test_a_user_of_another_workspace_gets_nothing_of_this_one(
        app: Flask, sessions: sessionmaker[Session], shop: Shop, second_shop: Shop, clock: FakeClock,
        domain: str) -> None:
    """An owner elsewhere walks every route, giving this workspace's id wherever one is taken: a refusal (404 to
    switch to it) or their own workspace's pages, and never this workspace's name, id or people."""
    add_member(sessions, shop.id, f"ann@{domain}", Role.OWNER, now=clock())
    add_member(sessions, second_shop.id, f"bob@{domain}", Role.OWNER, now=clock())
    client = app.test_client()
    sign_in(client, f"ann@{domain}")
    post_form(client, "/sign-out")  # this workspace now has activity of its own to leak
    for method, path, _endpoint in ui_routes(app):
        client = app.test_client()
        sign_in(client, f"bob@{domain}")
        if method == "GET":
            answer = client.get(path, query_string={"workspace_id": shop.id})
        else:
            answer = post_form(client, path, {"workspace_id": shop.id})
        body = text(answer)
        assert answer.status_code < 500, (method, path, answer.status_code)
        assert shop.id not in body and "Test Shop" not in body and f"ann@{domain}" not in body, (method, path)
        assert "Test Shop" not in text(client.get("/app/", follow_redirects=True)), (method, path)


def test_switching_to_a_workspace_one_does_not_belong_to_is_not_found(
        client: FlaskClient, sessions: sessionmaker[Session], shop: Shop, second_shop: Shop, clock: FakeClock,
        domain: str) -> None:
    """404, and the session stays in the user's own workspace."""
    add_member(sessions, second_shop.id, f"bob@{domain}", Role.OWNER, now=clock())
    sign_in(client, f"bob@{domain}")
    assert post_form(client, "/app/workspace", {"workspace_id": shop.id}).status_code == 404
    assert '<h1 id="workspace-title">Other Shop</h1>' in text(client.get("/app/"))


def test_a_member_of_two_workspaces_switches_and_gets_that_workspaces_role(
        client: FlaskClient, sessions: sessionmaker[Session], shop: Shop, second_shop: Shop, clock: FakeClock,
        domain: str) -> None:
    """Owner here, viewer there: after switching, the home shows the other workspace and the viewer role."""
    add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    add_member(sessions, second_shop.id, f"ada@{domain}", Role.VIEWER, now=clock())
    sign_in(client, f"ada@{domain}")
    home = text(client.get("/app/"))
    assert "Switch to Other Shop</button> <span class=\"meta\">as viewer</span>" in home
    assert post_form(client, "/app/workspace", {"workspace_id": second_shop.id}).status_code == 303
    home = text(client.get("/app/"))
    assert '<h1 id="workspace-title">Other Shop</h1>' in home and "<strong>viewer</strong>" in home
    assert client.get("/app/activity").status_code == 403


def test_the_home_loads_how_many_browsers_are_signed_in_as_the_user(
        app: Flask, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """The home asks htmx to fetch the sentence; the fragment counts this browser and the user's others."""
    add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    first, second = app.test_client(), app.test_client()
    sign_in(first, f"ada@{domain}")
    assert 'hx-get="/app/sessions" hx-trigger="load"' in text(first.get("/app/"))
    assert text(first.get("/app/sessions", headers={"HX-Request": "true"})).strip() == (
        "You are signed in on 1 browser.")
    sign_in(second, f"ada@{domain}")
    assert text(first.get("/app/sessions")).strip() == "You are signed in on 2 browsers, this one included."

"""Signing in and out in a real browser, and the workspace UI's script running under its Content-Security-Policy.

Elements are found as a person finds them: by their role and their label.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.engine.workspaces.conftest import PASSWORD
from tests.webapp.ui.browser.conftest import Tab, sign_in

pytestmark = pytest.mark.browser


def test_the_right_password_lands_on_the_workspace_page_showing_the_workspace_and_role(tab: Tab, owner: str) -> None:
    """Asked to sign in on the way to the workspace, then shown the workspace's name, the person and their role."""
    tab.visit("/app/", "asked to sign in")
    expect(tab.page).to_have_url(re.compile(r"/sign-in\?next=/app/$"))
    expect(tab.page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(tab, owner, PASSWORD)
    expect(tab.page).to_have_url(re.compile(r"/app/$"))
    tab.screenshot("workspace home")
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Test Shop")
    facts = tab.page.get_by_role("main").get_by_role("definition")
    expect(facts.filter(has_text=owner)).to_have_count(1)
    expect(facts.filter(has_text=re.compile(r"^owner: "))).to_have_count(1)
    expect(tab.page.get_by_role("banner")).to_contain_text(f"{owner} (owner)")


def test_a_wrong_password_is_refused_at_the_form_keeping_the_email_typed(tab: Tab, owner: str) -> None:
    """The alert says the email or the password is wrong; the email stays as typed, the password is cleared."""
    tab.visit("/sign-in", "sign-in form")
    sign_in(tab, owner, "not the password at all")
    expect(tab.page.get_by_role("alert")).to_have_text(re.compile(r"The email or the password is wrong\.$"))
    tab.screenshot("wrong password")
    expect(tab.page.get_by_label("Email")).to_have_value(owner)
    expect(tab.page.get_by_label("Password")).to_have_value("")
    tab.visit("/app/", "still signed out")
    expect(tab.page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_an_empty_password_is_named_at_its_field_keeping_the_email_typed(tab: Tab, owner: str) -> None:
    """The password field is marked invalid and described by its error; the email stays as typed."""
    tab.visit("/sign-in", "sign-in form")
    sign_in(tab, owner, "")
    password = tab.page.get_by_label("Password")
    expect(password).to_have_attribute("aria-invalid", "true")
    tab.screenshot("password missing")
    expect(password).to_have_accessible_description(re.compile(r"enter your password"))
    expect(tab.page.get_by_label("Email")).to_have_value(owner)


def test_signing_out_ends_the_session_and_the_workspace_asks_to_sign_in_again(tab: Tab, owner: str) -> None:
    """After "Sign out" the sign-in page says so, and the workspace page sends the browser back to it."""
    tab.visit("/sign-in", "sign-in form")
    sign_in(tab, owner, PASSWORD)
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Test Shop")
    tab.page.get_by_role("button", name="Sign out", exact=True).click()
    expect(tab.page.get_by_role("status")).to_have_text("You are signed out.")
    tab.screenshot("signed out")
    tab.visit("/app/", "workspace after signing out")
    expect(tab.page).to_have_url(re.compile(r"/sign-in\?next=/app/$"))


def test_the_bundled_htmx_runs_under_the_content_security_policy(tab: Tab, owner: str) -> None:
    """htmx, served from this site's own bundle, fills in the live-sessions sentence on the workspace page,
    and no page logs a policy violation or a script error; the policy still allows this site's scripts only."""
    tab.visit("/sign-in", "sign-in form")
    sign_in(tab, owner, PASSWORD)
    expect(tab.page.get_by_text("You are signed in on 1 browser.")).to_be_visible()
    tab.screenshot("workspace home with live sessions")
    assert tab.page.evaluate("window.htmx.version").startswith("2.")
    policy = tab.page.request.get("/app/").headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert tab.console_errors == []


def test_an_htmx_request_carries_the_pages_csrf_token(tab: Tab, owner: str) -> None:
    """A POST sent through htmx passes the CSRF check (switching to a workspace one is not in: 404); the same POST
    sent without the token is refused (400)."""
    tab.visit("/sign-in", "sign-in form")
    sign_in(tab, owner, PASSWORD)
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Test Shop")
    tab.screenshot("workspace home")
    with tab.page.expect_response(re.compile(r"/app/workspace$")) as answer:
        tab.page.evaluate("htmx.ajax('POST', '/app/workspace', {values: {workspace_id: 'ws_nobody'}, swap: 'none'})")
    assert answer.value.status == 404
    without_token = tab.page.evaluate("""fetch('/app/workspace', {method: 'POST',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'workspace_id=ws_nobody'})
        .then(r => r.status)""")
    assert without_token == 400

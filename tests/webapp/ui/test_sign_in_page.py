"""Signing in through the browser: field errors that keep what was typed, one answer for wrong credentials,
the throttle per account and per address, CSRF, cookie flags, signing out here and everywhere."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.settings import Settings
from engine.workspaces.roles import Role
from tests.conftest import FakeClock, Shop
from tests.engine.workspaces.conftest import PASSWORD, add_member
from tests.webapp.conftest import close_app
from tests.webapp.ui.conftest import csrf_token, post_form, sign_in, text
from webapp.app import create_app


@pytest.fixture
def ada(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> str:
    """An owner of the test's workspace; her email."""
    add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    return f"ada@{domain}"


def test_the_sign_in_form_has_labelled_fields_and_a_csrf_token(client: FlaskClient) -> None:
    """Each input has its label and the autocomplete hints password managers use; the form carries a token."""
    page = text(client.get("/sign-in"))
    assert '<label for="email">Email</label>' in page and '<label for="password">Password</label>' in page
    assert re.search(r'<input autocomplete="username" id="email" name="email" required type="text"', page)
    assert re.search(r'<input autocomplete="current-password" id="password" name="password" required '
                     r'type="password"', page)
    assert re.search(r'<input id="csrf_token" name="csrf_token" type="hidden" value="[^"]+">', page)


def test_the_right_password_lands_on_the_workspace_home_showing_the_role(client: FlaskClient, ada: str) -> None:
    """After signing in, the home names the workspace, the person and their role."""
    signed = sign_in(client, ada.upper())
    assert signed.status_code == 303 and signed.headers["Location"] == "/app/"
    home = text(client.get("/app/"))
    assert "<h1 id=\"workspace-title\">Test Shop</h1>" in home
    assert f"<dd>{ada}</dd>" in home and "<strong>owner</strong>" in home


def test_the_session_cookie_is_http_only_and_same_site_lax(client: FlaskClient, ada: str) -> None:
    """Script cannot read the session cookie, other sites' forms do not carry it, and plain http still works."""
    cookie = sign_in(client, ada).headers["Set-Cookie"]
    assert cookie.startswith("rapport_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie and "Max-Age=604800" in cookie


def test_cookies_are_secure_when_rapport_is_served_over_https(settings: Settings, clock: FakeClock,
                                                               ada: str) -> None:
    """With an https BASE_URL, the session and CSRF cookies are sent over HTTPS only."""
    app = create_app(replace(settings, base_url="https://rapport.example"), clock=clock)
    try:
        client = app.test_client()
        form = client.get("/sign-in", base_url="https://rapport.example")
        signed = client.post("/sign-in", base_url="https://rapport.example",
                             headers={"Referer": "https://rapport.example/sign-in"},
                             data={"email": ada, "password": PASSWORD, "csrf_token": csrf_token(form)})
        assert signed.status_code == 303
        cookies = signed.headers.getlist("Set-Cookie")
        assert cookies and all("Secure" in c and "HttpOnly" in c for c in cookies), cookies
    finally:
        close_app(app)


def test_a_wrong_password_is_refused_keeping_the_email_but_not_the_password(client: FlaskClient, ada: str) -> None:
    """401, the message at the form, the email as typed, the password field empty, no session."""
    refused = sign_in(client, ada, "not the password at all")
    page = text(refused)
    assert refused.status_code == 401 and "rapport_session" not in refused.headers.get("Set-Cookie", "")
    assert re.search(r'<p class="problem" role="alert">.*The email or the password is wrong.</p>', page)
    assert f'value="{ada}"' in page and "not the password at all" not in page


def test_an_unknown_email_gets_the_same_answer_as_a_wrong_password(client: FlaskClient, ada: str, domain: str) -> None:
    """The page does not tell who has an account."""
    wrong = sign_in(client, ada, "not the password at all")
    unknown = sign_in(client, f"nobody@{domain}")
    assert unknown.status_code == wrong.status_code == 401
    assert text(unknown).replace(f"nobody@{domain}", ada) == text(wrong).replace(
        csrf_token(wrong), csrf_token(unknown))


@pytest.mark.parametrize(("email", "message"), [("", "enter an email address"),
                                                ("ada@example", "enter an email address such as ada@example.com")])
def test_a_blank_or_malformed_email_is_refused_at_its_field_keeping_what_was_typed(
        client: FlaskClient, email: str, message: str) -> None:
    """422, the error under the email's label, tied to the input for screen readers; the password is not kept."""
    refused = sign_in(client, email, "a password typed")
    page = text(refused)
    assert refused.status_code == 422
    assert f'<p class="field-error" id="email-error"><span aria-hidden="true">⚠ </span>{message}</p>' in page
    assert re.search(r'<input aria-describedby="email-error" aria-invalid="true" autocomplete="username" id="email" '
                     rf'name="email" required type="text" value="{re.escape(email)}">', page)
    assert "a password typed" not in page


def test_a_missing_password_is_refused_at_its_field(client: FlaskClient, ada: str) -> None:
    """The password's own error, and the email kept."""
    page = text(sign_in(client, ada, ""))
    assert re.search(r'<p class="field-error" id="password-error">.*enter your password</p>', page)
    assert f'value="{ada}"' in page


def test_after_five_failures_an_account_is_throttled_even_with_the_right_password(
        client: FlaskClient, ada: str, domain: str) -> None:
    """The sixth try is refused before the password is checked (429, Retry-After); other accounts still sign in."""
    for _ in range(5):
        assert sign_in(client, ada, "a wrong password").status_code == 401
    throttled = sign_in(client, ada)
    assert throttled.status_code == 429 and 840 <= int(throttled.headers["Retry-After"]) <= 900
    assert "Too many failed sign-ins for this account. Try again in 15 minutes." in text(throttled)
    assert f'value="{ada}"' in text(throttled)
    assert sign_in(client, f"nobody@{domain}").status_code == 401  # the address is under its limit


def test_twenty_failures_from_one_address_throttle_every_account_from_it(client: FlaskClient, ada: str,
                                                                        domain: str) -> None:
    """Trying many accounts from one address is stopped, whichever account comes next; other addresses are not."""
    for n in range(20):
        assert sign_in(client, f"guess{n % 5}@{domain}").status_code == 401
    throttled = sign_in(client, ada)
    assert throttled.status_code == 429 and "from your network address" in text(throttled)
    elsewhere = client.application.test_client()
    token = csrf_token(elsewhere.get("/sign-in"))
    assert elsewhere.post("/sign-in", data={"email": ada, "password": PASSWORD, "csrf_token": token},
                          environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 303


def test_a_sign_in_that_goes_through_clears_the_accounts_failures(client: FlaskClient, ada: str) -> None:
    """Four slips, a success, four more slips: the person is not locked out."""
    for _ in range(2):
        for _ in range(4):
            assert sign_in(client, ada, "a wrong password").status_code == 401
        assert sign_in(client, ada).status_code == 303
        assert post_form(client, "/sign-out").status_code == 303


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(client: FlaskClient, ada: str) -> None:
    """Sign-in and sign-out without the token are refused with 400 as a page; no session starts, none ends."""
    refused = client.post("/sign-in", data={"email": ada, "password": PASSWORD})
    assert refused.status_code == 400 and "rapport_session" not in refused.headers.get("Set-Cookie", "")
    assert "The form had expired or did not come from this site" in text(refused)
    sign_in(client, ada)
    assert client.post("/sign-out").status_code == 400
    assert client.post("/sign-out", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/app/").status_code == 200


def test_an_htmx_request_may_send_the_token_as_a_header(client: FlaskClient, ada: str) -> None:
    """The X-CSRFToken header with the meta tag's token is as good as the form field."""
    sign_in(client, ada)
    token = csrf_token(client.get("/app/"))
    assert client.post("/sign-out", headers={"X-CSRFToken": token, "HX-Request": "true"}).status_code == 303
    assert client.get("/app/").status_code == 303


def test_a_signed_out_session_stays_out_even_with_its_cookie(client: FlaskClient, ada: str) -> None:
    """The cookie of a session signed out is worth nothing if replayed."""
    cookie = sign_in(client, ada).headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    signed_out = post_form(client, "/sign-out")
    assert signed_out.status_code == 303 and signed_out.headers["Location"] == "/sign-in"
    assert "You are signed out." in text(client.get("/sign-in"))
    client.set_cookie("rapport_session", cookie)
    assert client.get("/app/").headers["Location"] == "/sign-in?next=/app/"


def test_signing_out_everywhere_signs_out_the_other_browsers(app: Flask, ada: str) -> None:
    """Two browsers signed in as Ada; signing out everywhere in one sends both back to the sign-in page."""
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, ada)
    sign_in(phone, ada)
    assert phone.get("/app/").status_code == 200
    assert post_form(laptop, "/sign-out-everywhere").status_code == 303
    assert "You are signed out everywhere (2 sessions ended)." in text(laptop.get("/sign-in"))
    assert phone.get("/app/").status_code == 303 and laptop.get("/app/").status_code == 303


def test_a_page_asked_for_before_signing_in_is_where_sign_in_leads(client: FlaskClient, ada: str) -> None:
    """/app/activity sends to the sign-in page, and signing in there comes back to it."""
    asked = client.get("/app/activity")
    assert asked.status_code == 303 and asked.headers["Location"] == "/sign-in?next=/app/activity"
    signed = sign_in(client, ada, path=asked.headers["Location"])
    assert signed.headers["Location"] == "/app/activity"


def test_an_htmx_request_of_a_signed_out_browser_is_sent_to_the_sign_in_page_whole(client: FlaskClient) -> None:
    """A fragment asked for after the session ended gets 401 and HX-Redirect, not the sign-in form inside the page."""
    answer = client.get("/app/activity", headers={"HX-Request": "true"})
    assert answer.status_code == 401 and answer.headers["HX-Redirect"] == "/sign-in?next=/app/activity"


@pytest.mark.parametrize("next_page", ["//evil.example/", "https://evil.example/", "/\t/evil.example", "/\\evil"])
def test_signing_in_never_leads_off_the_site(client: FlaskClient, ada: str, next_page: str) -> None:
    """A `next` that is not a path of this site lands on the home instead."""
    token = csrf_token(client.get("/sign-in"))
    signed = client.post("/sign-in", query_string={"next": next_page},
                         data={"email": ada, "password": PASSWORD, "csrf_token": token})
    assert signed.headers["Location"] == "/app/"


def test_workspace_pages_allow_scripts_from_this_site_only(client: FlaskClient, ada: str) -> None:
    """The sign-in page and the home carry a Content-Security-Policy of script-src 'self', load the one bundled
    script from this site, and have no inline script or style."""
    pages = [client.get("/sign-in")]
    sign_in(client, ada)
    pages.append(client.get("/app/"))
    for page in pages:
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "style-src 'self';" in policy
        # Scripts only as files of this site (the htmx bundle), never inline.
        scripts = re.findall(r"<script[^>]*>[^<]*</script>", text(page))
        assert scripts == ['<script src="/static/bundle/main.js" defer></script>'], scripts
        assert text(page).count("<script") == 1
        assert "<style" not in text(page) and " style=" not in text(page)


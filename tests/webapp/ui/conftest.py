"""Workspace UI fixtures: members of the test's workspaces, and a browser that signs in as one."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.engine.workspaces.conftest import PASSWORD, cheap_password_hashes, domain  # noqa: F401 (fixtures)


def csrf_token(response: TestResponse) -> str:
    """The page's CSRF token, from the meta tag every workspace page carries (what htmx would send)."""
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', response.get_data(as_text=True))
    assert found, response.get_data(as_text=True)
    return found.group(1)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD, *, path: str = "/sign-in") -> TestResponse:
    """Fill in and send the sign-in form as a browser does (the form page first, for its token)."""
    token = csrf_token(client.get(path))
    return client.post(path, data={"email": email, "password": password, "csrf_token": token})


def post_form(client: FlaskClient, path: str, data: dict[str, str] | None = None) -> TestResponse:
    """Send a form of a signed-in page, with the token the page carries."""
    token = csrf_token(client.get("/app/", follow_redirects=True))
    return client.post(path, data={**(data or {}), "csrf_token": token})


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)

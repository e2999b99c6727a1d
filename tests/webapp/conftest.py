"""Web fixtures: the Flask app on this test's database, queues and clock, and signed writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from engine.settings import Settings
from engine.signing import sign, sign_request
from engine.workspaces.accounts import Credentials, create_workspace
from tests.conftest import FakeClock, Shop
from webapp.app import create_app


def close_app(app: Flask) -> None:
    """Release what create_app opened: its database engine and its Redis connection."""
    parts = app.extensions["rapport"]
    parts["engine"].dispose()
    parts["redis"].close()


@pytest.fixture
def app(settings: Settings, clock: FakeClock) -> Iterator[Flask]:
    """The app as gunicorn would build it, but on this test's database, Redis namespace and clock."""
    app = create_app(settings, clock=clock)
    app.config.update(TESTING=True)
    yield app
    close_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def second_shop(sessions: sessionmaker[Session], clock: FakeClock) -> Shop:
    """Another fresh workspace, for checking that one workspace never sees another's data."""
    with sessions.begin() as session:
        return Shop(create_workspace(session, "Other Shop", now=clock()))


def auth_headers(credentials: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials.api_key}"}


def post_signed(
    client: FlaskClient,
    path: str,
    payload: Any,
    credentials: Credentials,
    *,
    timestamp: int | None = None,
    secret: str | None = None,
    headers: dict[str, str] | None = None,
) -> TestResponse:
    """POST `payload` (JSON-encoded, or raw bytes as given) signed the way a shop signs it.

    The signature is over the exact bytes sent, stamped with the app's clock unless
    `timestamp` says otherwise; `secret` signs with another secret than the workspace's.
    """
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if timestamp is None:
        timestamp = int(client.application.extensions["rapport"]["clock"]().timestamp())
    signature = sign(secret if secret is not None else credentials.signing_secret, body, timestamp)
    all_headers = {**auth_headers(credentials), "Content-Type": "application/json", "Rapport-Signature": signature}
    all_headers.update(headers or {})
    return client.post(path, data=body, headers=all_headers)


def signed_headers(client: FlaskClient, method: str, path: str, body: bytes,
                   credentials: Credentials) -> dict[str, str]:
    """The key and the signature of an API write other than event ingestion (method, path and body)."""
    timestamp = int(client.application.extensions["rapport"]["clock"]().timestamp())
    return {**auth_headers(credentials),
            "Rapport-Signature": sign_request(credentials.signing_secret, method, path, body, timestamp)}


def send_signed(
    client: FlaskClient,
    method: str,
    path: str,
    credentials: Credentials,
    payload: Any = None,
    *,
    headers: dict[str, str] | None = None,
) -> TestResponse:
    """A write to the API signed the way every write but event ingestion is: `payload` goes
    JSON-encoded (raw bytes as given, nothing when None)."""
    body = payload if isinstance(payload, bytes) else b"" if payload is None else json.dumps(payload).encode()
    all_headers = signed_headers(client, method, path, body, credentials)
    if payload is not None:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    return client.open(path, method=method, data=body, headers=all_headers)

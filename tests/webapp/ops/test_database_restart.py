"""The database restarts (its backends are terminated): the next request succeeds, with no 500.

A web process keeps pooled connections; after a restart each one is dead. The pool must
notice before handing one out (engine/store/db.py), however long after the restart the next
request comes. PostgreSQL only: SQLite has no server to restart.
"""

from __future__ import annotations

import os

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import Shop
from tests.webapp.conftest import auth_headers, post_signed
from workers.dev.demo import cart_event


@pytest.fixture
def web_engine(database_url: str, client: FlaskClient) -> Engine:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite is a file: there is no database server whose restart could cut connections")
    engine: Engine = client.application.extensions["rapport"]["engine"]
    return engine


def terminate_backends(database_url: str) -> int:
    """What a restart does to every client of this database: each backend ends (waited for, up to 5 s)."""
    admin = create_engine(os.environ.get("RAPPORT_TEST_DATABASE_URL") or database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            ended = conn.execute(text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": make_url(database_url).database})
            return int(ended.scalar_one())
    finally:
        admin.dispose()


def fill_pool(engine: Engine, connections: int) -> None:
    """Several connections open at once, then back in the pool: each will be dead after the restart."""
    held = [engine.connect() for _ in range(connections)]
    for conn in held:
        conn.execute(text("SELECT 1"))
        conn.close()


def test_the_first_request_after_a_database_restart_succeeds(
    client: FlaskClient, shop: Shop, web_engine: Engine, database_url: str
) -> None:
    """Every pooled connection is cut; the next event is accepted (202) and read back (200)."""
    assert post_signed(client, "/api/v1/events", cart_event("before"), shop.credentials).status_code == 202
    fill_pool(web_engine, 3)
    assert terminate_backends(database_url) >= 3

    event = cart_event("after", customer="after-restart")
    response = post_signed(client, "/api/v1/events", event, shop.credentials)
    assert response.status_code == 202, response.json
    profile = client.get("/api/v1/contacts/after-restart", headers=auth_headers(shop.credentials))
    assert profile.status_code == 200


def test_every_pooled_connection_is_replaced_not_only_the_first(
    client: FlaskClient, shop: Shop, web_engine: Engine, database_url: str
) -> None:
    """Three requests holding three connections at once after the restart: none of them fails."""
    fill_pool(web_engine, 3)
    terminate_backends(database_url)
    held = [web_engine.connect() for _ in range(3)]
    try:
        assert [conn.execute(text("SELECT 1")).scalar_one() for conn in held] == [1, 1, 1]
    finally:
        for conn in held:
            conn.close()
    journeys = client.get("/api/v1/journeys", headers=auth_headers(shop.credentials))
    assert journeys.status_code == 200

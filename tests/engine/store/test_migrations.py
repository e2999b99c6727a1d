"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from engine.contacts.ingest import ingest_events
from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.store.models import Base, Contact
from tests.conftest import drop_database


@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_the_migrated_database_matches_the_models(db_engine: Engine) -> None:
    """No table, column or index of the models is missing from the migrations, nor the reverse.

    Expression indexes (the messenger-id lookups on PostgreSQL) cannot be compared this way:
    tests/engine/contacts/test_contact_lookups.py checks that the lookups use them."""
    with db_engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert differences == []


def test_a_withdrawal_stored_before_consent_records_stays_withdrawn(tmp_path: Path) -> None:
    """A contact who had opted out before migration 0006 is not re-subscribed by a shop's stale opt-in."""
    url = _empty_database(tmp_path)
    try:
        upgrade(url, "0005")
        engine = make_engine(url)
        now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO workspaces (id, name, signing_secret, timezone, settings, created_at) "
                              "VALUES ('ws_old', 'Old shop', 's', 'UTC', '{}', :now)"), {"now": now})
            conn.execute(text(
                "INSERT INTO contacts (workspace_id, external_id, messenger_ids, attributes, consent, created_at, "
                "updated_at) VALUES ('ws_old', 'ada', '{}', '{}', :consent, :now, :now)"),
                {"consent": json.dumps({"email": "opted_out", "sms": "opted_in"}), "now": now})
        upgrade(url)
        sessions = sessionmaker(engine)
        with sessions.begin() as session:
            ingest_events(session, "ws_old", [{"id": "evt-stale", "type": "contact_updated", "contact": {
                "external_id": "ada", "consent": {"email": "opted_in", "sms": "opted_in"}}}],
                now=now + timedelta(days=1))
        with sessions() as session:
            ada = session.scalars(select(Contact).where(Contact.external_id == "ada")).one()
            assert ada.consent == {"email": "opted_out", "sms": "opted_in"}
            assert ada.consent_records["email"]["by"] == "person" and "sms" not in ada.consent_records
        engine.dispose()
    finally:
        drop_database(url)


def _empty_database(tmp: Path) -> str:
    """A database with no schema yet, apart from the suite's migrated one."""
    server_url = os.environ.get("RAPPORT_TEST_DATABASE_URL")
    if not server_url:
        return f"sqlite:///{tmp / 'old.db'}"
    name = f"rapport_migration_{secrets.token_hex(4)}"
    with create_engine(server_url, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)

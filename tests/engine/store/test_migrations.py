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


# Lines as the writers before migration 0009 left them: (kind, step, message, sentence), in order.
OLD_LINES = [
    ("branch", "subject-test", None, "b: arm b (1/2)"),
    ("branch", "is-vip", None, "yes: vip eq True: true"),
    ("exited", "wait-for-order", None, "goal reached: order placed"),
    ("goal", "wait-for-order", None, "order_placed o-1"),
    ("exited", "wait-for-order", None, "journey archived"),
    ("exited", "bye", None, "not a customer"),
    ("not_enrolled", None, None, "Cart: journey: entry filter not met: total gte 50"),
    ("not_enrolled", None, None, "Cart: re-entry rule once ever"),
    ("not_enrolled", None, None, "Cart: event e-1 has no 'cart_id' property"),
    ("skipped", "reminder", "arm", "skipped: contact opted out of email; contact has no phone number"),
    ("message_deferred", "reminder", None, "deferred: quiet hours for sms until 09:00 CET; sms: abandoned_cart"),
    ("message_scheduled", "reminder", None, "held: sms is paused after repeated failures, until it is resumed; "
                                            "sms: abandoned_cart"),
    ("message_scheduled", "reminder", None, "email: abandoned_cart (passed over contact has no phone number)"),
    ("sent", "reminder", "arm", "email: abandoned_cart"),
    ("unsubscribed", None, "arm", "unsubscribed from email (one-click, message 1)"),
]


def test_journal_lines_written_before_0009_get_their_label_reason_arm_and_goal(tmp_path: Path) -> None:
    """Migration 0009 reads each old line's sentence once: branch labels, reason codes, arms and goals are counted."""
    url = _empty_database(tmp_path)
    try:
        upgrade(url, "0008")
        engine = make_engine(url)
        now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO workspaces (id, name, signing_secret, timezone, settings, created_at) "
                              "VALUES ('ws_old', 'Old shop', 's', 'UTC', '{}', :now)"), {"now": now})
            contact = conn.execute(text(
                "INSERT INTO contacts (workspace_id, external_id, messenger_ids, attributes, consent, created_at, "
                "updated_at) VALUES ('ws_old', 'ada', '{}', '{}', '{}', :now, :now) RETURNING id"), {"now": now})
            contact_id = contact.scalar_one()
            journey_id = conn.execute(text(
                "INSERT INTO journeys (workspace_id, name, status, created_at, updated_at) "
                "VALUES ('ws_old', 'Cart', 'live', :now, :now) RETURNING id"), {"now": now}).scalar_one()
            version_id = conn.execute(text(
                "INSERT INTO journey_versions (workspace_id, journey_id, version, trigger_event, definition, "
                "created_at) VALUES ('ws_old', :journey, 1, 'cart_updated', '{}', :now) RETURNING id"),
                {"journey": journey_id, "now": now}).scalar_one()
            run_id = conn.execute(text(
                "INSERT INTO runs (workspace_id, journey_id, journey_version_id, contact_id, key, status, "
                "step_entered_at, state, created_at) VALUES ('ws_old', :journey, :version, :contact, 'k', "
                "'exited', :now, '{}', :now) RETURNING id"),
                {"journey": journey_id, "version": version_id, "contact": contact_id, "now": now}).scalar_one()
            message_id = conn.execute(text(
                "INSERT INTO messages (workspace_id, contact_id, run_id, journey_id, step_id, channel, template, "
                "context, status, attempts, scheduled_at, created_at, arm) VALUES ('ws_old', :contact, :run, "
                ":journey, 'reminder', 'email', 'abandoned_cart', '{}', 'sent', 1, :now, :now, 'subject-test:b') "
                "RETURNING id"),
                {"contact": contact_id, "run": run_id, "journey": journey_id, "now": now}).scalar_one()
            for kind, step_id, message, detail in OLD_LINES:
                conn.execute(text(
                    "INSERT INTO journal (workspace_id, contact_id, run_id, message_id, at, kind, step_id, detail) "
                    "VALUES ('ws_old', :contact, :run, :message, :now, :kind, :step, :detail)"),
                    {"contact": contact_id, "run": run_id, "message": message_id if message else None, "now": now,
                     "kind": kind, "step": step_id, "detail": detail})
        upgrade(url)
        with engine.connect() as conn:
            filled = [tuple(row) for row in conn.execute(text(
                "SELECT kind, label, reason, arm, goal FROM journal ORDER BY id"))]
        engine.dispose()
        assert filled == [
            ("branch", "b", None, "subject-test:b", None),
            ("branch", "yes", None, None, None),
            ("exited", None, "goal_reached", None, "order placed"),
            ("goal", None, None, None, "order placed"),
            ("exited", None, "journey_archived", None, None),
            ("exited", None, "exit_step", None, None),
            ("not_enrolled", None, "entry_filter", None, None),
            ("not_enrolled", None, "reentry_rule", None, None),
            ("not_enrolled", None, "no_key", None, None),
            ("skipped", None, "opted_out", "subject-test:b", None),
            ("message_deferred", None, "quiet_hours", None, None),
            ("message_scheduled", None, "channel_paused", None, None),
            ("message_scheduled", None, None, None, None),
            ("sent", None, None, "subject-test:b", None),
            ("unsubscribed", None, None, None, None),  # about the person's choice, not the message's fate
        ]
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

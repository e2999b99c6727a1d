"""consent records with time and source: contacts.consent_records

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # channel -> {status, at, source, by}: the latest consent decision and who made it
    # (engine/contacts/consent.py).
    with op.batch_alter_table('contacts') as batch_op:
        batch_op.add_column(sa.Column(
            'consent_records', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
            server_default='{}', nullable=False))
    _backfill_withdrawals()


def _backfill_withdrawals() -> None:
    """A withdrawal stored before this migration is taken as the person's (it came from an
    unsubscribe, STOP, a complaint or an unconfirmed signup far more often than from a shop),
    so a shop's stale opt-in cannot undo it either. Other states keep no record: the shop's."""
    contacts = sa.table('contacts', sa.column('id', sa.BigInteger), sa.column('consent', sa.JSON),
                        sa.column('updated_at', sa.DateTime(timezone=True)),
                        sa.column('consent_records', sa.JSON))
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(sa.select(contacts.c.id, contacts.c.consent, contacts.c.updated_at)
                            .where(contacts.c.id > last).order_by(contacts.c.id).limit(1000)).all()
        if not rows:
            return
        last = rows[-1].id
        for row in rows:
            consent = row.consent if isinstance(row.consent, dict) else json.loads(row.consent or "{}")
            records = {channel: {"status": status, "at": (row.updated_at or datetime.now(UTC)).isoformat(),
                                 "source": "recorded before consent records", "by": "person"}
                       for channel, status in consent.items() if status in ("opted_out", "pending")}
            if records:
                bind.execute(contacts.update().where(contacts.c.id == row.id).values(consent_records=records))


def downgrade() -> None:
    with op.batch_alter_table('contacts') as batch_op:
        batch_op.drop_column('consent_records')

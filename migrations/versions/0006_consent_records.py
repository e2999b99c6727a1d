"""consent records with time and source: contacts.consent_records

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # channel -> {status, at, source, by}: the latest consent decision and who made it
    # (engine/services/consent.py). Existing contacts start without records: their consent
    # is kept, its origin unknown, so it is treated as the shop's.
    with op.batch_alter_table('contacts') as batch_op:
        batch_op.add_column(sa.Column(
            'consent_records', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
            server_default='{}', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('contacts') as batch_op:
        batch_op.drop_column('consent_records')

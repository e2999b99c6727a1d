"""contact lookups: inbound messages find their sender by an index, not a scan

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 14:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSENGER_ID_CHANNELS = ("telegram", "whatsapp", "viber")


def upgrade() -> None:
    op.create_index('ix_contacts_phone', 'contacts', ['workspace_id', 'phone'], unique=False,
                    postgresql_where=sa.text('phone IS NOT NULL'), sqlite_where=sa.text('phone IS NOT NULL'))
    if op.get_bind().dialect.name == "postgresql":
        for channel in MESSENGER_ID_CHANNELS:
            op.create_index(f'ix_contacts_{channel}_id', 'contacts',
                            ['workspace_id', sa.text(f"(messenger_ids ->> '{channel}')")], unique=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for channel in MESSENGER_ID_CHANNELS:
            op.drop_index(f'ix_contacts_{channel}_id', table_name='contacts')
    op.drop_index('ix_contacts_phone', table_name='contacts', postgresql_where=sa.text('phone IS NOT NULL'),
                  sqlite_where=sa.text('phone IS NOT NULL'))

"""journeys: a uuid that exported files carry, so import updates the journey a file came from; the recipe installed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NOT NULL with a server default lets SQLite add the column in place: rebuilding `journeys`
    # by copy would drop a table that runs and messages reference. Every row then gets its own uuid.
    op.add_column('journeys', sa.Column('uuid', sa.String(length=36), server_default='', nullable=False))
    op.add_column('journeys', sa.Column('recipe', sa.String(length=64), nullable=True))
    journeys = sa.table('journeys', sa.column('id', sa.BigInteger()), sa.column('uuid', sa.String()))
    bind = op.get_bind()
    for (journey_id,) in bind.execute(sa.select(journeys.c.id)).all():
        bind.execute(journeys.update().where(journeys.c.id == journey_id).values(uuid=str(uuid.uuid4())))
    op.create_index('uq_journeys_workspace_uuid', 'journeys', ['workspace_id', 'uuid'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_journeys_workspace_uuid', table_name='journeys')
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy of `journeys` would cascade into its runs.
    op.drop_column('journeys', 'recipe')
    op.drop_column('journeys', 'uuid')

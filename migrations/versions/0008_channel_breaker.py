"""channel circuit breaker: a channel's state (closed, open, half_open), who paused it, its next probe

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('channel_health') as batch:
        batch.add_column(sa.Column('state', sa.String(length=16), nullable=False, server_default='closed'))
        batch.add_column(sa.Column('paused_by', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('state_since', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('next_probe_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('failed_probes', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('opened_total', sa.Integer(), nullable=False, server_default='0'))
    # A channel paused under the old rule waited for a person; it now probes at once and
    # closes by itself if the provider answers again.
    op.execute("UPDATE channel_health SET state = 'open', paused_by = 'breaker', state_since = paused_at, "
               "next_probe_at = paused_at, opened_total = 1 WHERE paused_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('channel_health') as batch:
        batch.drop_column('opened_total')
        batch.drop_column('failed_probes')
        batch.drop_column('next_probe_at')
        batch.drop_column('state_since')
        batch.drop_column('paused_by')
        batch.drop_column('state')

"""dead letters: jobs' poisonous items set aside with their error

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'dead_letters',
        sa.Column('id', ID, nullable=False),
        sa.Column('workspace_id', sa.String(length=32), nullable=False),
        sa.Column('contact_id', ID, nullable=True),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('item_id', ID, nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('error_type', sa.String(length=200), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('first_failed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_failed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'item_id'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_dead_letters_workspace', 'dead_letters', ['workspace_id', 'status', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_dead_letters_workspace', table_name='dead_letters')
    op.drop_table('dead_letters')

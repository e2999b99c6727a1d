"""journey drafts: every change to a draft is a numbered revision (history, undo, redo, stale edits refused)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'journey_draft_revisions',
        sa.Column('id', ID, nullable=False),
        sa.Column('workspace_id', sa.String(length=32), nullable=False),
        sa.Column('journey_id', ID, nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('state_revision', sa.Integer(), nullable=False),
        sa.Column('parent_revision', sa.Integer(), nullable=True),
        sa.Column('definition', JSON, nullable=False),
        sa.Column('author', sa.String(length=320), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['journey_id'], ['journeys.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('journey_id', 'revision'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_journey_draft_revisions_parent', 'journey_draft_revisions',
                    ['journey_id', 'parent_revision'], unique=False)
    # NOT NULL with a server default lets SQLite add the column in place (see 0007).
    op.add_column('journeys', sa.Column('draft_revision', sa.Integer(), server_default='0', nullable=False))
    op.add_column('journey_versions', sa.Column('draft_revision', sa.Integer(), nullable=True))
    # Each existing draft becomes its journey's first revision, so history and undo start from it.
    op.execute(
        "INSERT INTO journey_draft_revisions (workspace_id, journey_id, revision, action, state_revision, "
        "parent_revision, definition, author, created_at) "
        "SELECT workspace_id, id, 1, 'edit', 1, NULL, draft, NULL, updated_at FROM journeys WHERE draft IS NOT NULL"
    )
    op.execute("UPDATE journeys SET draft_revision = 1 WHERE draft IS NOT NULL")


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy of `journeys` would cascade into its runs.
    op.drop_column('journey_versions', 'draft_revision')
    op.drop_column('journeys', 'draft_revision')
    op.drop_index('ix_journey_draft_revisions_parent', table_name='journey_draft_revisions')
    op.drop_table('journey_draft_revisions')

"""templates in the database: a workspace's own templates, their immutable versions, the published one

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'message_templates',
        sa.Column('id', ID, nullable=False),
        sa.Column('workspace_id', sa.String(length=32), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('draft', JSON, nullable=True),
        sa.Column('draft_revision', sa.Integer(), nullable=False),
        sa.Column('draft_saved_by', sa.String(length=320), nullable=True),
        sa.Column('published_version_id', ID, nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        # A cycle with message_template_versions: SQLite keeps this key inline, PostgreSQL adds it below.
        sa.ForeignKeyConstraint(['published_version_id'], ['message_template_versions.id'],
                                name='fk_message_templates_published_version', use_alter=True),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('workspace_id', 'channel', 'name'),
        sqlite_autoincrement=True,
    )
    op.create_table(
        'message_template_versions',
        sa.Column('id', ID, nullable=False),
        sa.Column('workspace_id', sa.String(length=32), nullable=False),
        sa.Column('template_id', ID, nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('digest', sa.String(length=16), nullable=False),
        sa.Column('subject', sa.Text(), nullable=True),
        sa.Column('body_mjml', sa.Text(), nullable=True),
        sa.Column('body_text', sa.Text(), nullable=False),
        sa.Column('buttons', JSON, nullable=False),
        sa.Column('provider_template', JSON, nullable=True),
        sa.Column('created_by', sa.String(length=320), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['template_id'], ['message_templates.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('template_id', 'version'),
        sa.UniqueConstraint('template_id', 'digest'),
        sqlite_autoincrement=True,
    )
    if op.get_bind().dialect.name == "postgresql":  # as 0003 does for journeys.live_version_id
        op.create_foreign_key('fk_message_templates_published_version', 'message_templates',
                              'message_template_versions', ['published_version_id'], ['id'])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint('fk_message_templates_published_version', 'message_templates', type_='foreignkey')
    op.drop_table('message_template_versions')
    op.drop_table('message_templates')

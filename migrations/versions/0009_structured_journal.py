"""a structured journal: journal.label, reason, arm and goal beside the sentence

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Lines about a message carry its split-test arm (engine/contacts/journal.py, message_row).
MESSAGE_KINDS = (
    'message_scheduled', 'message_deferred', 'skipped', 'sent', 'retrying', 'failed', 'fallback', 'suppressed',
    'channel_paused', 'channel_probe', 'channel_resumed', 'in_doubt_resent', 'in_doubt_skipped', 'unknown',
    'delivered', 'opened', 'clicked', 'replied', 'bounced', 'complained', 'bounce_delayed',
)
PARSED_KINDS = ('branch', 'exited', 'goal', 'not_enrolled', 'skipped', 'message_deferred', 'message_scheduled')

# The first clause of a skip, deferral or hold, as routing, its policies, dispatch and the channel
# breaker wrote them up to this revision, and the reason code they write beside it from now on.
CLAUSES = [(re.compile(pattern), code) for pattern, code in (
    (r'unsubscribed from topic .+', 'topic_unsubscribed'),
    (r'contact has no (email address|phone number)|no \S+ account linked', 'no_address'),
    (r'contact opted out of \S+', 'opted_out'),
    (r'\S+ consent pending \(double opt-in not confirmed\)', 'consent_pending'),
    (r'no \S+ marketing consent \(opt-in required\)', 'no_opt_in'),
    (r'\S+ address is suppressed', 'suppressed'),
    (r'no \S+ template .+', 'no_template'),
    (r'\S+ paused after repeated failures|held: .+|\S+ is paused', 'channel_paused'),
    (r'no channel to send on', 'no_channel'),
    (r'(deferred: )?frequency cap .+', 'frequency_cap'),
    (r'deferred: quiet hours for .+|quiet hours for \S+', 'quiet_hours'),
    (r'rate limited', 'rate_limited'),
    (r'held over .+ while \S+ was paused', 'held_too_long'),
    (r'\S+ is not configured', 'channel_not_configured'),
    (r'contact erased', 'contact_erased'),
)]


def upgrade() -> None:
    # Plain ADD COLUMN (nullable): a batch copy of the journal, the largest table, would take long.
    op.add_column('journal', sa.Column('label', sa.String(length=64), nullable=True))
    op.add_column('journal', sa.Column('reason', sa.String(length=32), nullable=True))
    op.add_column('journal', sa.Column('arm', sa.String(length=129), nullable=True))
    op.add_column('journal', sa.Column('goal', sa.String(length=100), nullable=True))
    _backfill_from_sentences()
    kinds = ', '.join(f"'{kind}'" for kind in MESSAGE_KINDS)
    op.execute(
        'UPDATE journal SET arm = (SELECT messages.arm FROM messages WHERE messages.id = journal.message_id) '
        f'WHERE journal.kind IN ({kinds}) AND EXISTS '
        '(SELECT 1 FROM messages WHERE messages.id = journal.message_id AND messages.arm IS NOT NULL)')


def structured_fields(kind: str, detail: str | None, step_id: str | None) -> dict[str, Any]:
    """The label, reason and arm that the writers of this revision put into the sentence of a line
    of `kind` (a `goal` line's goal comes from its run's `exited` line)."""
    text = detail or ''
    if kind == 'branch':
        label, _, why = text.partition(':')
        arm = f'{step_id}:{label}' if why.startswith(f' arm {label} (') else None
        return {'label': label or None, 'arm': arm}
    if kind == 'exited':
        if text.startswith('goal reached: '):
            return {'reason': 'goal_reached', 'goal': text.removeprefix('goal reached: ')[:100]}
        return {'reason': 'journey_archived' if text == 'journey archived' else 'exit_step'}
    if kind == 'not_enrolled':
        for marker, code in ((': entry filter not met: ', 'entry_filter'), (': re-entry rule ', 'reentry_rule')):
            if marker in text:
                return {'reason': code}
        return {'reason': 'no_key' if re.search(r': event .+ has no .+ property$', text) else None}
    if kind in ('skipped', 'message_deferred', 'message_scheduled'):
        clause = text.removeprefix('skipped: ') if kind == 'skipped' else text
        clause = clause.split('; ')[0]
        return {'reason': next((code for pattern, code in CLAUSES if pattern.fullmatch(clause)), None)}
    return {}


def _backfill_from_sentences() -> None:
    """Read each line's sentence once, in keyset batches, and write what it says into the columns."""
    journal = sa.table('journal', sa.column('id', sa.BigInteger), sa.column('run_id', sa.BigInteger),
                       sa.column('kind', sa.String), sa.column('step_id', sa.String),
                       sa.column('detail', sa.String), sa.column('label', sa.String),
                       sa.column('reason', sa.String), sa.column('arm', sa.String), sa.column('goal', sa.String))
    fill = journal.update().where(journal.c.id == sa.bindparam('line_id')).values(
        label=sa.bindparam('label'), reason=sa.bindparam('reason'), arm=sa.bindparam('arm'),
        goal=sa.bindparam('goal'))
    bind = op.get_bind()
    goals: dict[int, str] = {}  # run -> the goal its exited line names, until its goal line (written next) takes it
    last = 0
    while True:
        rows = bind.execute(sa.select(journal.c.id, journal.c.run_id, journal.c.kind, journal.c.step_id,
                                      journal.c.detail)
                            .where(journal.c.id > last, journal.c.kind.in_(PARSED_KINDS))
                            .order_by(journal.c.id).limit(1000)).all()
        if not rows:
            return
        last = rows[-1].id
        filled = []
        for row in rows:
            fields = structured_fields(row.kind, row.detail, row.step_id)
            if row.kind == 'exited' and fields.get('goal') is not None and row.run_id is not None:
                goals[row.run_id] = fields['goal']
            elif row.kind == 'goal' and row.run_id is not None:
                fields = {'goal': goals.pop(row.run_id, None)}
            if any(value is not None for value in fields.values()):
                filled.append({'line_id': row.id, 'label': None, 'reason': None, 'arm': None, 'goal': None,
                               **fields})
        if filled:
            bind.execute(fill, filled)


def downgrade() -> None:
    op.drop_column('journal', 'goal')
    op.drop_column('journal', 'arm')
    op.drop_column('journal', 'reason')
    op.drop_column('journal', 'label')

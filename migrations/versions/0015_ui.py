"""ui: browser sessions of the web UI; who pushed each tag last

Expand only: a new table and a new column (with a default).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ui_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('account_id', sa.BigInteger(), nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('client_addr', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_ui_sessions_account_id_accounts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ui_sessions')),
    )
    op.create_index(op.f('ix_ui_sessions_account_id'), 'ui_sessions', ['account_id'], unique=False)
    op.add_column('tags', sa.Column('pushed_by', sa.String(length=255), server_default=sa.text("''"), nullable=False))


def downgrade() -> None:
    op.drop_column('tags', 'pushed_by')
    op.drop_index(op.f('ix_ui_sessions_account_id'), table_name='ui_sessions')
    op.drop_table('ui_sessions')

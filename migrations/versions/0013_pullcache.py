"""pullcache: namespaces that cache an upstream registry

Expand only: one new table.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 14:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pull_through_caches',
    sa.Column('namespace', sa.String(length=255, collation='C'), nullable=False),
    sa.Column('upstream', sa.String(length=2048), nullable=False),
    sa.Column('upstream_namespace', sa.String(length=255), server_default=sa.text("''"), nullable=False),
    sa.Column('username', sa.String(length=255), server_default=sa.text("''"), nullable=False),
    sa.Column('password_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('ca', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('tag_ttl', sa.Integer(), server_default=sa.text('300'), nullable=False),
    sa.Column('updated_by', sa.String(length=255), server_default=sa.text("''"), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('namespace', name=op.f('pk_pull_through_caches'))
    )


def downgrade() -> None:
    op.drop_table('pull_through_caches')

"""mirroring: push and poll mirroring policies

Expand only: one new table.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 14:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mirroring_policies',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('repository_id', sa.BigInteger(), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('remote_host', sa.String(length=512), nullable=False),
    sa.Column('remote_repository', sa.String(length=255), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=True),
    sa.Column('secret_kind', sa.String(length=16), nullable=True),
    sa.Column('secret', sa.LargeBinary(), nullable=True),
    sa.Column('remote_ca', sa.Text(), nullable=True),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('rules', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('tag_template', sa.String(length=255), nullable=True),
    sa.Column('schedule', sa.String(length=255), nullable=True),
    sa.Column('last_status', sa.String(length=16), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_job_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'],
                            name=op.f('fk_mirroring_policies_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mirroring_policies'))
    )
    op.create_index(op.f('ix_mirroring_policies_repository_id'), 'mirroring_policies', ['repository_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_mirroring_policies_repository_id'), table_name='mirroring_policies')
    op.drop_table('mirroring_policies')

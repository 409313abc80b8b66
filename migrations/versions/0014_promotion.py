"""promotion: promotion policies (DTR's promotionPolicies)

Expand only: a new table.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 14:04:07.154826
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('promotion_policies',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('repository_id', sa.BigInteger(), nullable=False),
    sa.Column('target_repository_id', sa.BigInteger(), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('rules', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('tag_template', sa.String(length=255), nullable=False),
    sa.Column('updated_by', sa.String(length=255), server_default=sa.text("''"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_promoted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_source_tag', sa.String(length=128), nullable=True),
    sa.Column('last_target_tag', sa.String(length=128), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_promotion_policies_repository_id_repositories'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_repository_id'], ['repositories.id'], name=op.f('fk_promotion_policies_target_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_promotion_policies'))
    )
    op.create_index(op.f('ix_promotion_policies_repository_id'), 'promotion_policies', ['repository_id'], unique=False)
    op.create_index(op.f('ix_promotion_policies_target_repository_id'), 'promotion_policies', ['target_repository_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_promotion_policies_target_repository_id'), table_name='promotion_policies')
    op.drop_index(op.f('ix_promotion_policies_repository_id'), table_name='promotion_policies')
    op.drop_table('promotion_policies')

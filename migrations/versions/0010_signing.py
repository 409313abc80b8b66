"""signing: the built-in Notary's files, keys and change feed; trusted keys; signing policies

Expand only: new tables.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 09:02:10.084474
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('signing_policies',
    sa.Column('scope', sa.String(length=255, collation='C'), nullable=False),
    sa.Column('signed_only', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('updated_by', sa.String(length=255), server_default=sa.text("''"), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('scope', name=op.f('pk_signing_policies'))
    )
    op.create_table('trust_changes',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('gun', sa.String(length=512, collation='C'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trust_changes'))
    )
    op.create_index('ix_trust_changes_gun', 'trust_changes', ['gun', 'id'], unique=False)
    op.create_table('trust_files',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('gun', sa.String(length=512, collation='C'), nullable=False),
    sa.Column('repository', sa.String(length=255, collation='C'), nullable=False),
    sa.Column('role', sa.String(length=255, collation='C'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trust_files')),
    sa.UniqueConstraint('gun', 'role', 'version', name='uq_trust_files_gun_role_version')
    )
    op.create_index('ix_trust_files_checksum', 'trust_files', ['gun', 'role', 'sha256'], unique=False)
    op.create_index(op.f('ix_trust_files_repository'), 'trust_files', ['repository'], unique=False)
    op.create_table('trust_keys',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('gun', sa.String(length=512, collation='C'), nullable=False),
    sa.Column('repository', sa.String(length=255, collation='C'), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('algorithm', sa.String(length=32), nullable=False),
    sa.Column('public', sa.Text(), nullable=False),
    sa.Column('private_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trust_keys'))
    )
    op.create_index('ix_trust_keys_gun_role', 'trust_keys', ['gun', 'role', 'id'], unique=False)
    op.create_index(op.f('ix_trust_keys_repository'), 'trust_keys', ['repository'], unique=False)
    op.create_table('trusted_keys',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('scope', sa.String(length=255, collation='C'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('pem', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=255), server_default=sa.text("''"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trusted_keys')),
    sa.UniqueConstraint('scope', 'name', name='uq_trusted_keys_scope_name')
    )
    op.create_index(op.f('ix_trusted_keys_fingerprint'), 'trusted_keys', ['fingerprint'], unique=False)
    op.create_index(op.f('ix_trusted_keys_scope'), 'trusted_keys', ['scope'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_trusted_keys_scope'), table_name='trusted_keys')
    op.drop_index(op.f('ix_trusted_keys_fingerprint'), table_name='trusted_keys')
    op.drop_table('trusted_keys')
    op.drop_index(op.f('ix_trust_keys_repository'), table_name='trust_keys')
    op.drop_index('ix_trust_keys_gun_role', table_name='trust_keys')
    op.drop_table('trust_keys')
    op.drop_index(op.f('ix_trust_files_repository'), table_name='trust_files')
    op.drop_index('ix_trust_files_checksum', table_name='trust_files')
    op.drop_table('trust_files')
    op.drop_index('ix_trust_changes_gun', table_name='trust_changes')
    op.drop_table('trust_changes')
    op.drop_table('signing_policies')

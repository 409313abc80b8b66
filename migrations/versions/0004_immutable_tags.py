"""immutable tags belong to the repository (the registry enforces them)

Revision ID: 0004
Revises: 0002, 0003
Create Date: 2026-11-30 11:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = ('0002', '0003')
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('repositories', sa.Column('immutable_tags', sa.Boolean(), server_default=sa.text('false'),
                                            nullable=False))
    op.execute("UPDATE repositories r SET immutable_tags = true FROM repository_pruning p "
               "WHERE p.repository_id = r.id AND p.immutable")
    op.drop_column('repository_pruning', 'immutable')


def downgrade() -> None:
    op.add_column('repository_pruning', sa.Column('immutable', sa.Boolean(), server_default=sa.text('false'),
                                                  nullable=False))
    op.execute("INSERT INTO repository_pruning (repository_id, immutable) SELECT id, true FROM repositories "
               "WHERE immutable_tags ON CONFLICT (repository_id) DO UPDATE SET immutable = true")
    op.drop_column('repositories', 'immutable_tags')

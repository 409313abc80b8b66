"""an index in the tag list's order (repository, lower(name), name)

Expand only: a new index. A plain CREATE INDEX (migrations run in one transaction, where
CREATE INDEX CONCURRENTLY is refused): it blocks writes to ``tags`` while it is built.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_tags_repository_id_lower_name', 'tags', ['repository_id', sa.text('lower(name)'), 'name'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_tags_repository_id_lower_name', table_name='tags')

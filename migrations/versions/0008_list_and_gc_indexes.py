"""indexes: the tag list's order (repository, lower(name), name); manifest children by digest

Expand only: new indexes. A plain CREATE INDEX (migrations run in one transaction, where
CREATE INDEX CONCURRENTLY is refused): it blocks writes to ``tags`` and
``manifest_references`` while they are built (seconds for millions of rows).

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
    op.create_index('ix_manifest_references_child', 'manifest_references', ['digest'], unique=False,
                    postgresql_where=sa.text("kind = 'manifest'"))


def downgrade() -> None:
    op.drop_index('ix_manifest_references_child', table_name='manifest_references')
    op.drop_index('ix_tags_repository_id_lower_name', table_name='tags')

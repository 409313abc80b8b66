"""images: an index of repository names without their namespace (the autocomplete's prefix search)

Expand only: a new index.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 00:30:00
"""

from __future__ import annotations

from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_repositories_repo_part ON repositories "
               "(substr(name, strpos(name, '/') + 1))")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_repositories_repo_part")

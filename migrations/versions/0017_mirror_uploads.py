"""mirroring: chunked uploads to push mirrors' remotes in progress, resumed by a later run

Expand only: a new table.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mirror_uploads",
        sa.Column("policy_id", postgresql.UUID(as_uuid=True),
                  sa.ForeignKey("mirroring_policies.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("digest", sa.String(200), primary_key=True),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mirror_uploads")

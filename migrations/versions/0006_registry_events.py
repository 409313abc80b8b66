"""the registry's event outbox and its subscribers' cursors

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

#: The outbox's lock key (dtr.registry.events.record calls the function below; only it takes this key).
_RECORD_LOCK = 0x6474725F6576

#: Record a transaction's events: take the outbox lock (held until commit, so ids are drawn in
#: commit order), insert them in the order given, and tell every replica's manifest cache which
#: repositories changed. One round trip for the caller.
_FUNCTION = f"""
CREATE FUNCTION dtr_record_events(evs jsonb, invalidate text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({_RECORD_LOCK});
    INSERT INTO registry_events (type, repository, tag, digest, actor, client_addr, detail)
    SELECT e->>'type', e->>'repository', e->>'tag', e->>'digest', coalesce(e->>'actor', ''),
           coalesce(e->>'client_addr', ''), e->'detail'
    FROM jsonb_array_elements(evs) WITH ORDINALITY AS x(e, n) ORDER BY n;
    PERFORM pg_notify('dtr_manifests', r) FROM unnest(invalidate) AS r;
END $$
"""


def upgrade() -> None:
    op.create_table('registry_events',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('repository', sa.String(length=255, collation='C'), nullable=False),
    sa.Column('tag', sa.String(length=128, collation='C'), nullable=True),
    sa.Column('digest', sa.String(length=200), nullable=True),
    sa.Column('actor', sa.String(length=255), server_default=sa.text("''"), nullable=False),
    sa.Column('client_addr', sa.String(length=64), server_default=sa.text("''"), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_events'))
    )
    op.create_index('ix_registry_events_repository', 'registry_events', ['repository', 'id'], unique=False)
    op.create_table('event_cursors',
    sa.Column('subscriber', sa.String(length=64), nullable=False),
    sa.Column('position', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('subscriber', name=op.f('pk_event_cursors'))
    )
    op.execute(_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION dtr_record_events(jsonb, text[])")
    op.drop_table('event_cursors')
    op.drop_index('ix_registry_events_repository', table_name='registry_events')
    op.drop_table('registry_events')

"""Alembic environment: dtr passes an open connection (see dtr.db.migrate); offline mode is unused."""

from __future__ import annotations

from alembic import context

from dtr.db.metadata import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `dtr db upgrade`, which connects and takes the migration lock")

context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()

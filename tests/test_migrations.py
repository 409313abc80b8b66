"""Migrations and models agree: ``upgrade heads`` on a fresh database yields exactly the models' schema.

A model change without its migration (or a migration without its model change) fails here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from dtr.db.engine import asyncpg_url
from dtr.db.metadata import metadata
from dtr.db.migrate import alembic_config, upgrade


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(ctx, metadata))


def _heads(conn: Connection) -> set[str]:
    return set(MigrationContext.configure(conn).get_current_heads())


async def test_upgrade_heads_matches_the_models(empty_database_url: str) -> None:
    engine = create_async_engine(asyncpg_url(empty_database_url))
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
            heads = await conn.run_sync(_heads)
        assert diff == [], "models and migrations disagree; write a migration for:\n" + "\n".join(map(str, diff))
        assert heads == set(ScriptDirectory.from_config(alembic_config()).get_heads())
    finally:
        await engine.dispose()


async def test_upgrade_is_idempotent_and_safe_to_run_concurrently(empty_database_url: str) -> None:
    engines = [create_async_engine(asyncpg_url(empty_database_url)) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(e) for e in engines))  # replicas starting at once
        await upgrade(engines[0])  # and again: nothing to do
        async with engines[0].connect() as conn:
            assert await conn.run_sync(_diff) == []
            n = (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar()
        assert n == len(ScriptDirectory.from_config(alembic_config()).get_heads())
    finally:
        for e in engines:
            await e.dispose()


def test_every_revision_has_a_downgrade_and_a_known_parent() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(script.walk_revisions())
    assert revisions
    ids = {r.revision for r in revisions}
    for r in revisions:
        for parent in (r.down_revision,) if isinstance(r.down_revision, str) else (r.down_revision or ()):
            assert parent in ids, f"{r.revision} revises unknown {parent}"
        assert hasattr(r.module, "downgrade"), f"{r.revision} has no downgrade()"


def test_migrations_form_one_chain() -> None:
    """One head: a migration whose ``down_revision`` forks the chain (as merging branches can leave
    it) is caught here, not when an old backup is restored and upgraded to ``head``."""
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1

"""Alembic, run from inside dtr under a Postgres advisory lock (replicas may start at once).

Rolling upgrades: migrations are expand-then-contract (docs/upgrades.md), so a release runs on a
schema a newer release migrated. A database at revisions this release does not know is such a
schema: it is left as it is (one warning), not refused.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

#: Any constant shared by all dtr processes; serialises migrations across replicas.
MIGRATION_LOCK = 0x647472_6D6967

log = logging.getLogger("dtr.db")


def migrations_dir() -> Path:
    """The Alembic scripts: ``dtr/_migrations`` in a wheel install (setup.py maps ``migrations/``
    there), else ``migrations/`` beside the package (a checkout, editable or on PYTHONPATH)."""
    packaged = resources.files("dtr") / "_migrations"
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / "migrations"
    if (source / "env.py").is_file():
        return source
    raise FileNotFoundError(f"dtr's migrations are missing: neither {packaged} nor {source} exists (a broken install?)")


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    # A transaction-level lock: held until the migrations commit, so the next process waiting
    # for it sees them done (a session lock released before the commit let it run them again).
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    cfg = alembic_config(connection)
    known = {script.revision for script in ScriptDirectory.from_config(cfg).walk_revisions()}
    current = MigrationContext.configure(connection).get_current_heads()
    if newer := sorted(set(current) - known):
        log.warning("database migrations: the schema is at %s, which a newer dtr release made; left as it is "
                    "(migrations are expand-then-contract: this release keeps working on it)", ", ".join(newer))
        return
    command.upgrade(cfg, revision)


async def upgrade(engine: AsyncEngine, revision: str = "heads") -> None:
    """Migrate to ``revision``; safe to call from several processes at once."""
    log.debug("database migrations: upgrading to %s (waiting for the migration lock)", revision)
    async with engine.connect() as conn:
        await conn.run_sync(_upgrade, revision)
        await conn.commit()
    log.debug("database migrations: done")

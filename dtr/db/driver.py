"""The asyncpg connection under a pooled SQLAlchemy connection, for the few hot paths where
SQLAlchemy's own work per statement is most of a request's time (the built-in Notary's reads and
updates, ``dtr.trust.store``; a blob's lookup and an upload's start and finish,
``dtr.registry``: in a running server, about 1 ms per statement through SQLAlchemy against 0.2 ms
on the driver).

The connection comes from the engine's pool, so it has the pool's settings (statement and
command timeouts) and goes back to it. Errors that mean the database is away raise
``DatabaseUnavailable`` as the engine's do, and a connection left in doubt (lost, or an operation
cut off by a cancellation) is dropped from the pool rather than handed out again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.db.errors import DatabaseUnavailable, unavailable_reason


@contextlib.asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection's asyncpg connection for the ``async with`` block (no transaction:
    open one with its ``transaction()``)."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection
        try:
            yield driver
        except Exception as e:
            # A connection the server closed (it stopped: asyncpg's "connection is closed") is lost too.
            reason = unavailable_reason(e) or ("connection lost" if driver.is_closed() else None)
            if reason is not None:
                with contextlib.suppress(Exception):
                    await conn.invalidate()
            if reason is not None and not isinstance(e, DatabaseUnavailable):
                raise DatabaseUnavailable(reason) from e
            raise
        except BaseException:  # cancelled, perhaps mid-statement: the connection is in doubt
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise

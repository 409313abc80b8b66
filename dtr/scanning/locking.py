"""The scanner's advisory locks: a session lock waited for by polling (a layer being indexed, the
re-match), and the match fence.

The match fence keeps a scan racing an import from leaving a stale result: a scan's matching
transaction holds it shared (``FENCE_SHARED``), from before it reads advisories until it commits;
the re-match finds the images a batch of changes touches holding it exclusively (``FENCE``), after
reading the changes. So either the scan committed first (its packages are found and re-matched)
or the re-match's lookup came first, and then the scan's read sees those changes' advisories
(committed before them). A scan and a re-match of one image take its ``scan_images`` row lock
first, so they never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.registry import locks

#: Seconds between tries of a busy session lock.
LOCK_POLL = 0.2
#: The match fence, held shared by a scan's matching transaction, exclusively by the re-match's lookup.
FENCE_SHARED = text("SELECT pg_advisory_xact_lock_shared(:k)").bindparams(k=locks._key("scan-match-fence"))
FENCE = text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=locks._key("scan-match-fence"))


@contextlib.asynccontextmanager
async def session_lock(engine: AsyncEngine, key: int, check_stop: Callable[[], None] | None,
                       waiting: Callable[[], None]) -> AsyncIterator[None]:
    """Hold the session advisory lock ``key`` (on a connection of its own, idle meanwhile) for the
    block, polling for it (``check_stop`` between tries; ``waiting()`` once if it is busy)."""
    async with engine.connect() as conn:
        told = False
        while not (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar():
            await conn.commit()
            if not told:
                waiting()
                told = True
            if check_stop is not None:
                check_stop()
            await asyncio.sleep(LOCK_POLL)
        await conn.commit()
        try:
            yield
        finally:
            try:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                await conn.commit()
            except Exception:
                await conn.invalidate()  # closing the session releases the lock
                raise

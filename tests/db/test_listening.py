"""A dtr process listens on one connection for everything it is notified of: the manifest and
trust caches' invalidations and the job worker's wake-ups (``dtr.db.listen.Notifications``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from dtr.db.engine import connect_args
from tests.servers import DtrProcess, create_database


async def _listening(base_uri: str, database: str) -> list[str]:
    """The last statement of each of ``database``'s sessions that LISTEN (asyncpg sends one
    ``LISTEN`` per channel, so a session listening on several shows its last)."""
    conn = await asyncpg.connect(**connect_args(base_uri))
    try:
        rows = await conn.fetch("SELECT query FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'",
                                database)
    finally:
        await conn.close()
    return [r["query"] for r in rows]


def test_one_listening_connection_per_process(pg_uri: str, tmp_path: Path) -> None:
    url = create_database(pg_uri)
    proc = DtrProcess(tmp_path, url).start()
    try:
        database = str(make_url(url).database)
        for _ in range(100):  # the listening connection is made as dtr starts (bounded wait)
            if listening := asyncio.run(_listening(pg_uri, database)):
                break
            time.sleep(0.1)
        assert len(listening) == 1, listening
    finally:
        proc.stop()

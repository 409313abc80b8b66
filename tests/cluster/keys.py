"""The cluster's token signing key read from a database, for tests that sign tokens themselves."""

from __future__ import annotations

import asyncio
import concurrent.futures

import asyncpg
from cryptography.hazmat.primitives.asymmetric import ec

from dtr.auth.tokens import load_key
from dtr.cluster.secrets import TOKEN_SIGNING_KEY


async def _read(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        return str(await conn.fetchval("SELECT value FROM cluster_keys WHERE name = $1", TOKEN_SIGNING_KEY))
    finally:
        await conn.close()


def signing_key(database_url: str) -> ec.EllipticCurvePrivateKey:
    """The token signing key the replicas on ``database_url`` share."""
    # In a thread of its own: callers may be inside a running event loop (async tests).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return load_key(pool.submit(asyncio.run, _read(database_url)).result())

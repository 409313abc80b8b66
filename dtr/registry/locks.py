"""Advisory-lock keys that make garbage collection safe while pushes go on (see dtr.jobs.gc).

Writers that make a blob or manifest reachable take the *shared* transaction lock on its key
(``share``) before they check it exists, and hold it until they commit. GC takes the
*exclusive* lock on a key before it re-checks and deletes. Keys are 64 bits of a hash: a
collision only makes two unrelated digests wait for each other, never skips a lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_SHARE = text("SELECT pg_advisory_xact_lock_shared(k) FROM unnest(CAST(:keys AS bigint[])) AS k")
#: The shared lock on one blob's key on the driver (``dtr.db.driver``: ``$1``, ``blob_key``).
_SHARE_BLOB_DRIVER = "SELECT pg_advisory_xact_lock_shared($1)"
_SHARE_AND_TAG = text("SELECT pg_advisory_xact_lock_shared(k) FROM unnest(CAST(:keys AS bigint[])) AS k "
                      "UNION ALL SELECT pg_advisory_xact_lock(:tag)")


def _key(*parts: str) -> int:
    h = hashlib.blake2b("\0".join(("dtr-gc", *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big", signed=True)


def blob_key(digest: str) -> int:
    return _key("blob", digest)


def manifest_key(repository_id: int, digest: str) -> int:
    return _key("manifest", str(repository_id), digest)


def tag_key(repository_id: int, tag: str) -> int:
    return _key("tag", str(repository_id), tag)


async def share(conn: AsyncConnection, *, blobs: Iterable[str] = (),
                manifests: Iterable[tuple[int, str]] = (), tag: tuple[int, str] | None = None) -> None:
    """Take the shared lock on each key until the transaction ends (sorted: no lock-order surprises),
    then, with ``tag``, the exclusive lock on (repository id, tag): pushes to one tag then run one
    after the other, so each sees (and its event names) the manifest the tag had before it."""
    keys = sorted({blob_key(d) for d in blobs} | {manifest_key(r, d) for r, d in manifests})
    if tag is not None:
        await conn.execute(_SHARE_AND_TAG, {"keys": keys, "tag": tag_key(*tag)})
    elif keys:
        await conn.execute(_SHARE, {"keys": keys})


async def share_blob(conn: asyncpg.Connection, digest: str) -> None:
    """``share(blobs=[digest])`` on a driver connection (``dtr.db.driver``), in its transaction."""
    await conn.execute(_SHARE_BLOB_DRIVER, blob_key(digest))

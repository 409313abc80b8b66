"""Blob uploads (``/v2/<name>/blobs/uploads/``): sessions that survive restarts and move between
replicas, bodies streamed to storage in pieces while they are hashed, and the finish that
verifies the digest and makes the blob visible.

Invariants: a blob row exists only for bytes verified against their digest and durable at
``blob_path``; storage holds the truth about an upload's bytes (its row's size is bookkeeping).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.db.driver import driver_connection
from dtr.ops.metrics import receiving
from dtr.registry import events
from dtr.registry import locks as gc_locks
from dtr.registry.changes import ensure_repository
from dtr.registry.errors import RegistryError, codes
from dtr.registry.events import Actor
from dtr.registry.models import Repository, Upload
from dtr.registry.names import blob_path, upload_path
from dtr.storage.base import FileWriter, PathNotFoundError, StorageDriver

repositories = cast(Table, Repository.__table__)
uploads = cast(Table, Upload.__table__)

#: Request bodies are written to storage in pieces of this size.
WRITE_CHUNK = 2 << 20
#: Uploads whose running hash and repository this process remembers at most.
MAX_TRACKED_UPLOADS = 10_000
#: Seconds between refreshes of an upload row's size and updated_at while chunks arrive.
UPLOAD_TOUCH_INTERVAL = 10.0
#: Link a blob into a repository; relinking renews the link, and so the blob's GC grace period.
_LINK_SQL = ("INSERT INTO repository_blobs (repository_id, digest) VALUES ({}, {}) "
             "ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = now()")
LINK = text(_LINK_SQL.format(":rid", ":digest"))

# The driver's statements (``$n``) of ``start`` and ``finish``.
#: Upload $1 started in repository $2 if it exists (its id returned; no row if not).
_START = ("INSERT INTO uploads (id, repository_id, size) SELECT $1, id, 0 FROM repositories WHERE name = $2 "
          "RETURNING id")
#: The upload's repository and the blob's size, if either exists (a row of NULLs if not).
_UPLOAD_AND_BLOB = ("SELECT (SELECT repository_id FROM uploads WHERE id = $1) AS repository_id, "
                    "(SELECT size FROM blobs WHERE digest = $2) AS size")
#: The blob ($1 digest, $2 size) recorded and linked into repository $3 (``LINK``), upload $4 gone.
_RECORD = (f"WITH blob AS (INSERT INTO blobs (digest, size) VALUES ($1, $2) ON CONFLICT DO NOTHING), "
           f"link AS ({_LINK_SQL.format('$3', '$1')}) DELETE FROM uploads WHERE id = $4")


@dataclasses.dataclass
class _HashState:
    """The running digest of an upload, valid while ``size`` matches the bytes in storage."""

    size: int
    hasher: Any

class Uploads:
    """Upload sessions; the running hashes of uploads in progress are kept in this process."""

    def __init__(self, engine: AsyncEngine, storage: StorageDriver) -> None:
        self.engine = engine
        self.storage = storage
        #: upload id -> running sha256 of its bytes; a miss means rehash from storage at the end.
        self._hashes: dict[uuid.UUID, _HashState] = {}
        self._upload_locks: dict[uuid.UUID, asyncio.Lock] = {}
        #: upload id -> its repository, once checked; and when its row was last refreshed.
        self._upload_repo: dict[uuid.UUID, str] = {}
        self._upload_touched: dict[uuid.UUID, float] = {}

    async def start(self, name: str, actor: Actor) -> uuid.UUID:
        upload_id = uuid.uuid4()
        writer = await self.storage.writer(upload_path(str(upload_id)))
        await writer.close()
        async with driver_connection(self.engine) as conn:  # one statement when the repository exists
            started = await conn.fetchval(_START, upload_id, name)
        if started is None:  # a new repository: made, and its creation recorded, with the upload
            async with self.engine.begin() as sa_conn:
                rid, created = await ensure_repository(sa_conn, name)
                await sa_conn.execute(insert(uploads).values(id=upload_id, repository_id=rid, size=0))
                await events.record(sa_conn, actor, created)
        if len(self._upload_repo) >= MAX_TRACKED_UPLOADS:
            # Abandoned uploads never finish: forget the oldest (a later chunk just rehashes).
            for old in list(self._upload_repo)[: MAX_TRACKED_UPLOADS // 10]:
                self._forget(old)
        self._hashes[upload_id] = _HashState(0, hashlib.sha256())
        self._upload_repo[upload_id] = name
        self._upload_touched[upload_id] = time.monotonic()
        return upload_id

    async def _check(self, name: str, upload_id: uuid.UUID) -> None:
        """BLOB_UPLOAD_UNKNOWN unless the upload exists in repository ``name``.

        An upload's repository never changes, so a positive answer is remembered; an upload
        removed by another replica shows up as its missing bytes when the writer is opened."""
        if self._upload_repo.get(upload_id) == name:
            return
        q = (
            select(uploads.c.id)
            .select_from(uploads.join(repositories, repositories.c.id == uploads.c.repository_id))
            .where(uploads.c.id == upload_id, repositories.c.name == name)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        if row is None:
            raise RegistryError(codes.BLOB_UPLOAD_UNKNOWN, detail={"uuid": str(upload_id)})
        self._upload_repo[upload_id] = name

    async def _open(self, upload_id: uuid.UUID) -> FileWriter:
        """The upload's writer, resumed; BLOB_UPLOAD_UNKNOWN when its bytes are gone."""
        try:
            return await self.storage.writer(upload_path(str(upload_id)), append=True)
        except PathNotFoundError:
            self._forget(upload_id)
            raise RegistryError(codes.BLOB_UPLOAD_UNKNOWN, detail={"uuid": str(upload_id)}) from None

    def _forget(self, upload_id: uuid.UUID) -> None:
        self._hashes.pop(upload_id, None)
        self._upload_locks.pop(upload_id, None)
        self._upload_repo.pop(upload_id, None)
        self._upload_touched.pop(upload_id, None)

    def _lock(self, upload_id: uuid.UUID) -> asyncio.Lock:
        lock = self._upload_locks.get(upload_id)
        if lock is None:
            lock = self._upload_locks[upload_id] = asyncio.Lock()
        return lock

    async def size(self, name: str, upload_id: uuid.UUID) -> int:
        """Bytes the upload holds, as storage has them (the truth after any crash)."""
        await self._check(name, upload_id)
        writer = await self._open(upload_id)
        size = writer.size
        await writer.close()
        return size

    async def append(self, name: str, upload_id: uuid.UUID, body: AsyncIterator[bytes],
                     start: int | None = None, length: int | None = None) -> int:
        """Append a request body to the upload; ``start`` (from Content-Range) must equal its size.

        Returns the upload's new size. An out-of-order or overlapping chunk raises RANGE_INVALID
        with the current ``Range``; a body cut off keeps what arrived, so the upload resumes.
        """
        await self._check(name, upload_id)
        async with self._lock(upload_id):
            writer = await self._open(upload_id)
            try:
                if start is not None and start != writer.size:
                    raise RegistryError(
                        codes.RANGE_INVALID,
                        detail={"expected_start": writer.size, "got_start": start},
                        headers=upload_headers(name, upload_id, writer.size),
                    )
                state = self._hashes.get(upload_id)
                if state is not None and state.size != writer.size:
                    state = None
                    self._hashes.pop(upload_id, None)
                written = await receiving(_pump(body, writer, state))
                if length is not None and written != length:
                    raise RegistryError(codes.SIZE_INVALID, detail={"expected": length, "received": written})
            finally:
                await writer.close()
            # The row's size and updated_at are bookkeeping (storage holds the truth) that tells
            # cleanup the upload is alive: refreshed now and then, not on every chunk.
            now = time.monotonic()
            if now - self._upload_touched.get(upload_id, 0.0) >= UPLOAD_TOUCH_INTERVAL:
                self._upload_touched[upload_id] = now
                async with self.engine.begin() as conn:
                    await conn.execute(update(uploads).where(uploads.c.id == upload_id)
                                       .values(size=writer.size, updated_at=func.now()))
            return writer.size

    async def finish(self, name: str, upload_id: uuid.UUID, digest: str,
                            body: AsyncIterator[bytes] | None) -> int:
        """Append the last chunk, verify ``digest``, and make the blob visible in ``name``.

        On a digest mismatch the upload is removed and DIGEST_INVALID raised: nothing is left behind.
        """
        if body is not None:
            await self.append(name, upload_id, body)
        else:
            await self._check(name, upload_id)
        path = upload_path(str(upload_id))
        async with self._lock(upload_id):
            writer = await self._open(upload_id)
            size = writer.size
            await writer.commit()
            state = self._hashes.pop(upload_id, None)
            algo = digest.partition(":")[0]
            if state is not None and state.size == size and algo == "sha256":
                actual = f"sha256:{state.hasher.hexdigest()}"
            else:
                actual = await self._rehash(path, algo)
            if actual != digest:
                await self._drop(upload_id)
                raise RegistryError(codes.DIGEST_INVALID, detail={"expected": digest, "actual": actual})
            # On the driver (``dtr.db.driver``), four statements: every pushed blob ends here.
            async with driver_connection(self.engine) as conn, conn.transaction():
                # GC safety (dtr.jobs.gc): check, move into place and record under the blob's shared lock.
                await gc_locks.share_blob(conn, digest)
                found = await conn.fetchrow(_UPLOAD_AND_BLOB, upload_id, digest)
                if found["repository_id"] is None:
                    raise RegistryError(codes.BLOB_UPLOAD_UNKNOWN, detail={"uuid": str(upload_id)})
                if found["size"] is None:
                    await self.storage.move(path, blob_path(digest))
                await conn.execute(_RECORD, digest, size, found["repository_id"], upload_id)
            await self._remove_dir(upload_id)
            self._forget(upload_id)
            return size

    async def cancel(self, name: str, upload_id: uuid.UUID) -> None:
        await self._check(name, upload_id)
        await self._drop(upload_id)

    async def _drop(self, upload_id: uuid.UUID) -> None:
        self._forget(upload_id)
        async with self.engine.begin() as conn:
            await conn.execute(delete(uploads).where(uploads.c.id == upload_id))
        await self._remove_dir(upload_id)

    async def _remove_dir(self, upload_id: uuid.UUID) -> None:
        with contextlib.suppress(PathNotFoundError):
            await self.storage.delete(f"/uploads/{upload_id}")

    async def _rehash(self, path: str, algorithm: str) -> str:
        hasher = hashlib.new(algorithm)
        loop = asyncio.get_running_loop()
        async for chunk in self.storage.reader(path):
            await loop.run_in_executor(None, hasher.update, chunk)
        return f"{algorithm}:{hasher.hexdigest()}"


def upload_headers(name: str, upload_id: uuid.UUID, size: int) -> dict[str, str]:
    """Where an upload stands (Location, Range, Docker-Upload-UUID): how a client resumes it."""
    return {"Location": f"/v2/{name}/blobs/uploads/{upload_id}", "Range": f"0-{max(size - 1, 0)}",
            "Docker-Upload-UUID": str(upload_id)}


async def _pump(body: AsyncIterator[bytes], writer: Any, state: _HashState | None) -> int:
    """Copy ``body`` to ``writer`` in WRITE_CHUNK pieces, hashing alongside; returns bytes written.

    Writing piece N overlaps reading piece N+1; the hash is updated with exactly what was
    written, so a body cut off midway leaves a consistent, resumable upload.
    """
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[Any] | None = None
    chunks: list[bytes] = []
    buffered = 0
    written = 0

    async def flush(data: bytes) -> None:
        if state is None or state.size < 0:
            await writer.write(data)
            return
        try:
            await asyncio.gather(loop.run_in_executor(None, state.hasher.update, data), writer.write(data))
        except BaseException:
            state.size = -1  # hash and bytes may disagree now: rehash at the end
            raise
        state.size += len(data)

    try:
        async for chunk in body:
            chunks.append(chunk)
            buffered += len(chunk)
            if buffered >= WRITE_CHUNK:
                data = b"".join(chunks)
                chunks.clear()
                buffered = 0
                if pending is not None:
                    await pending
                    pending = None
                pending = asyncio.ensure_future(flush(data))
                written += len(data)
    finally:
        if pending is not None:
            await pending
        if chunks:
            await flush(b"".join(chunks))
            written += buffered
    return written

"""One image's scan: the ``scan`` job's work.

Each layer is indexed once per blob and indexer version: a layer some scan indexed already
(``scan_layers`` at ``INDEXER_VERSION``) is not read again, and two scans needing the same layer at
once index it once (a per-layer advisory lock; the second finds the first's rows). A layer's rows
are stored in one transaction. The image's software is then composed from the rows, matched and
stored with its counts (``dtr.scanning.findings``), with a ``scan_completed`` event (a failure:
status 0, the error naming the layer, ``scan_failed``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.jobs.context import JobContext, JobFailed, JobStopped
from dtr.registry import events, locks
from dtr.registry.events import SYSTEM, Event
from dtr.registry.manifests import FOREIGN_LAYERS
from dtr.registry.names import blob_path
from dtr.scanning import results
from dtr.scanning.findings import compose, match_and_store
from dtr.scanning.indexers import INDEXER_VERSION
from dtr.scanning.layer import index_layer
from dtr.scanning.locking import session_lock
from dtr.scanning.results import FAILED, PENDING, SCANNING
from dtr.scanning.service import is_image, json_object
from dtr.scanning.types import LayerError, LayerIndex
from dtr.storage.base import PathNotFoundError, StorageDriver

#: The largest image config read for its os/architecture.
MAX_CONFIG = 8 << 20


def _layer_key(digest: str) -> int:
    return locks._key("scan-layer", digest)


_IMAGE = text("""
SELECT m.media_type, m.payload, r.name AS repository FROM manifests m JOIN repositories r ON r.id = m.repository_id
WHERE m.digest = :digest ORDER BY r.name = :repository DESC LIMIT 1
""")
_STATUS = text("""
INSERT INTO scan_images (digest, status, error) VALUES (:digest, :status, :error)
ON CONFLICT (digest) DO UPDATE SET status = excluded.status, error = excluded.error, updated_at = now()
""")
_LAYER_STATE = text("SELECT digest, indexer_version, status, error FROM scan_layers "
                    "WHERE digest = ANY(CAST(:digests AS text[]))")
_BLOB_SIZES = text("SELECT digest, size FROM blobs WHERE digest = ANY(CAST(:digests AS text[]))")
#: Store a layer's index unless one at least as new is there (another scan's): the digest if stored.
_STORE_LAYER = text("""
INSERT INTO scan_layers (digest, indexer_version, status, error, distribution, whiteouts, opaque_dirs, package_dbs,
                         warnings, files, size, duration, indexed_at)
VALUES (:digest, :version, :status, :error, :distribution, :whiteouts, :opaque_dirs, :package_dbs, :warnings,
        :files, :size, :duration, now())
ON CONFLICT (digest) DO UPDATE SET
    indexer_version = excluded.indexer_version, status = excluded.status, error = excluded.error,
    distribution = excluded.distribution, whiteouts = excluded.whiteouts, opaque_dirs = excluded.opaque_dirs,
    package_dbs = excluded.package_dbs, warnings = excluded.warnings, files = excluded.files, size = excluded.size,
    duration = excluded.duration, indexed_at = now()
WHERE scan_layers.indexer_version < excluded.indexer_version
   OR (scan_layers.status <> 'indexed' AND excluded.status = 'indexed')
RETURNING digest
""").bindparams(bindparam("distribution", type_=JSONB))


@dataclasses.dataclass(frozen=True)
class _Manifest:
    repository: str
    os: str
    architecture: str
    #: Every layer digest, in order (the manifest's), and those scanned (foreign layers left out).
    layers: tuple[str, ...]
    scanned: tuple[str, ...]
    foreign: int


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


async def _set_status(engine: AsyncEngine, digest: str, status: int, error: str | None,
                      repository: str | None = None) -> None:
    """Set the image's status; with ``repository``, record ``scan_failed`` for it too."""
    async with engine.begin() as conn:
        await conn.execute(_STATUS, {"digest": digest, "status": status, "error": error})
        if repository is not None:
            await events.record(conn, SYSTEM, [Event(events.SCAN_FAILED, repository, digest=digest,
                                                     detail={"error": error})])


async def scan_image(ctx: JobContext, digest: str, repository: str) -> dict[str, Any]:
    """The ``scan`` job: index the image's layers not indexed yet, compose its software, match it,
    store the result (see the module docstring); the counts. A failure sets status 0 with the
    error (and records ``scan_failed`` when no attempt is left); a stop for shutdown leaves the
    image pending for the next worker."""
    try:
        return await _Scan(ctx, digest, repository).run()
    except JobStopped:
        shutdown = ctx.stop_reason == "shutdown"
        with contextlib.suppress(Exception):
            await _set_status(ctx.engine, digest, PENDING if shutdown else FAILED,
                              None if shutdown else f"scan stopped: {ctx.stop_reason or 'stop requested'}")
        raise
    except Exception as e:
        final = isinstance(e, JobFailed) or ctx.attempt >= ctx.max_attempts
        message = str(e) if isinstance(e, JobFailed) else f"{type(e).__name__}: {e}"
        with contextlib.suppress(Exception):
            await _set_status(ctx.engine, digest, FAILED, message, repository if final else None)
        raise


class _Scan:
    def __init__(self, ctx: JobContext, digest: str, repository: str) -> None:
        self.ctx, self.digest, self.repository = ctx, digest, repository
        self.engine: AsyncEngine = ctx.engine
        self.storage: StorageDriver = ctx.storage
        #: Compressed bytes of the layers to index, and read so far (progress).
        self.total = self.done = 0

    async def run(self) -> dict[str, Any]:
        ctx = self.ctx
        m = await self._manifest()
        async with self.engine.begin() as conn:
            await conn.execute(pg_insert(results.images).values(
                digest=self.digest, status=SCANNING, error=None, layers=list(m.layers), os=m.os,
                architecture=m.architecture).on_conflict_do_update(
                index_elements=[results.images.c.digest],
                set_={"status": SCANNING, "error": None, "layers": list(m.layers), "os": m.os,
                      "architecture": m.architecture, "updated_at": func.now()}))
        platform = "/".join(p for p in (m.os, m.architecture) if p) or "unknown platform"
        ctx.log(f"scanning {m.repository}@{self.digest} ({platform}): {len(m.layers)} layers"
                + (f", {m.foreign} foreign (not scanned)" if m.foreign else ""))
        await self._index_layers(m.scanned)
        ctx.check_stop()
        ctx.progress(self.total, self.total or None, "matching")
        async with self.engine.connect() as conn:
            distribution, packages = await compose(conn, m.scanned)
        ctx.log(f"image: {distribution.pretty_name or distribution.id if distribution else 'no known distribution'}; "
                f"{len(packages)} packages")
        counts, findings, feeds = await match_and_store(self.engine, self.digest, self.repository, distribution,
                                                        packages, ctx.log)
        ctx.log(f"matched against {', '.join(f'{k} v{v}' for k, v in feeds.items()) or 'no vulnerability feed yet'}: "
                f"{findings} findings: {counts['critical']} critical, {counts['major']} major, "
                f"{counts['minor']} minor" + (f", {counts['hidden']} hidden by overrides" if counts["hidden"] else ""))
        ctx.progress(self.total, self.total or None, "done")
        return {"digest": self.digest, "repository": self.repository, "os": m.os, "architecture": m.architecture,
                "packages": len(packages), "findings": findings, **counts}

    async def _manifest(self) -> _Manifest:
        """The image's manifest (from ``repository``, else any repository holding it) and config."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(_IMAGE, {"digest": self.digest, "repository": self.repository})).first()
        if row is None:
            raise JobFailed(f"image {self.digest} is not in the registry (deleted since the scan was asked for?)")
        if not is_image(row.media_type, bytes(row.payload)):
            raise JobFailed(f"{self.digest} is not a container image manifest")
        doc = json_object(bytes(row.payload))
        layers = [d for d in doc.get("layers") or [] if isinstance(d, dict) and isinstance(d.get("digest"), str)]
        scanned = [d["digest"] for d in layers if d.get("mediaType") not in FOREIGN_LAYERS]
        os_, arch = await self._platform(doc["config"])
        return _Manifest(row.repository, os_, arch, tuple(d["digest"] for d in layers),
                         tuple(dict.fromkeys(scanned)), len(layers) - len(scanned))

    async def _platform(self, config: dict[str, Any]) -> tuple[str, str]:
        """The image config's os and architecture (with its variant: ``arm/v7``); '' if unreadable."""
        if not isinstance(config.get("size"), int) or config["size"] > MAX_CONFIG:
            return "", ""
        try:
            doc = json_object(await self.storage.get_content(blob_path(config["digest"])))
        except PathNotFoundError:
            raise JobFailed(f"the image config {config['digest']} is missing from storage") from None
        os_, arch, variant = (doc.get(k) for k in ("os", "architecture", "variant"))
        arch_s = str(arch) if isinstance(arch, str) else ""
        if arch_s and isinstance(variant, str) and variant:
            arch_s += f"/{variant}"
        return (os_ if isinstance(os_, str) else ""), arch_s

    # -- layers ---------------------------------------------------------------------------------

    async def _index_layers(self, layers: Sequence[str]) -> None:
        """Index the layers without a current index, one at a time; JobFailed naming a layer that
        cannot be indexed (or was found so before: its content does not change)."""
        async with self.engine.connect() as conn:
            state = {r.digest: r for r in await conn.execute(_LAYER_STATE, {"digests": list(layers)})}
            for d in layers:
                r = state.get(d)
                if r is not None and r.indexer_version >= INDEXER_VERSION and r.status != "indexed":
                    raise JobFailed(f"layer {d} cannot be indexed: {r.error}")
            todo = [d for d in layers if d not in state or state[d].indexer_version < INDEXER_VERSION]
            sizes = {r.digest: int(r.size) for r in await conn.execute(_BLOB_SIZES, {"digests": todo})}
        missing = [d for d in todo if d not in sizes]
        if missing:
            raise JobFailed(f"layer {missing[0]} is not in the registry")
        self.total = sum(sizes.values())
        if len(todo) < len(layers):
            self.ctx.log(f"{len(layers) - len(todo)} of {len(layers)} layers indexed already")
        self.ctx.progress(0, self.total or None, f"indexing {len(todo)} layers")
        for i, d in enumerate(todo, 1):
            self.ctx.check_stop()
            await self._index(d, f"layer {i}/{len(todo)}", sizes[d])

    async def _index(self, digest: str, which: str, size: int) -> None:
        base = self.done
        async with self._layer_lock(digest):
            async with self.engine.connect() as conn:
                row = (await conn.execute(_LAYER_STATE, {"digests": [digest]})).first()
            if row is not None and row.indexer_version >= INDEXER_VERSION:
                self.done = base + size
                if row.status != "indexed":
                    raise JobFailed(f"layer {digest} cannot be indexed: {row.error}")
                self.ctx.log(f"{which} {digest}: indexed by another scan meanwhile")
                return

            def progress(read: int) -> None:
                self.done = base + min(read, size)
                self.ctx.progress(self.done, self.total or None, f"indexing {which}")

            started = time.monotonic()
            try:
                index = await index_layer(self.storage, blob_path(digest), check_stop=self.ctx.check_stop,
                                          progress=progress)
            except LayerError as e:
                await self._store_layer(digest, None, time.monotonic() - started, str(e))
                raise JobFailed(f"layer {digest} cannot be indexed: {e}") from None
            except PathNotFoundError:
                raise JobFailed(f"layer {digest} is missing from storage") from None
            duration = time.monotonic() - started
            await self._store_layer(digest, index, duration)
        self.done = base + size
        self.ctx.progress(self.done, self.total or None, f"indexed {which}")
        dist = index.distribution
        self.ctx.log(f"{which} {digest}: {len(index.packages)} packages"
                     + (f", {dist.pretty_name or dist.id}" if dist else "")
                     + f"; {index.files} files, {_size(index.size)} in {duration:.2f}s")
        for w in index.warnings:
            self.ctx.log(f"  warning: {w}")

    @contextlib.asynccontextmanager
    async def _layer_lock(self, digest: str) -> AsyncIterator[None]:
        """The layer's session lock, waited for (another scan indexing it): one indexes, the other
        then finds its rows."""
        key = _layer_key(digest)
        async with session_lock(self.engine, key, self.ctx.check_stop,
                                 lambda: self.ctx.log(f"layer {digest}: another scan is indexing it; waiting")):
            yield

    async def _store_layer(self, digest: str, index: LayerIndex | None, duration: float,
                           error: str | None = None) -> None:
        """The layer's row and packages, in one transaction (kept if another scan stored an index
        at least as new meanwhile)."""
        ix = index or LayerIndex()
        values = {"digest": digest, "version": INDEXER_VERSION, "status": "indexed" if error is None else "failed",
                  "error": error, "distribution": dataclasses.asdict(ix.distribution) if ix.distribution else None,
                  "whiteouts": ix.whiteouts, "opaque_dirs": ix.opaque_dirs, "package_dbs": ix.package_dbs,
                  "warnings": ix.warnings, "files": ix.files, "size": ix.size, "duration": duration}
        try:
            async with self.engine.begin() as conn:
                stored = (await conn.execute(_STORE_LAYER, values)).scalar()
                if stored is None:
                    return
                await conn.execute(delete(results.packages).where(results.packages.c.layer_digest == digest))
                if ix.packages:
                    await conn.execute(insert(results.packages), [
                        {"layer_digest": digest, "ecosystem": p.ecosystem, "name": p.name, "version": p.version,
                         "source_name": p.source_name, "source_version": p.source_version, "arch": p.arch,
                         "license": p.license, "location": p.location, "files": list(p.files)}
                        for p in ix.packages])
        except IntegrityError:  # the blob row went (garbage collection) while it was read
            raise JobFailed(f"layer {digest} was deleted from the registry during the scan") from None

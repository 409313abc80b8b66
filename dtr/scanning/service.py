"""The scanner's write side: queue scans, scan an image, re-match images after a database change.

- ``queue_scan`` resolves a tag or digest of a repository to its image manifests (an index: each
  platform's image, or the one asked for) and queues one ``scan`` job per image (one waiting per
  digest), marking the image pending.
- ``scan_image`` is the ``scan`` job's work. Each layer is indexed once per blob and indexer
  version: a layer some scan indexed already (``scan_layers`` at ``INDEXER_VERSION``) is not read
  again, and two scans needing the same layer at once index it once (a per-layer advisory lock;
  the second finds the first's rows). A layer's rows are stored in one transaction. The image's
  software is then composed from the rows (``image.compose``), matched against the advisories and
  stored with its counts in one transaction, with a ``scan_completed`` event (a failure: status 0,
  the error naming the layer, ``scan_failed``).
- ``rematch`` handles the ``vuln_changes`` imports wrote: it re-matches, from rows only (no layer
  read), the images holding a changed (namespace, package), in batches of images per transaction,
  then deletes the changes it handled (its cursor, ``event_cursors`` ``rematch``, records the last).
  The changes are a queue, not a position: a change whose id was drawn before another's but that
  committed after it is still handled.
- ``scan_on_push`` is the outbox subscriber that queues scans of pushed tags in repositories with
  scanOnPush.

No stale result when a scan and an import race: a scan's matching transaction holds the match
fence (an advisory lock) shared, from before it reads advisories until it commits; ``rematch``
finds the images a batch of changes touches holding it exclusively, after reading the changes. So
either the scan committed first (its packages are found and re-matched) or the rematch's lookup
came first, and then the scan's read sees those changes' advisories (committed before them). A
scan and a re-match of one image take its ``scan_images`` row lock first, so they never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.jobs import shapes
from dtr.jobs.context import JobContext, JobFailed, JobStopped
from dtr.jobs.service import JobService
from dtr.registry import events, locks
from dtr.registry.events import SYSTEM, Event, Handler
from dtr.registry.manifests import FOREIGN_LAYERS, IMAGE_TYPES, INDEX_TYPES
from dtr.registry.names import blob_path, is_digest
from dtr.scanning import image as composer
from dtr.scanning import matcher, results, vulndb
from dtr.scanning.indexers import INDEXER_VERSION
from dtr.scanning.layer import index_layer
from dtr.scanning.models import (
    ScanImage,
    ScanImagePackage,
    ScanImageVuln,
    ScanLayer,
    ScanPackage,
)
from dtr.scanning.results import COMPLETED, FAILED, PENDING, SCANNING
from dtr.scanning.types import Distribution, Finding, LayerError, LayerIndex, Package
from dtr.storage.base import PathNotFoundError, StorageDriver

scan_layers = cast(Table, ScanLayer.__table__)
scan_packages = cast(Table, ScanPackage.__table__)
scan_images = cast(Table, ScanImage.__table__)
image_packages = cast(Table, ScanImagePackage.__table__)
image_vulns = cast(Table, ScanImageVuln.__table__)

#: Image configs a scan reads (other manifests are artifacts: signatures, SBOMs, charts...).
IMAGE_CONFIGS = frozenset({"application/vnd.oci.image.config.v1+json",
                           "application/vnd.docker.container.image.v1+json"})
#: The largest image config read for its os/architecture.
MAX_CONFIG = 8 << 20
#: The ``event_cursors`` subscriber of the re-match.
REMATCH_CURSOR = "rematch"
#: vuln_changes read at a time, and images re-matched per transaction.
CHANGES_BATCH = 20_000
IMAGES_BATCH = 200
LOCK_POLL = 0.2
#: Versions that cannot be ordered logged per scan (the rest counted).
MAX_PROBLEMS = 20

#: Held for the whole re-match: one at a time in the cluster.
REMATCH_KEY = locks._key("scan-rematch")
#: The match fence (see the module docstring).
_FENCE_SHARED = text("SELECT pg_advisory_xact_lock_shared(:k)").bindparams(k=locks._key("scan-match-fence"))
_FENCE = text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=locks._key("scan-match-fence"))


def _layer_key(digest: str) -> int:
    return locks._key("scan-layer", digest)


class ScanTargetError(LookupError):
    """What a scan was asked for does not exist or is no image. ``kind``: ``repository``, ``tag``
    or ``manifest`` (none such), ``platform`` (the index has no image of that platform) or
    ``not_an_image`` (an artifact, or an index of none)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# -- queueing -------------------------------------------------------------------------------------

_REPOSITORY_ID = text("SELECT id FROM repositories WHERE name = :name")
_BY_TAG = text("SELECT m.digest, m.media_type, m.payload FROM tags t JOIN manifests m ON m.id = t.manifest_id "
               "WHERE t.repository_id = :rid AND t.name = :tag")
_BY_DIGEST = text("SELECT digest, media_type, payload FROM manifests WHERE repository_id = :rid AND digest = :digest")
_CHILDREN = text("SELECT digest, media_type, payload FROM manifests WHERE repository_id = :rid "
                 "AND digest = ANY(CAST(:digests AS text[]))")
_MARK_PENDING = text("""
INSERT INTO scan_images (digest, status) SELECT d, :status FROM unnest(CAST(:digests AS text[])) AS d
ON CONFLICT (digest) DO UPDATE SET status = excluded.status, updated_at = now()
""")


def _json(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def is_image(media_type: str, payload: bytes) -> bool:
    """A container image manifest (an image config), not an artifact or an index."""
    if media_type not in IMAGE_TYPES:
        return False
    config = _json(payload).get("config")
    return isinstance(config, dict) and config.get("mediaType") in IMAGE_CONFIGS


def _platform_matches(p: Mapping[str, Any], wanted: tuple[str, str]) -> bool:
    """``wanted`` is (os, architecture); the architecture may name a variant (``arm64/v8``)."""
    arch, _, variant = wanted[1].partition("/")
    return (p.get("os") == wanted[0] and p.get("architecture") == arch
            and (not variant or p.get("variant") == variant))


async def images_of(conn: AsyncConnection, repository: str, reference: str,
                    platform: tuple[str, str] | None = None) -> list[str]:
    """The image manifest digests ``repository:reference`` (a tag or a digest) names: itself, or
    an index's images (attestations left out; only ``platform``'s when given). ScanTargetError if
    none. A single image is taken whatever ``platform`` says (its platform is in its config)."""
    rid = (await conn.execute(_REPOSITORY_ID, {"name": repository})).scalar()
    if rid is None:
        raise ScanTargetError("repository", f"no repository {repository}")
    if is_digest(reference):
        row = (await conn.execute(_BY_DIGEST, {"rid": rid, "digest": reference})).first()
        if row is None:
            raise ScanTargetError("manifest", f"no manifest {reference} in {repository}")
    else:
        row = (await conn.execute(_BY_TAG, {"rid": rid, "tag": reference})).first()
        if row is None:
            raise ScanTargetError("tag", f"no tag {reference} in {repository}")
    payload = bytes(row.payload)
    if row.media_type not in INDEX_TYPES:
        if not is_image(row.media_type, payload):
            raise ScanTargetError("not_an_image", f"{repository}:{reference} is not a container image "
                                                  "(an artifact has no software to scan)")
        return [str(row.digest)]
    wanted: list[str] = []
    for d in _json(payload).get("manifests") or []:
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
            continue
        p: dict[str, Any] = d["platform"] if isinstance(d.get("platform"), dict) else {}
        if (p.get("os"), p.get("architecture")) == ("unknown", "unknown"):
            continue  # an attestation manifest (buildx), not an image
        if platform is None or _platform_matches(p, platform):
            wanted.append(d["digest"])
    children = {r.digest: r for r in await conn.execute(_CHILDREN, {"rid": rid, "digests": wanted})}
    found = [d for d in dict.fromkeys(wanted)
             if d in children and is_image(children[d].media_type, bytes(children[d].payload))]
    if not found:
        if platform is not None:
            raise ScanTargetError("platform", f"{repository}:{reference} has no image for {'/'.join(platform)}")
        raise ScanTargetError("not_an_image", f"{repository}:{reference} is an index of no container image")
    return found


async def queue_scan(jobs: JobService, conn: AsyncConnection, repository: str, reference: str, *,
                     platform: tuple[str, str] | None = None) -> list[shapes.Job]:
    """Queue a ``scan`` of each image ``repository:reference`` names (see ``images_of``) in
    ``conn``'s transaction, one waiting per image digest, and mark the images pending; the jobs."""
    digests = await images_of(conn, repository, reference, platform)
    queued = [await jobs.queue("scan", {"digest": d, "repository": repository}, dedupe_key=f"scan:{d}", conn=conn)
              for d in digests]
    await conn.execute(_MARK_PENDING, {"digests": digests, "status": PENDING})
    return queued


async def queue_update(jobs: JobService, feeds: Sequence[str] | None = None) -> shapes.Job:
    """Queue an ``update_vuln_db`` job (one waiting at a time), of ``feeds`` only if given."""
    params: dict[str, Any] = {} if feeds is None else {"feeds": list(feeds)}
    return await jobs.queue("update_vuln_db", params, dedupe_key="update_vuln_db" if feeds is None else None)


async def queue_rematch(jobs: JobService, conn: AsyncConnection | None = None) -> shapes.Job:
    """Queue a ``rematch`` job (one waiting at a time)."""
    return await jobs.queue("rematch", {}, dedupe_key="rematch", conn=conn)


# -- scan on push ---------------------------------------------------------------------------------

_PUSHES = frozenset({events.TAG_PUSHED, events.TAG_MOVED})
#: Of the named repositories, those whose pushes are scanned (a repository without settings: the default).
_SCAN_ON_PUSH = text("""
SELECT r.name FROM repositories r LEFT JOIN repository_meta m ON m.repository_id = r.id
WHERE r.name = ANY(CAST(:repos AS text[])) AND coalesce(m.scan_on_push, :default)
""")


def scan_on_push(jobs: JobService, default: bool) -> Handler:
    """The outbox subscriber queueing a scan of each tag pushed (or moved) in a repository with
    scanOnPush (``default`` for a repository that never set it), in its own transaction. The
    pushed manifest is scanned by digest (the tag may have moved since); a manifest gone since,
    or an artifact, is skipped."""

    async def handle(conn: AsyncConnection, batch: Sequence[Event]) -> None:
        pushed = [e for e in batch if e.type in _PUSHES and e.digest]
        if not pushed:
            return
        repos = sorted({e.repository for e in pushed})
        scanned = set((await conn.execute(_SCAN_ON_PUSH, {"repos": repos, "default": default})).scalars())
        for repo, digest in dict.fromkeys((e.repository, str(e.digest)) for e in pushed if e.repository in scanned):
            with contextlib.suppress(ScanTargetError):
                await queue_scan(jobs, conn, repo, digest)

    return handle


# -- the scan -------------------------------------------------------------------------------------

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
_LAYER_ROWS = text("SELECT digest, distribution, whiteouts, opaque_dirs, package_dbs FROM scan_layers "
                   "WHERE digest = ANY(CAST(:digests AS text[])) AND status = 'indexed'")
_PACKAGE_COLUMNS = "id, ecosystem, name, version, source_name, source_version, arch, license, location"
_LAYER_PACKAGES = text(f"SELECT layer_digest, {_PACKAGE_COLUMNS}, files FROM scan_packages "
                       "WHERE layer_digest = ANY(CAST(:digests AS text[])) ORDER BY layer_digest, id")
_LOCK_IMAGES = text("SELECT digest FROM scan_images WHERE digest = ANY(CAST(:digests AS text[])) "
                    "ORDER BY digest FOR UPDATE")
_FEED_VERSIONS = text("SELECT name, version FROM vuln_feeds WHERE version > 0 ORDER BY name")



@dataclasses.dataclass(frozen=True)
class _Manifest:
    repository: str
    os: str
    architecture: str
    #: Every layer digest, in order (the manifest's), and those scanned (foreign layers left out).
    layers: tuple[str, ...]
    scanned: tuple[str, ...]
    foreign: int


def _distribution(raw: Any) -> Distribution | None:
    if not isinstance(raw, dict) or not raw.get("id"):
        return None
    fields = {f.name for f in dataclasses.fields(Distribution)}
    return Distribution(**{k: str(v) for k, v in raw.items() if k in fields})


def _package(r: Any, files: Sequence[str] = ()) -> Package:
    return Package(ecosystem=r.ecosystem, name=r.name, version=r.version, source_name=r.source_name,
                   source_version=r.source_version, arch=r.arch, license=r.license, location=r.location,
                   files=tuple(files))


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
            await conn.execute(pg_insert(scan_images).values(
                digest=self.digest, status=SCANNING, error=None, layers=list(m.layers), os=m.os,
                architecture=m.architecture).on_conflict_do_update(
                index_elements=[scan_images.c.digest],
                set_={"status": SCANNING, "error": None, "layers": list(m.layers), "os": m.os,
                      "architecture": m.architecture, "updated_at": func.now()}))
        platform = "/".join(p for p in (m.os, m.architecture) if p) or "unknown platform"
        ctx.log(f"scanning {m.repository}@{self.digest} ({platform}): {len(m.layers)} layers"
                + (f", {m.foreign} foreign (not scanned)" if m.foreign else ""))
        await self._index_layers(m.scanned)
        ctx.check_stop()
        ctx.progress(self.total, self.total or None, "matching")
        async with self.engine.connect() as conn:
            distribution, packages = await self._compose(conn, m.scanned)
        ctx.log(f"image: {distribution.pretty_name or distribution.id if distribution else 'no known distribution'}; "
                f"{len(packages)} packages")
        counts, findings, feeds = await self._match_and_store(distribution, packages)
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
        doc = _json(bytes(row.payload))
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
            doc = _json(await self.storage.get_content(blob_path(config["digest"])))
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
        async with _session_lock(self.engine, key, self.ctx.check_stop,
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
                await conn.execute(delete(scan_packages).where(scan_packages.c.layer_digest == digest))
                if ix.packages:
                    await conn.execute(insert(scan_packages), [
                        {"layer_digest": digest, "ecosystem": p.ecosystem, "name": p.name, "version": p.version,
                         "source_name": p.source_name, "source_version": p.source_version, "arch": p.arch,
                         "license": p.license, "location": p.location, "files": list(p.files)}
                        for p in ix.packages])
        except IntegrityError:  # the blob row went (garbage collection) while it was read
            raise JobFailed(f"layer {digest} was deleted from the registry during the scan") from None

    # -- the image --------------------------------------------------------------------------------

    async def _compose(self, conn: AsyncConnection, layers: Sequence[str]
                       ) -> tuple[Distribution | None, list[composer.ImagePackage]]:
        """The image's software from its layers' rows."""
        rows = {r.digest: r for r in await conn.execute(_LAYER_ROWS, {"digests": list(layers)})}
        missing = [d for d in layers if d not in rows]
        if missing:  # re-indexed by a newer indexer and failed, or collected, since it was indexed here
            raise RuntimeError(f"layer {missing[0]}'s index changed during the scan")
        packages: dict[str, list[tuple[int, Package]]] = {d: [] for d in layers}
        for r in await conn.execute(_LAYER_PACKAGES, {"digests": list(layers)}):
            packages[r.layer_digest].append((int(r.id), _package(r, r.files)))
        return composer.compose([
            composer.LayerRows(d, _distribution(rows[d].distribution), packages[d], list(rows[d].whiteouts),
                               list(rows[d].opaque_dirs), list(rows[d].package_dbs))
            for d in layers])

    async def _match_and_store(self, distribution: Distribution | None, packages: Sequence[composer.ImagePackage]
                               ) -> tuple[dict[str, int], int, dict[str, int]]:
        """Match, and store the result in one transaction (under the match fence, see the module
        docstring): the counts, the number of findings and the feed versions matched against."""
        seen: set[int] = set()
        rows: list[dict[str, Any]] = []
        keyed: list[Keyed] = []
        for ip in packages:
            if ip.package_id in seen:
                continue  # the same layer twice in the image
            seen.add(ip.package_id)
            key = matcher.match_key(distribution, ip.package)
            ns, name, version = key or ("", "", "")
            rows.append({"image_digest": self.digest, "package_id": ip.package_id, "layer_digest": ip.layer_digest,
                         "layer_index": ip.layer_index, "namespace": ns, "match_name": name,
                         "match_version": version})
            if key is not None:
                keyed.append((ip.package_id, key, ip.package))
        async with self.engine.begin() as conn:
            await conn.execute(_FENCE_SHARED)
            await conn.execute(_LOCK_IMAGES, {"digests": [self.digest]})
            feeds = {r.name: int(r.version) for r in await conn.execute(_FEED_VERSIONS)}
            matches = _Matches()
            await matches.load(conn, keyed)
            vulns = matches.rows(self.digest, keyed)
            await conn.execute(delete(image_packages).where(image_packages.c.image_digest == self.digest))
            await conn.execute(delete(image_vulns).where(image_vulns.c.image_digest == self.digest))
            if rows:
                await conn.execute(insert(image_packages), rows)
            if vulns:
                await conn.execute(insert(image_vulns), vulns)
            await conn.execute(update(scan_images).where(scan_images.c.digest == self.digest).values(
                status=COMPLETED, error=None, feed_versions=feeds,
                distribution=dataclasses.asdict(distribution) if distribution else None,
                scanned_at=func.now(), check_completed_at=func.now()))
            counts = (await results.recount(conn, [self.digest]))[self.digest]
            await events.record(conn, SYSTEM, [Event(events.SCAN_COMPLETED, self.repository, digest=self.digest,
                                                     detail={**counts, "packages": len(rows)})])
        for problem in matches.problems[:MAX_PROBLEMS]:
            self.ctx.log(f"  not matched (a version that cannot be ordered): {problem}")
        if len(matches.problems) > MAX_PROBLEMS:
            self.ctx.log(f"  ... and {len(matches.problems) - MAX_PROBLEMS} more versions that cannot be ordered")
        return counts, len(vulns), feeds


Keyed = tuple[int, tuple[str, str, str], Package]
"""A package of an image: its ``scan_packages`` id, its match key and the package."""


class _Matches:
    """The findings of each (namespace, package), matched once: a re-match's images sharing
    layers share packages. ``problems``: versions the matcher could not order."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, Package], list[Finding]] = {}
        self.problems: list[str] = []
        #: Packages read by id (a re-match reads a shared layer's packages once per image).
        self.packages: dict[int, Package] = {}

    async def load(self, conn: AsyncConnection, keyed: Iterable[Keyed]) -> None:
        """Match the packages of ``keyed`` not matched yet against the current advisories."""
        todo = list(dict.fromkeys((key, p) for _, key, p in keyed if (key[0], p) not in self.found))
        if not todo:
            return
        advisories = await vulndb.advisories_for(conn, sorted({(k[0], k[1]) for k, _ in todo}))
        for key, p in todo:
            self.found[(key[0], p)] = []
        for f in matcher.match(todo, advisories, self.problems):
            self.found[(f.namespace, f.package)].append(f)

    def rows(self, digest: str, keyed: Iterable[Keyed]) -> list[dict[str, Any]]:
        """``scan_image_vulns`` rows of image ``digest``'s packages: one per (package id, vulnerability)."""
        out: dict[tuple[int, str], dict[str, Any]] = {}
        for pid, key, p in keyed:
            for f in self.found.get((key[0], p), ()):
                out.setdefault((pid, f.vuln_id), {
                    "image_digest": digest, "package_id": pid, "vuln_id": f.vuln_id, "state": f.state,
                    "fixed_version": f.fixed_version, "band": f.band, "severity": f.severity,
                    "cvss_score": f.cvss_score})
        return list(out.values())


@contextlib.asynccontextmanager
async def _session_lock(engine: AsyncEngine, key: int, check_stop: Callable[[], None] | None,
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


# -- re-match -------------------------------------------------------------------------------------

_START_CURSOR = text("INSERT INTO event_cursors (subscriber, position) VALUES (:s, 0) ON CONFLICT DO NOTHING")
_CHANGES = text("SELECT id, namespace, package FROM vuln_changes ORDER BY id LIMIT :limit")
_HANDLED = text("""
WITH gone AS (DELETE FROM vuln_changes WHERE id = ANY(CAST(:ids AS bigint[])) RETURNING id)
UPDATE event_cursors SET position = greatest(position, (SELECT coalesce(max(id), 0) FROM gone)), updated_at = now()
WHERE subscriber = :s
""")
_AFFECTED = text("""
SELECT DISTINCT ip.image_digest FROM unnest(CAST(:ns AS text[]), CAST(:names AS text[])) AS k(ns, name)
JOIN scan_image_packages ip ON ip.namespace = k.ns AND ip.match_name = k.name
ORDER BY 1
""")
_KEYED_PACKAGES = text(f"""
SELECT ip.image_digest, ip.namespace, ip.match_name, ip.match_version, {_PACKAGE_COLUMNS}
FROM scan_image_packages ip JOIN scan_packages p ON p.id = ip.package_id
WHERE ip.image_digest = ANY(CAST(:digests AS text[])) AND ip.namespace <> ''
""")
_PENDING_CHANGES = text("SELECT EXISTS (SELECT 1 FROM vuln_changes)")
_CURRENT_FEEDS = text("""
UPDATE scan_images SET feed_versions = CAST(:v AS jsonb)
WHERE status = :completed AND feed_versions IS DISTINCT FROM CAST(:v AS jsonb)
""")


async def rematch(engine: AsyncEngine, log: Callable[[str], None], *, check_stop: Callable[[], None] | None = None,
                  progress: Callable[[int, int | None, str], None] | None = None) -> int:
    """Re-match the images the pending database changes touch, from their stored packages (no
    layer is read): their findings, counts and ``check_completed_at``; each batch of images in one
    transaction, the changes handled deleted with the last. Then every completed image is marked
    as matched against the current feed versions (those no change touched are as a match now
    would find them). One re-match at a time in the cluster (others wait). The number of images
    re-matched."""
    async with _session_lock(engine, REMATCH_KEY, check_stop, lambda: log("another re-match is running; waiting")):
        async with engine.begin() as conn:
            await conn.execute(_START_CURSOR, {"s": REMATCH_CURSOR})
        done = 0
        while True:
            async with engine.connect() as conn:
                changes = (await conn.execute(_CHANGES, {"limit": CHANGES_BATCH})).all()
                await conn.rollback()
            if not changes:
                break
            keys = sorted({(c.namespace, c.package) for c in changes})
            async with engine.begin() as conn:  # the fence: no scan is between its advisories and its commit
                await conn.execute(_FENCE)
                digests = list((await conn.execute(_AFFECTED, {"ns": [k[0] for k in keys],
                                                               "names": [k[1] for k in keys]})).scalars())
            log(f"{len(changes)} database changes ({len(keys)} packages) touch {len(digests)} images")
            matches = _Matches()  # advisories as of this batch of changes (later ones: the next batch's)
            batches = [digests[i:i + IMAGES_BATCH] for i in range(0, len(digests), IMAGES_BATCH)] or [[]]
            for i, batch in enumerate(batches):
                if check_stop is not None:
                    check_stop()
                async with engine.begin() as conn:
                    if batch:
                        await _rematch_images(conn, batch, matches)
                    if i == len(batches) - 1:
                        await conn.execute(_HANDLED, {"ids": [c.id for c in changes], "s": REMATCH_CURSOR})
                done += len(batch)
                if progress is not None:
                    progress(done, None, "images re-matched")
        await _mark_current(engine)
    log(f"re-matched {done} images")
    return done


async def _rematch_images(conn: AsyncConnection, digests: Sequence[str], matches: _Matches) -> None:
    """Replace the findings of ``digests`` by a match of their stored packages, recount them. The
    images' rows are locked first: a scan storing one of them waits, or is waited for (and its
    packages are the ones read); an image deleted meanwhile drops out."""
    digests = list((await conn.execute(_LOCK_IMAGES, {"digests": list(digests)})).scalars())
    keyed: dict[str, list[Keyed]] = {d: [] for d in digests}
    for r in await conn.execute(_KEYED_PACKAGES, {"digests": list(digests)}):
        if (p := matches.packages.get(r.id)) is None:
            p = matches.packages[r.id] = _package(r)
        keyed[r.image_digest].append((r.id, (r.namespace, r.match_name, r.match_version), p))
    await matches.load(conn, (k for rows in keyed.values() for k in rows))
    feeds = {r.name: int(r.version) for r in await conn.execute(_FEED_VERSIONS)}
    vulns = [row for d in digests for row in matches.rows(d, keyed[d])]
    await conn.execute(delete(image_vulns).where(image_vulns.c.image_digest.in_(list(digests))))
    if vulns:
        await conn.execute(insert(image_vulns), vulns)
    await conn.execute(update(scan_images).where(scan_images.c.digest.in_(list(digests)))
                       .values(check_completed_at=func.now(), feed_versions=feeds))
    await results.recount(conn, digests)


async def _mark_current(engine: AsyncEngine) -> None:
    """With no change left to handle, completed images are as matched against the feed versions
    seen in that same snapshot (a later import's changes are the next re-match's)."""
    async with engine.connect() as conn:
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        pending = (await conn.execute(_PENDING_CHANGES)).scalar()
        feeds = {r.name: int(r.version) for r in await conn.execute(_FEED_VERSIONS)}
        await conn.rollback()
    if pending:
        return
    async with engine.begin() as conn:
        await conn.execute(_CURRENT_FEEDS, {"v": json.dumps(feeds), "completed": COMPLETED})


# -- after a database update ----------------------------------------------------------------------


async def database_updated(engine: AsyncEngine, jobs: JobService, detail: dict[str, Any] | None
                           ) -> shapes.Job | None:
    """After an import (an update or an offline bundle): record ``vulndb_updated`` (``detail``:
    what changed; None: nothing did, no event) and queue a ``rematch`` if changes wait to be
    handled, in one transaction; the job."""
    async with engine.begin() as conn:
        pending = (await conn.execute(_PENDING_CHANGES)).scalar()
        job = await queue_rematch(jobs, conn) if pending else None
        if detail is not None:
            await events.record(conn, SYSTEM, [Event(events.VULNDB_UPDATED, "", detail=detail)])
    return job

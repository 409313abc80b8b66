"""Online garbage collection: delete the manifests and blobs nothing needs, while pushes go on.

What is garbage (older than the grace period, measured from when it was created; a manifest
pushed again, or a blob link found by HEAD/GET, is renewed once past half that period)
- a manifest with no tag, not a child of another manifest in its repository, and - the
  referrers policy - if it has a ``subject``, whose subject is gone from the repository: an
  untagged referrer (signature, SBOM, ...) lives exactly as long as its subject;
- likewise a manifest whose only tags are cosign's tag scheme (``sha256-<hex>.sig``, ``.att``,
  ``.sbom``: dtr.signatures.kinds) for an image gone from the repository, the tags older than the
  grace period: cosign's signatures live as long as their image (the tags go with the manifest;
  a young tag keeps it, so a signature copied before its image is not lost). A manifest deleted
  through the API keeps such tags until GC: the same image pushed again within the grace period
  finds its signatures still there;
- a blob no manifest references, with no repository link (re)made within the grace period
  (an upload or mount of an existing blob renews its link);
- a repository's link to a blob no manifest of that repository references (it stops being
  readable there; the bytes stay while another repository needs them);
- the scan results (``dtr.scanning``) of an image no repository holds any more (a layer's index
  goes with its blob row, by cascade).
Deleting a tag or a repository through the API removes rows; the bytes are left to GC.

Mark and sweep. The mark is set-based SQL over a snapshot and only chooses candidates. Each
candidate is then swept under a lock and deleted only if a re-check in that same locked
state still finds it unneeded, so a stale mark can never delete a needed object.

Why the push race is impossible (not just unlikely). Keys (dtr.registry.locks) name each blob
digest and each (repository, manifest digest). Every writer that makes an object reachable
takes the *shared* advisory lock on its key inside the transaction that checks the object
exists and records the reference, and holds it until commit:
- ``put_manifest`` locks the blobs and child manifests it references and the manifest itself,
  then checks them and inserts the manifest, its references and its tag;
- ``finish_upload`` locks the digest, then checks whether the blob row exists, moves the bytes
  into place if not, and inserts the row and the link;
- ``mount`` locks the digest, then checks the source link and inserts the new link.
GC takes the *exclusive* lock (``pg_try_advisory_lock``, skipping busy keys until the next run)
on a session of its own, then runs ``DELETE ... WHERE <still unneeded> RETURNING`` (a fresh
READ COMMITTED snapshot taken after the lock), commits, deletes the bytes, and only then unlocks.
So for one key either the writer's transaction commits first - GC's re-check sees its reference
and keeps the object - or GC holds the key first - the writer waits until the row is gone and
the bytes are deleted, then sees no object and fails cleanly (BLOB_UNKNOWN / MANIFEST_UNKNOWN,
the client uploads again) or, for an upload, puts fresh bytes in place before the row. There
is no third order: a reference is never recorded to a blob whose deletion is in progress, and
a blob row never exists without its bytes. A crash between GC's commit and its byte delete
leaves only unreferenced bytes (a leak, overwritten by the next upload of that digest), never
a row without bytes. Only one GC runs at a time (a cluster-wide advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.jobs.context import JobContext
from dtr.jobs.params import bool_param, duration_param, only
from dtr.ops.tasks import bounded
from dtr.registry import events, locks
from dtr.registry.events import SYSTEM, Event
from dtr.registry.names import blob_path
from dtr.storage.base import PathNotFoundError, StorageError

log = logging.getLogger("dtr.jobs.gc")

#: Held for a whole run: one GC at a time in the cluster.
GC_RUN_KEY = locks._key("gc-run")
BATCH = 500
_TRY_LOCK = text("SELECT k, pg_try_advisory_lock(k) AS ok FROM unnest(CAST(:keys AS bigint[])) AS k")
PAGE = 2000
DELETE_CONCURRENCY = 16


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    only(params, {"dry_run", "grace_period"})
    bool_param(params, "dry_run")
    duration_param(params, "grace_period")
    return params


# -- the mark -------------------------------------------------------------------------------

#: cosign's tag scheme (dtr.signatures.kinds.COSIGN_TAG): past the grace period, such a tag keeps
#: its manifest only through the image it names (``sha256:`` and the tag's 64 hex digits).
_COSIGN_TAG = r"t.name ~ '^sha256-[0-9a-f]{64}\.(sig|att|sbom)$' AND t.updated_at < :cutoff"
#: A tag that keeps its manifest by itself: any but an old cosign tag.
_HOLDS = f"NOT ({_COSIGN_TAG})"
#: A tag that keeps its manifest now: any but a cosign tag whose image is gone.
_STILL_HOLDS = (f"NOT ({_COSIGN_TAG} AND NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = "
                f"t.repository_id AND s.digest = 'sha256:' || substr(t.name, 8, 64)))")

#: Manifests to keep: tagged or young, then (transitively) their children, their referrers and
#: the manifests of their cosign tags.
_LIVE = f"""
WITH RECURSIVE live(id) AS (
    SELECT m.id FROM manifests m
    WHERE m.created_at >= :cutoff OR EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id AND {_HOLDS})
  UNION
    SELECT e.id FROM live l
    CROSS JOIN LATERAL (
        SELECT c.id FROM manifest_references r
        JOIN manifests p ON p.id = r.manifest_id
        JOIN manifests c ON c.repository_id = p.repository_id AND c.digest = r.digest
        WHERE r.manifest_id = l.id AND r.kind = 'manifest'
      UNION ALL
        SELECT f.id FROM manifests p
        JOIN manifests f ON f.repository_id = p.repository_id AND f.subject_digest = p.digest
        WHERE p.id = l.id
      UNION ALL
        SELECT t.manifest_id FROM manifests p
        JOIN tags t ON t.repository_id = p.repository_id AND t.name = ANY(ARRAY[
            'sha256-' || substr(p.digest, 8) || '.sig', 'sha256-' || substr(p.digest, 8) || '.att',
            'sha256-' || substr(p.digest, 8) || '.sbom'])
        WHERE p.id = l.id AND p.digest LIKE 'sha256:%'
    ) e
)
"""

_GARBAGE_MANIFESTS = text(_LIVE + """
SELECT m.id, m.repository_id, m.digest, m.size,
       m.subject_digest IS NOT NULL OR EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id) AS is_referrer,
       EXISTS (SELECT 1 FROM manifest_references r WHERE r.manifest_id = m.id AND r.kind = 'manifest') AS is_index,
       repo.name AS repository
FROM manifests m JOIN repositories repo ON repo.id = m.repository_id
WHERE NOT EXISTS (SELECT 1 FROM live WHERE live.id = m.id)
ORDER BY is_referrer, is_index DESC, m.id
""")


def _garbage_blobs(dry_run: bool) -> Any:
    """Blobs no manifest references (for a dry run: none but those in ``gc_dead``)."""
    exclude = "AND NOT EXISTS (SELECT 1 FROM gc_dead d WHERE d.id = r.manifest_id)" if dry_run else ""
    return text(f"""
SELECT b.digest, b.size FROM blobs b
WHERE b.digest > :after AND b.created_at < :cutoff
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.digest = b.digest {exclude})
  AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest AND l.created_at >= :cutoff)
ORDER BY b.digest LIMIT :limit
""")


#: The last repository of the next batch: whole repositories holding at least ``:limit`` links.
_LINK_BATCH_END = text("""
SELECT max(repository_id) FROM (
    SELECT repository_id FROM repository_blobs WHERE repository_id > :after ORDER BY repository_id LIMIT :limit
) s
""")


def _unused_links(dry_run: bool) -> Any:
    """Links of the repositories in (``:after``, ``:last``] to a blob none of the repository's
    manifests references (the blob itself kept).

    Set-based: the references of those repositories' manifests are read once (the materialized
    CTE) and the links anti-joined to them by hash, never probed link by link (a probe costs the
    repository's manifests or the blob's references, whichever the planner picks: quadratic for a
    big repository or a shared layer). Each repository is in one batch, so the whole pass is
    linear in links, manifests and references.
    """
    exclude = "AND NOT EXISTS (SELECT 1 FROM gc_dead d WHERE d.id = m.id)" if dry_run else ""
    exclude_blobs = "AND NOT EXISTS (SELECT 1 FROM gc_dead_blobs g WHERE g.digest = l.digest)" if dry_run else ""
    return text(f"""
WITH needed AS MATERIALIZED (
    SELECT m.repository_id, r.digest FROM manifests m JOIN manifest_references r ON r.manifest_id = m.id
    WHERE m.repository_id > :after AND m.repository_id <= :last {exclude}
)
SELECT l.repository_id, l.digest FROM repository_blobs l
WHERE l.repository_id > :after AND l.repository_id <= :last AND l.created_at < :cutoff
  AND NOT EXISTS (SELECT 1 FROM needed n WHERE n.repository_id = l.repository_id AND n.digest = l.digest)
  {exclude_blobs}
ORDER BY l.repository_id, l.digest
""")


# -- the sweep's re-checks (run after the locks are held) ------------------------------------

#: The parent check goes through the child references to the manifest's digest (few; the partial
#: index ix_manifest_references_child) and looks each parent up by id; a join to the parents by
#: repository let the planner scan the whole repository per candidate (quadratic in a big one).
_DELETE_MANIFESTS = text(f"""
DELETE FROM manifests m
WHERE m.id = ANY(:ids) AND m.created_at < :cutoff
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id AND {_STILL_HOLDS})
  AND NOT EXISTS (SELECT 1 FROM manifest_references r
                  WHERE r.kind = 'manifest' AND r.digest = m.digest
                    AND (SELECT p.repository_id FROM manifests p WHERE p.id = r.manifest_id) = m.repository_id)
  AND (m.subject_digest IS NULL OR NOT EXISTS (
        SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.digest = m.subject_digest))
RETURNING m.id
""")

_DELETE_BLOBS = text("""
DELETE FROM blobs b
WHERE b.digest = ANY(:digests) AND b.created_at < :cutoff
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.digest = b.digest)
  AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest AND l.created_at >= :cutoff)
RETURNING b.digest, b.size
""")

#: The links (``:repos[i]``, ``:digests[i]``) no manifest of their repository references, deleted;
#: set-based over the batch's repositories like ``_unused_links``.
_DELETE_LINKS = text("""
WITH needed AS MATERIALIZED (
    SELECT m.repository_id, r.digest FROM manifests m JOIN manifest_references r ON r.manifest_id = m.id
    WHERE m.repository_id = ANY(CAST(:repos AS bigint[]))
)
DELETE FROM repository_blobs l
USING unnest(CAST(:repos AS bigint[]), CAST(:digests AS text[])) AS c(repository_id, digest)
WHERE l.repository_id = c.repository_id AND l.digest = c.digest AND l.created_at < :cutoff
  AND NOT EXISTS (SELECT 1 FROM needed n WHERE n.repository_id = l.repository_id AND n.digest = l.digest)
""")


#: Scan results (dtr.scanning) of images no repository holds any more: an anti-join by hash over
#: both tables, once per run (the results' packages and findings go by cascade; a layer's index
#: goes with its blob row).
_DELETE_SCANS = text("""
DELETE FROM scan_images s WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = s.digest)
""")
_COUNT_DEAD_SCANS = text("""
SELECT count(*) FROM scan_images s
WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = s.digest
                  AND NOT EXISTS (SELECT 1 FROM gc_dead d WHERE d.id = m.id))
""")


class _Totals:
    def __init__(self) -> None:
        self.manifests = self.manifest_bytes = self.blobs = self.blob_bytes = self.links = 0
        self.skipped_busy = self.scans = 0

    def json(self, dry_run: bool, grace: float) -> dict[str, Any]:
        return {"dry_run": dry_run, "grace_period": grace, "manifests": self.manifests,
                "manifest_bytes": self.manifest_bytes, "blobs": self.blobs, "blob_bytes": self.blob_bytes,
                "links": self.links, "bytes": self.manifest_bytes + self.blob_bytes,
                "scan_results": self.scans, "skipped_in_use": self.skipped_busy}


@contextlib.asynccontextmanager
async def _connect(ctx: JobContext) -> AsyncIterator[AsyncConnection]:
    """A connection planning each statement for its parameters (``force_custom_plan``).

    A cached generic plan cannot see how many ids a batch holds nor how many rows a repository
    has; after five executions Postgres may switch to one that scans a table per candidate.
    """
    async with ctx.engine.connect() as conn:
        await conn.execute(text("SET plan_cache_mode = force_custom_plan"))
        await conn.commit()
        try:
            yield conn
        finally:
            try:
                await conn.rollback()
                await conn.execute(text("RESET plan_cache_mode"))
                await conn.commit()
            except Exception:
                await conn.invalidate()  # the pool must not keep the setting
                raise


@contextlib.asynccontextmanager
async def _exclusive(conn: AsyncConnection, keys: Sequence[int]) -> AsyncIterator[set[int]]:
    """Try the exclusive session lock on each key; yield the ones held; release them all after."""
    acquired: set[int] = set()
    try:
        if keys:
            rows = await conn.execute(_TRY_LOCK, {"keys": list(keys)})
            acquired = {r.k for r in rows if r.ok}
            await conn.commit()
        yield acquired
    finally:
        try:
            await conn.execute(text("SELECT pg_advisory_unlock_all()"))
            await conn.commit()
        except Exception:
            await conn.invalidate()  # closing the session releases its locks
            raise


async def run(ctx: JobContext) -> dict[str, Any]:
    dry_run = bool(ctx.parameters.get("dry_run", False))
    grace = duration_param(ctx.parameters, "grace_period")
    if grace is None:
        grace = ctx.config.jobs.gc_grace_period
    async with ctx.engine.connect() as run_lock:
        while not (await run_lock.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": GC_RUN_KEY})).scalar():
            ctx.log("another garbage collection is running; waiting for it")
            for _ in range(10):
                ctx.check_stop()
                await asyncio.sleep(0.5)
        await run_lock.commit()
        try:
            totals = await _collect(ctx, dry_run, grace)
        finally:
            await run_lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": GC_RUN_KEY})
            await run_lock.commit()
    if not dry_run:
        from dtr.jobs import usage

        await usage.recount(ctx.engine)
    return totals.json(dry_run, grace)


async def _collect(ctx: JobContext, dry_run: bool, grace: float) -> _Totals:
    verb = "would delete" if dry_run else "deleted"
    t = _Totals()
    async with _connect(ctx) as conn:
        cutoff = (await conn.execute(text("SELECT now() - make_interval(secs => :g)"), {"g": grace})).scalar_one()
        ctx.log(f"garbage collection{' (dry run)' if dry_run else ''}: grace period {grace:g}s, "
                f"collecting what is unneeded and older than {cutoff.isoformat()}")
        ctx.progress(0, None, "marking manifests")
        garbage = (await conn.execute(_GARBAGE_MANIFESTS, {"cutoff": cutoff})).all()
        await conn.commit()
    ctx.log(f"mark: {len(garbage)} unneeded manifests")
    if dry_run:
        await _dry_run(ctx, garbage, cutoff, t, verb)
    else:
        await _sweep(ctx, garbage, cutoff, t, verb)
    ctx.log(f"{'dry run: would free' if dry_run else 'freed'} {t.manifests} manifests ({t.manifest_bytes} bytes), "
            f"{t.blobs} blobs ({t.blob_bytes} bytes), {t.links} repository links; "
            f"total {t.manifest_bytes + t.blob_bytes} bytes")
    if t.scans:
        ctx.log(f"{verb} the scan results of {t.scans} images no repository holds")
    ctx.progress(t.manifests + t.blobs, t.manifests + t.blobs, "done")
    return t


async def _dry_run(ctx: JobContext, garbage: Sequence[Any], cutoff: Any, t: _Totals, verb: str) -> None:
    """Count what a real run would free, in one snapshot, treating the marked manifests as gone."""
    async with _connect(ctx) as conn:
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        await conn.execute(text("CREATE TEMP TABLE gc_dead (id bigint PRIMARY KEY) ON COMMIT DROP"))
        await conn.execute(text("CREATE TEMP TABLE gc_dead_blobs (digest text PRIMARY KEY) ON COMMIT DROP"))
        for m in garbage:
            t.manifests += 1
            t.manifest_bytes += m.size
            ctx.log(f"{verb} manifest {m.repository}@{m.digest} ({m.size} bytes)")
        if garbage:
            await conn.execute(text("INSERT INTO gc_dead SELECT unnest(CAST(:ids AS bigint[]))"),
                               {"ids": [m.id for m in garbage]})
        after = ""
        while page := (await conn.execute(_garbage_blobs(True), {"after": after, "cutoff": cutoff,
                                                                  "limit": PAGE})).all():
            ctx.check_stop()
            after = page[-1].digest
            for b in page:
                t.blobs += 1
                t.blob_bytes += b.size
                ctx.log(f"{verb} blob {b.digest} ({b.size} bytes)")
            await conn.execute(text("INSERT INTO gc_dead_blobs SELECT unnest(CAST(:d AS text[]))"),
                               {"d": [b.digest for b in page]})
            ctx.progress(t.blobs, None, "counting blobs")
        async for links in _link_batches(conn, cutoff, dry_run=True):
            t.links += len(links)
        t.scans = (await conn.execute(_COUNT_DEAD_SCANS)).scalar_one()
        await conn.rollback()


async def _sweep(ctx: JobContext, garbage: Sequence[Any], cutoff: Any, t: _Totals, verb: str) -> None:
    # 1. manifests: parents before children, subjects before referrers; repeat while that frees more
    pending = list(garbage)
    while pending:
        ctx.check_stop()
        progressed: list[Any] = []
        async with _connect(ctx) as conn:
            for i in range(0, len(pending), BATCH):
                progressed += await _sweep_manifests(conn, pending[i:i + BATCH], cutoff, t, ctx, verb)
                ctx.progress(t.manifests, len(garbage), "sweeping manifests")
        done = {m.id for m in progressed}
        pending = [m for m in pending if m.id not in done]
        if not progressed:
            break
    if pending:
        t.skipped_busy += len(pending)
        ctx.log(f"{len(pending)} manifests kept this time (in use by a push, or needed again)")
    # 1b. the scan results of images gone from every repository (by GC or by a delete)
    async with ctx.engine.begin() as conn:
        t.scans = (await conn.execute(_DELETE_SCANS)).rowcount
    # 2. blobs, a page of candidates at a time
    after = ""
    async with _connect(ctx) as conn:
        while True:
            ctx.check_stop()
            page = (await conn.execute(_garbage_blobs(False), {"after": after, "cutoff": cutoff,
                                                               "limit": PAGE})).all()
            await conn.commit()
            if not page:
                break
            after = page[-1].digest
            for i in range(0, len(page), BATCH):
                await _sweep_blobs(conn, ctx, [b.digest for b in page[i:i + BATCH]], cutoff, t, verb)
            ctx.progress(t.blobs, None, "sweeping blobs")
        # 3. links no manifest of their repository needs
        async for links in _link_batches(conn, cutoff, dry_run=False):
            ctx.check_stop()
            for i in range(0, len(links), BATCH):
                await _sweep_links(conn, links[i:i + BATCH], cutoff, t)


async def _link_batches(conn: AsyncConnection, cutoff: Any, dry_run: bool) -> AsyncIterator[Sequence[Any]]:
    """The unused links (``_unused_links``), whole repositories of about ``PAGE`` links at a time
    (each batch read in its own transaction unless ``dry_run``: that one keeps its snapshot)."""
    after = 0
    while (last := (await conn.execute(_LINK_BATCH_END, {"after": after, "limit": PAGE})).scalar()) is not None:
        links = (await conn.execute(_unused_links(dry_run), {"after": after, "last": last,
                                                               "cutoff": cutoff})).all()
        if not dry_run:
            await conn.commit()
        after = last
        if links:
            yield links


async def _sweep_manifests(conn: AsyncConnection, batch: Sequence[Any], cutoff: Any, t: _Totals,
                           ctx: JobContext, verb: str) -> list[Any]:
    by_key = {locks.manifest_key(m.repository_id, m.digest): m for m in batch}
    async with _exclusive(conn, list(by_key)) as held:
        ids = [m.id for k, m in by_key.items() if k in held]
        if not ids:
            return []
        deleted = set((await conn.execute(_DELETE_MANIFESTS, {"ids": ids, "cutoff": cutoff})).scalars())
        gone = [m for m in batch if m.id in deleted]
        await events.record(conn, SYSTEM, [Event(events.MANIFEST_DELETED, m.repository, digest=m.digest,
                                                 detail={"tags": [], "gc": True}) for m in gone])
        await conn.commit()
    for m in gone:
        t.manifests += 1
        t.manifest_bytes += m.size
        ctx.log(f"{verb} manifest {m.repository}@{m.digest} ({m.size} bytes)")
    return gone


async def _sweep_blobs(conn: AsyncConnection, ctx: JobContext, digests: Sequence[str], cutoff: Any,
                       t: _Totals, verb: str) -> None:
    by_key = {locks.blob_key(d): d for d in digests}
    async with _exclusive(conn, list(by_key)) as held:
        mine = [d for k, d in by_key.items() if k in held]
        t.skipped_busy += len(digests) - len(mine)
        if not mine:
            return
        rows = (await conn.execute(_DELETE_BLOBS, {"digests": mine, "cutoff": cutoff})).all()
        await conn.commit()
        # The rows are gone; the bytes go while the keys are still held (see the module docstring).
        async def drop(digest: str) -> None:
            try:
                await ctx.storage.delete(blob_path(digest))
            except PathNotFoundError:
                pass
            except StorageError as e:
                ctx.log(f"blob {digest}: row deleted but its bytes could not be ({e}); they are left unused")

        await bounded([r.digest for r in rows], drop, DELETE_CONCURRENCY)
    for r in rows:
        t.blobs += 1
        t.blob_bytes += r.size
        ctx.log(f"{verb} blob {r.digest} ({r.size} bytes)")


async def _sweep_links(conn: AsyncConnection, batch: Sequence[Any], cutoff: Any, t: _Totals) -> None:
    by_key: dict[int, list[Any]] = {}
    for link in batch:
        by_key.setdefault(locks.blob_key(link.digest), []).append(link)
    async with _exclusive(conn, list(by_key)) as held:
        mine = [link for k in held for link in by_key[k]]
        if mine:
            res = await conn.execute(_DELETE_LINKS, {"repos": [link.repository_id for link in mine],
                                                     "digests": [link.digest for link in mine], "cutoff": cutoff})
            t.links += res.rowcount
        await conn.commit()

"""The re-match after vulnerability database changes.

``rematch`` handles the ``vuln_changes`` imports wrote: it re-matches, from rows only (no layer
read), the images holding a changed (namespace, package), in batches of images per transaction,
then deletes the changes it handled (its cursor, ``event_cursors`` ``rematch``, records the last).
The changes are a queue, not a position: a change whose id was drawn before another's but that
committed after it is still handled. The images a batch touches are found under the match fence
(``dtr.scanning.locking``), so a scan racing an import leaves no stale result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from sqlalchemy import delete, func, insert, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.registry import locks
from dtr.scanning import results
from dtr.scanning.findings import PACKAGE_COLUMNS, Keyed, Matches, feed_versions, lock_images, package_from_row
from dtr.scanning.locking import FENCE, session_lock
from dtr.scanning.results import COMPLETED, image_vulns, images

#: The ``event_cursors`` subscriber of the re-match.
REMATCH_CURSOR = "rematch"
#: vuln_changes read at a time, and images re-matched per transaction.
CHANGES_BATCH = 20_000
IMAGES_BATCH = 200
#: Held for the whole re-match: one at a time in the cluster.
REMATCH_KEY = locks._key("scan-rematch")

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
SELECT ip.image_digest, ip.namespace, ip.match_name, ip.match_version, {PACKAGE_COLUMNS}
FROM scan_image_packages ip JOIN scan_packages p ON p.id = ip.package_id
WHERE ip.image_digest = ANY(CAST(:digests AS text[])) AND ip.namespace <> ''
""")
_PENDING_CHANGES = text("SELECT EXISTS (SELECT 1 FROM vuln_changes)")
_CURRENT_FEEDS = text("""
UPDATE scan_images SET feed_versions = CAST(:v AS jsonb)
WHERE status = :completed AND feed_versions IS DISTINCT FROM CAST(:v AS jsonb)
""")


async def changes_pending(conn: AsyncConnection) -> bool:
    """Whether database changes wait to be re-matched."""
    return bool((await conn.execute(_PENDING_CHANGES)).scalar())


async def rematch(engine: AsyncEngine, log: Callable[[str], None], *, check_stop: Callable[[], None] | None = None,
                  progress: Callable[[int, int | None, str], None] | None = None) -> int:
    """Re-match the images the pending database changes touch, from their stored packages (no
    layer is read): their findings, counts and ``check_completed_at``; each batch of images in one
    transaction, the changes handled deleted with the last. Then every completed image is marked
    as matched against the current feed versions (those no change touched are as a match now
    would find them). One re-match at a time in the cluster (others wait). The number of images
    re-matched."""
    async with session_lock(engine, REMATCH_KEY, check_stop, lambda: log("another re-match is running; waiting")):
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
                await conn.execute(FENCE)
                digests = list((await conn.execute(_AFFECTED, {"ns": [k[0] for k in keys],
                                                               "names": [k[1] for k in keys]})).scalars())
            log(f"{len(changes)} database changes ({len(keys)} packages) touch {len(digests)} images")
            matches = Matches()  # advisories as of this batch of changes (later ones: the next batch's)
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


async def _rematch_images(conn: AsyncConnection, digests: Sequence[str], matches: Matches) -> None:
    """Replace the findings of ``digests`` by a match of their stored packages, recount them. The
    images' rows are locked first: a scan storing one of them waits, or is waited for (and its
    packages are the ones read); an image deleted meanwhile drops out."""
    digests = await lock_images(conn, digests)
    keyed: dict[str, list[Keyed]] = {d: [] for d in digests}
    for r in await conn.execute(_KEYED_PACKAGES, {"digests": list(digests)}):
        if (p := matches.packages.get(r.id)) is None:
            p = matches.packages[r.id] = package_from_row(r)
        keyed[r.image_digest].append((r.id, (r.namespace, r.match_name, r.match_version), p))
    await matches.load(conn, (k for rows in keyed.values() for k in rows))
    feeds = await feed_versions(conn)
    vulns = [row for d in digests for row in matches.rows(d, keyed[d])]
    await conn.execute(delete(image_vulns).where(image_vulns.c.image_digest.in_(list(digests))))
    if vulns:
        await conn.execute(insert(image_vulns), vulns)
    await conn.execute(update(images).where(images.c.digest.in_(list(digests)))
                       .values(check_completed_at=func.now(), feed_versions=feeds))
    await results.recount(conn, digests)


async def _mark_current(engine: AsyncEngine) -> None:
    """With no change left to handle, completed images are as matched against the feed versions
    seen in that same snapshot (a later import's changes are the next re-match's)."""
    async with engine.connect() as conn:
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        pending = await changes_pending(conn)
        feeds = await feed_versions(conn)
        await conn.rollback()
    if pending:
        return
    async with engine.begin() as conn:
        await conn.execute(_CURRENT_FEEDS, {"v": json.dumps(feeds), "completed": COMPLETED})

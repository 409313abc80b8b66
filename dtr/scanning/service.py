"""The scanner's entry points: queue scans, a database update or a re-match.

- ``queue_scan`` resolves a tag or digest of a repository to its image manifests (an index: each
  platform's image, or the one asked for; ``images_of``) and queues one ``scan`` job per image
  (one waiting per digest, run by ``dtr.scanning.scan``), marking the image pending.
- ``database_updated``, after an import, records ``vulndb_updated`` and queues the re-match
  (``dtr.scanning.rematch``) if database changes wait for it.
- ``scan_on_push`` is the outbox subscriber that queues scans of pushed tags in repositories with
  scanOnPush.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.jobs import shapes
from dtr.jobs.service import JobService
from dtr.registry import events
from dtr.registry.events import SYSTEM, Event, Handler
from dtr.registry.manifests import IMAGE_TYPES, INDEX_TYPES
from dtr.registry.names import is_digest
from dtr.scanning.rematch import changes_pending
from dtr.scanning.results import PENDING

#: Image configs a scan reads (other manifests are artifacts: signatures, SBOMs, charts...).
IMAGE_CONFIGS = frozenset({"application/vnd.oci.image.config.v1+json",
                           "application/vnd.docker.container.image.v1+json"})

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


def json_object(payload: bytes) -> dict[str, Any]:
    """``payload`` as a JSON object; {} if it is none."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def is_image(media_type: str, payload: bytes) -> bool:
    """A container image manifest (an image config), not an artifact or an index."""
    if media_type not in IMAGE_TYPES:
        return False
    config = json_object(payload).get("config")
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
    for d in json_object(payload).get("manifests") or []:
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


# -- after a database update ----------------------------------------------------------------------


async def database_updated(engine: AsyncEngine, jobs: JobService, detail: dict[str, Any] | None
                           ) -> shapes.Job | None:
    """After an import (an update or an offline bundle): record ``vulndb_updated`` (``detail``:
    what changed; None: nothing did, no event) and queue a ``rematch`` if changes wait to be
    handled, in one transaction; the job."""
    async with engine.begin() as conn:
        pending = await changes_pending(conn)
        job = await queue_rematch(jobs, conn) if pending else None
        if detail is not None:
            await events.record(conn, SYSTEM, [Event(events.VULNDB_UPDATED, "", detail=detail)])
    return job

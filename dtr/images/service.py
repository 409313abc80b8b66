"""Tags of a repository with what a person wants to see of them, and deleting one; for the JSON
API and the web UI, through the one access check (``dtr.auth.repoaccess``).

A tag's ``size`` is its manifest's bytes plus every distinct blob it needs (for an index: its
children's blobs too), as a pull of every platform would fetch them. Tags are listed in the
registry's tag order (case-insensitive, then byte order), paged by name.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.auth.access import Action
from dtr.images import configs, shapes
from dtr.registry.errors import RegistryError
from dtr.registry.errors import codes as registry_codes
from dtr.registry.names import TAG_RE
from dtr.registry.service import RegistryService
from dtr.scanning.results import UNSCANNED, Counts, counts, in_repository, scan_states
from dtr.signatures.access import open_repository
from dtr.signatures.policy import notary_signed, trusted_fingerprints
from dtr.signatures.trustedkeys import Caller
from dtr.signatures.verify import trusted_images
from dtr.times import iso
from dtr.trust.signers import repository_signers

_TAGS = """
SELECT t.name, t.updated_at, t.pushed_by, m.digest, m.media_type, m.created_at, m.payload, p.pulled_at,
       m.size + coalesce((
         SELECT sum(b.size) FROM blobs b WHERE b.digest IN (
           SELECT r.digest FROM manifest_references r WHERE r.manifest_id = m.id AND r.kind = 'blob'
           UNION
           SELECT cr.digest FROM manifest_references r
           JOIN manifests c ON c.repository_id = m.repository_id AND c.digest = r.digest
           JOIN manifest_references cr ON cr.manifest_id = c.id AND cr.kind = 'blob'
           WHERE r.manifest_id = m.id AND r.kind = 'manifest')), 0) AS total
FROM (SELECT * FROM tags t
      WHERE t.repository_id = (SELECT id FROM repositories WHERE name = :repo) {where}
      ORDER BY lower(t.name), t.name
      LIMIT :limit) t
JOIN manifests m ON m.id = t.manifest_id
LEFT JOIN tag_pulls p ON p.repository_id = t.repository_id AND p.tag = t.name
ORDER BY lower(t.name), t.name
"""
_PAGE = text(_TAGS.format(where="AND (lower(t.name), t.name) >= (lower(:start), :start)"))
_FIRST = text(_TAGS.format(where=""))
_ONE = text(_TAGS.format(where="AND t.name = :tag"))


async def _enrich(c: Caller, conn: AsyncConnection, repository: str, rows: list[Any]) -> list[shapes.Tag]:
    """The page's rows as tags: platforms (index entries, or image configs read once each and
    cached), signatures (Notary: two queries; OCI: ``trusted_images``) and scan summaries (two
    queries), the same few queries whatever the page's length."""
    found = await configs.platforms(c.storage, [(r.digest, r.media_type, bytes(r.payload)) for r in rows])
    signers = await repository_signers(conn, repository)
    trusted = await trusted_fingerprints(conn, repository) if signers else set()
    images = {p["digest"] for ps in found for p in ps} | {r.digest for r in rows}
    states = await scan_states(conn, images)
    tallies = await counts(conn, [d for d in images if d in states], in_repository(repository))
    oci = await trusted_images(conn, c.storage, repository, [r.digest for r in rows])
    out: list[shapes.Tag] = []
    for r, ps in zip(rows, found, strict=True):
        notary = notary_signed(signers, trusted, r.name, r.digest)
        scanned = [(states[d], tallies.get(d, Counts())) for d in dict.fromkeys([r.digest, *(p["digest"] for p in ps)])
                   if d in states and states[d].status != UNSCANNED]
        out.append({"name": r.name, "digest": r.digest, "mediaType": r.media_type, "size": int(r.total),
                    "author": r.pushed_by, "createdAt": iso(r.created_at), "updatedAt": iso(r.updated_at),
                    "lastPulled": iso(r.pulled_at), "platforms": ps, "signed": notary or r.digest in oci,
                    "inNotary": notary, "ociSigned": r.digest in oci, "scanSummary": _scan_summary(scanned)})
    return out


def _scan_summary(scanned: list[tuple[Any, Counts]]) -> shapes.TagScanSummary | None:
    if not scanned:
        return None
    times = [s.scanned_at for s, _ in scanned if s.scanned_at is not None]
    return {"critical": sum(n.critical for _, n in scanned), "major": sum(n.major for _, n in scanned),
            "minor": sum(n.minor for _, n in scanned), "status": min(s.status for s, _ in scanned),
            "scannedAt": iso(max(times)) if times else None}


async def _rows(conn: AsyncConnection, repo: str, start: str | None, limit: int) -> list[Any]:
    if start:
        return list((await conn.execute(_PAGE, {"repo": repo, "start": start, "limit": limit})).all())
    return list((await conn.execute(_FIRST, {"repo": repo, "limit": limit})).all())


async def list_tags(c: Caller, namespace: str, repo: str, start: str | None,
                    size: int) -> tuple[list[shapes.Tag], str | None]:
    """(up to ``size`` tags from the tag ``start``, the name starting the next page or None), for
    whoever may pull from the repository (NO_SUCH_REPOSITORY otherwise)."""
    async with c.engine.connect() as conn:
        name = await open_repository(c, conn, namespace, repo, Action.PULL)
        rows = await _rows(conn, name, start, size + 1)
        return await _enrich(c, conn, name, rows[:size]), rows[size].name if len(rows) > size else None


async def get_tag(c: Caller, namespace: str, repo: str, tag: str) -> shapes.Tag:
    """One tag (readers; NO_SUCH_REPOSITORY, NO_SUCH_TAG)."""
    async with c.engine.connect() as conn:
        name = await open_repository(c, conn, namespace, repo, Action.PULL)
        row = (await conn.execute(_ONE, {"repo": name, "tag": tag, "limit": 1})).first()
        if row is None:
            raise APIError(codes.NO_SUCH_TAG, f"no tag {tag[:128]!r} in {name}")
        return (await _enrich(c, conn, name, [row]))[0]


async def delete_tag(c: Caller, registry: RegistryService, namespace: str, repo: str, tag: str) -> None:
    """Untag (the manifest stays, reachable by digest until garbage collection): read-write
    access; an immutable tag is refused."""
    async with c.engine.connect() as conn:
        name = await open_repository(c, conn, namespace, repo, Action.DELETE)
    if not TAG_RE.fullmatch(tag):  # a digest here would delete the manifest, not untag it
        raise APIError(codes.NO_SUCH_TAG, f"no tag {tag[:128]!r} in {name}")
    try:
        await registry.delete_manifest(name, tag, c.actor)
    except RegistryError as e:
        if e.code == registry_codes.MANIFEST_UNKNOWN:
            raise APIError(codes.NO_SUCH_TAG, f"no tag {tag[:128]!r} in {name}") from None
        if e.code == registry_codes.DENIED:
            raise APIError(codes.INVALID_OPERATION, e.message) from None
        raise

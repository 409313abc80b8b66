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
from typing_extensions import TypedDict

from dtr.api.errors import APIError, codes
from dtr.auth.access import Action
from dtr.registry.errors import RegistryError
from dtr.registry.errors import codes as registry_codes
from dtr.registry.names import TAG_RE
from dtr.registry.service import RegistryService
from dtr.signatures.access import Caller, open_repository
from dtr.times import iso


class Tag(TypedDict):
    name: str
    digest: str
    mediaType: str
    #: Bytes a pull of every platform fetches: the manifest and each distinct blob it needs.
    size: int
    #: Who pushed the tag last ('' when anonymous or unknown).
    author: str
    createdAt: str
    updatedAt: str


class TagList(TypedDict):
    tags: list[Tag]


_TAGS = """
SELECT t.name, t.updated_at, t.pushed_by, m.digest, m.media_type, m.created_at,
       m.size + coalesce((
         SELECT sum(b.size) FROM blobs b WHERE b.digest IN (
           SELECT r.digest FROM manifest_references r WHERE r.manifest_id = m.id AND r.kind = 'blob'
           UNION
           SELECT cr.digest FROM manifest_references r
           JOIN manifests c ON c.repository_id = m.repository_id AND c.digest = r.digest
           JOIN manifest_references cr ON cr.manifest_id = c.id AND cr.kind = 'blob'
           WHERE r.manifest_id = m.id AND r.kind = 'manifest')), 0) AS total
FROM tags t JOIN manifests m ON m.id = t.manifest_id
JOIN repositories repo ON repo.id = t.repository_id
WHERE repo.name = :repo {where}
ORDER BY lower(t.name), t.name
LIMIT :limit
"""
_PAGE = text(_TAGS.format(where="AND (lower(t.name), t.name) >= (lower(:start), :start)"))
_FIRST = text(_TAGS.format(where=""))
_ONE = text(_TAGS.format(where="AND t.name = :tag"))


def tag_json(row: Any) -> Tag:
    return {"name": row.name, "digest": row.digest, "mediaType": row.media_type, "size": int(row.total),
            "author": row.pushed_by, "createdAt": iso(row.created_at), "updatedAt": iso(row.updated_at)}


async def _rows(conn: AsyncConnection, repo: str, start: str | None, limit: int) -> list[Any]:
    if start:
        return list((await conn.execute(_PAGE, {"repo": repo, "start": start, "limit": limit})).all())
    return list((await conn.execute(_FIRST, {"repo": repo, "limit": limit})).all())


async def list_tags(c: Caller, namespace: str, repo: str, start: str | None, size: int) -> list[Any]:
    """Up to ``size`` + 1 tags (the extra one starts the next page) from the tag ``start``, for
    whoever may pull from the repository."""
    async with c.engine.connect() as conn:
        name = await open_repository(c, conn, namespace, repo, Action.PULL)
        return await _rows(conn, name, start, size + 1)


async def get_tag(c: Caller, namespace: str, repo: str, tag: str) -> Any:
    async with c.engine.connect() as conn:
        name = await open_repository(c, conn, namespace, repo, Action.PULL)
        row = (await conn.execute(_ONE, {"repo": name, "tag": tag, "limit": 1})).first()
    if row is None:
        raise APIError(codes.NO_SUCH_TAG, f"no tag {tag[:128]!r} in {name}")
    return row


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

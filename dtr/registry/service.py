"""The registry's operations on metadata (Postgres) and bytes (storage), independent of HTTP.

Invariants:
- a blob row exists only for bytes verified against their digest and durable at ``blob_path``;
- a repository reads a blob only through a ``repository_blobs`` link (push or mount into it);
- a manifest row is written only when everything it references is present in its repository.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import LargeBinary, Table, and_, bindparam, delete, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.db.driver import driver_connection
from dtr.db.errors import DatabaseUnavailable
from dtr.ops.metrics import MANIFEST_CACHE
from dtr.registry import events
from dtr.registry import locks as gc_locks
from dtr.registry.cache import RepositoryCache
from dtr.registry.changes import ensure_repository
from dtr.registry.errors import RegistryError, codes
from dtr.registry.events import Actor, Event
from dtr.registry.manifests import ParsedManifest, parse_manifest
from dtr.registry.models import Blob, Manifest, ManifestReference, Repository, RepositoryBlob, Tag, Upload
from dtr.registry.names import compute_digest, is_digest
from dtr.registry.uploads import LINK, Uploads
from dtr.storage.base import StorageDriver

if TYPE_CHECKING:
    from aiohttp import web

repositories = cast(Table, Repository.__table__)
blobs = cast(Table, Blob.__table__)
repo_blobs = cast(Table, RepositoryBlob.__table__)
manifests = cast(Table, Manifest.__table__)
refs = cast(Table, ManifestReference.__table__)
tags = cast(Table, Tag.__table__)
uploads = cast(Table, Upload.__table__)

# -- hot statements, built once (SQLAlchemy's statement building and cache-key generation
# were half of the CPU time of a manifest PUT) ---------------------------------------------

_REPOSITORY_ID = text("SELECT id FROM repositories WHERE name = :name")
#: The repository's id as a scalar subquery: the link is then one primary-key lookup, never a scan
#: of every repository linking a popular digest (a join lets the planner pick that on fresh stats).
_REPO_OF_NAME = "(SELECT id FROM repositories WHERE name = :name)"
#: A blob's size and how old its link in the repository is (the driver's ``$n``: name, digest).
_BLOB_LINK = ("SELECT b.size, l.repository_id, extract(epoch FROM now() - l.created_at) AS age "
              "FROM repository_blobs l JOIN blobs b ON b.digest = l.digest "
              "WHERE l.repository_id = (SELECT id FROM repositories WHERE name = $1) AND l.digest = $2")
_RENEW_LINK = "UPDATE repository_blobs SET created_at = now() WHERE repository_id = $1 AND digest = $2 RETURNING digest"
_LINKED_IN = text(f"SELECT 1 FROM repository_blobs WHERE repository_id = {_REPO_OF_NAME} AND digest = :digest")
_LINKED_ANYWHERE = text("SELECT 1 FROM repository_blobs WHERE digest = :digest LIMIT 1")
#: Repositories holding a blob, for a mount without ``from``: the target first, then its namespace.
_HOLDERS = text("SELECT r.name FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id "
                "WHERE l.digest = :digest ORDER BY r.name = :name DESC, "
                "split_part(r.name, '/', 1) = split_part(:name, '/', 1) DESC, r.name LIMIT :limit")
_MOUNT_CANDIDATES = 32
_REPOSITORY = text("SELECT id, immutable_tags FROM repositories WHERE name = :name")
#: The sizes of the blobs a repository links and of the manifests it holds, among ``digests``.
_LINKED_BLOBS = text("SELECT l.digest, b.size FROM repository_blobs l JOIN blobs b ON b.digest = l.digest "
                     "WHERE l.repository_id = :rid AND l.digest = ANY(CAST(:digests AS text[]))")
_PRESENT_MANIFESTS = text("SELECT digest, size FROM manifests WHERE repository_id = :rid "
                          "AND digest = ANY(CAST(:digests AS text[]))")
_INSERT_MANIFEST = text("""
INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject_digest, annotations, payload, size)
VALUES (:rid, :digest, :media_type, :artifact_type, :subject, :annotations, :payload, :size)
ON CONFLICT DO NOTHING RETURNING id
""").bindparams(bindparam("annotations", type_=JSONB), bindparam("payload", type_=LargeBinary))
_INSERT_REFERENCES = text("INSERT INTO manifest_references (manifest_id, digest, kind) SELECT :mid, d, k "
                          "FROM unnest(CAST(:digests AS text[]), CAST(:kinds AS text[])) AS x(d, k)")
_MANIFEST_AGE = text("SELECT id, extract(epoch FROM now() - created_at) AS age FROM manifests "
                     "WHERE repository_id = :rid AND digest = :digest")
_RENEW_MANIFEST = text("UPDATE manifests SET created_at = now() WHERE id = :id")
#: Point a tag at a manifest; returns the digest it pointed at before (the caller holds the tag's
#: lock, dtr.registry.locks, so no rival moves it in between).
_MOVE_TAG = text("""
WITH old AS (SELECT m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
             WHERE t.repository_id = :rid AND t.name = :tag)
INSERT INTO tags (repository_id, name, manifest_id, pushed_by) VALUES (:rid, :tag, :mid, :by)
ON CONFLICT (repository_id, name) DO UPDATE SET manifest_id = excluded.manifest_id, updated_at = now(),
    pushed_by = excluded.pushed_by
RETURNING (SELECT digest FROM old) AS previous
""")
_ADD_TAG = text("INSERT INTO tags (repository_id, name, manifest_id, pushed_by) VALUES (:rid, :tag, :mid, :by) "
                "ON CONFLICT DO NOTHING")
_TAGGED = text("SELECT manifest_id FROM tags WHERE repository_id = :rid AND name = :tag")
_UNTAG_MANIFEST = text("DELETE FROM tags WHERE manifest_id = "
                       "(SELECT id FROM manifests WHERE repository_id = :rid AND digest = :digest) RETURNING name")


@dataclasses.dataclass(frozen=True)
class StoredManifest:
    digest: str
    media_type: str
    payload: bytes
    subject: str | None

    @functools.cached_property
    def headers(self) -> dict[str, str]:
        """The headers of a GET or HEAD answering with this manifest (built once per cached manifest;
        aiohttp copies them into each response)."""
        h = {"Docker-Content-Digest": self.digest, "ETag": f'"{self.digest}"', "Content-Type": self.media_type,
             "Content-Length": str(len(self.payload))}
        if self.subject:
            h["OCI-Subject"] = self.subject
        return h


class MissHandler(Protocol):
    """Serves pulls of repositories whose content comes from elsewhere (``dtr.pullcache``); each
    method answers None for a repository it does not serve, which the registry then serves alone."""

    async def manifest(self, name: str, reference: str) -> StoredManifest | None:
        """The manifest to answer a GET or HEAD with (RegistryError when there is none)."""

    async def blob(self, request: web.Request, name: str, digest: str) -> web.StreamResponse | None:
        """The answer to a GET or HEAD of a blob the repository lacks (None also when it was
        stored meanwhile: the registry serves it)."""

    async def tags(self, name: str) -> list[str] | None:
        """Every tag a client listing ``name`` sees, in ``list_tags``'s order."""

    async def refuse_change(self, name: str) -> None:
        """Raise a RegistryError if pushes and deletes in ``name`` are refused."""


class RegistryService:
    def __init__(self, engine: AsyncEngine, storage: StorageDriver,
                 cache: RepositoryCache[StoredManifest] | None = None, renew_links_after: float = 43200.0) -> None:
        self.engine = engine
        self.storage = storage
        #: A blob link checked (HEAD/GET) when older than this many seconds is renewed, so a
        #: client that finds a blob and skips its upload does not lose it to GC before its
        #: manifest arrives (half the GC grace period).
        self.renew_links_after = renew_links_after
        self.cache: RepositoryCache[StoredManifest] = cache or RepositoryCache(MANIFEST_CACHE)
        #: Subscribers told (repository, tag) when a manifest is served by tag (GET or HEAD); they
        #: must not block (queue work, don't do it). Changes are announced through the outbox.
        self.tag_pulled: list[Callable[[str, str], None]] = []
        #: Checks of a pull by tag, given (repository, tag, the tag's manifest digest) before the
        #: manifest is served (GET or HEAD); one refuses by raising a RegistryError (DENIED).
        self.pull_gates: list[Callable[[str, str, str], Awaitable[None]]] = []
        #: Asked first on every pull of a manifest, on a blob miss and before a push or delete.
        self.misses: MissHandler | None = None
        self.uploads = Uploads(engine, storage)

    # -- repositories ---------------------------------------------------------------------

    async def repo_id(self, conn: AsyncConnection, name: str) -> int | None:
        return (await conn.execute(_REPOSITORY_ID, {"name": name})).scalar()

    async def require_repo(self, conn: AsyncConnection, name: str) -> int:
        rid = await self.repo_id(conn, name)
        if rid is None:
            raise RegistryError(codes.NAME_UNKNOWN, detail={"name": name})
        return rid

    # -- blobs ----------------------------------------------------------------------------

    async def blob_size(self, name: str, digest: str) -> int | None:
        """Size of ``digest`` if repository ``name`` may read it, else None; renews a stale link.
        While the database is unavailable, a blob the repository served lately keeps its size."""
        try:
            size = await self._blob_size(name, digest)
        except DatabaseUnavailable:
            if (size := self.cache.blob_while_away(name, digest)) is None:
                raise
            return size
        if size is not None:
            self.cache.blob_served(name, digest, size)
        return size

    async def _blob_size(self, name: str, digest: str) -> int | None:
        """On the driver (``dtr.db.driver``): every HEAD and GET of a blob asks this."""
        async with driver_connection(self.engine) as conn:
            row = await conn.fetchrow(_BLOB_LINK, name, digest)
            if row is None or row["age"] <= self.renew_links_after:
                return int(row["size"]) if row is not None else None
            found = await conn.fetchval(_RENEW_LINK, row["repository_id"], digest) is not None
            return int(row["size"]) if found else None  # collected in between: gone

    async def delete_blob(self, name: str, digest: str, actor: Actor) -> None:
        """Unlink the blob from the repository; the bytes stay for garbage collection."""
        async with self.engine.begin() as conn:
            rid = await self.require_repo(conn, name)
            res = await conn.execute(
                delete(repo_blobs).where(repo_blobs.c.repository_id == rid, repo_blobs.c.digest == digest)
            )
            if res.rowcount == 0:
                raise RegistryError(codes.BLOB_UNKNOWN, detail={"digest": digest})
            await events.record(conn, actor, [Event(events.BLOB_UNLINKED, name, digest=digest)])

    async def mount(self, name: str, digest: str, source: str | None,
                    may_pull: Callable[[str], Awaitable[bool]] | None, actor: Actor) -> bool:
        """Link ``digest`` into ``name`` from ``source`` or, without one, from a repository holding it.

        ``may_pull`` says which repositories the requester may take it from (None: any); False,
        and nothing learnt about the others, when none of those holds the blob. Without a
        source, the target's namespace is tried first and at most _MOUNT_CANDIDATES holders.
        """
        if source is not None and may_pull is not None and not await may_pull(source):
            return False
        if source is None and may_pull is not None:
            async with self.engine.connect() as conn:
                holders = (await conn.execute(_HOLDERS, {"digest": digest, "name": name,
                                                         "limit": _MOUNT_CANDIDATES})).scalars().all()
            for holder in holders:
                if await may_pull(holder):
                    source = holder
                    break
            else:
                return False
        async with self.engine.begin() as conn:
            # GC safety (dtr.jobs.gc): the blob's shared lock from the check until the link commits.
            await gc_locks.share(conn, blobs=[digest])
            if source is not None:
                found = (await conn.execute(_LINKED_IN, {"name": source, "digest": digest})).scalar()
            else:
                found = (await conn.execute(_LINKED_ANYWHERE, {"digest": digest})).scalar()
            if found is None:
                return False
            rid, created = await ensure_repository(conn, name)
            await conn.execute(LINK, {"rid": rid, "digest": digest})
            await events.record(conn, actor, created)
            return True

    # -- uploads --------------------------------------------------------------------------

    # -- manifests ------------------------------------------------------------------------

    async def get_manifest(self, name: str, reference: str) -> StoredManifest:
        cached = self.cache.get(name, reference)
        if cached is not None:
            return cached
        generation = self.cache.generation()
        cols = (manifests.c.digest, manifests.c.media_type, manifests.c.payload, manifests.c.subject_digest)
        if is_digest(reference):
            q = (select(*cols).select_from(manifests.join(repositories, repositories.c.id == manifests.c.repository_id))
                 .where(repositories.c.name == name, manifests.c.digest == reference))
        else:
            q = (select(*cols)
                 .select_from(tags.join(repositories, repositories.c.id == tags.c.repository_id)
                              .join(manifests, manifests.c.id == tags.c.manifest_id))
                 .where(repositories.c.name == name, tags.c.name == reference))
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(q)).first()
                if row is None:
                    if await self.repo_id(conn, name) is None:
                        raise RegistryError(codes.NAME_UNKNOWN, detail={"name": name})
                    raise RegistryError(codes.MANIFEST_UNKNOWN, detail={"reference": reference})
        except DatabaseUnavailable:
            if (cached := self.cache.while_away(name, reference)) is None:
                raise
            return cached
        found = StoredManifest(row.digest, row.media_type, bytes(row.payload), row.subject_digest)
        self.cache.put(name, reference, found, generation)
        return found

    async def pull_manifest(self, name: str, reference: str) -> StoredManifest:
        """The manifest a pull is answered with: the miss handler's for a repository it serves."""
        if self.misses is not None and (found := await self.misses.manifest(name, reference)) is not None:
            return found
        return await self.get_manifest(name, reference)

    async def put_manifest(self, name: str, reference: str, body: bytes, content_type: str | None, actor: Actor,
                           also: Sequence[Event] = ()) -> tuple[str, ParsedManifest]:
        """Store a manifest (and point the tag at it); everything it references must be present.
        ``also``: events of the caller's recorded with the put's, in its transaction (a promotion's)."""
        parsed = parse_manifest(body, content_type)
        if is_digest(reference):
            algo = reference.partition(":")[0]
            digest = compute_digest(body, algo)
            if digest != reference:
                raise RegistryError(codes.DIGEST_INVALID, detail={"expected": reference, "actual": digest})
        else:
            digest = compute_digest(body)
        async with self.engine.begin() as conn:
            rid, immutable, changes = await self._manifest_repo(conn, name, create=True)
            # GC safety (dtr.jobs.gc): shared locks on what this manifest needs and on itself,
            # from the existence checks until commit; and the tag's own lock (events in order).
            tag = None if is_digest(reference) else reference
            await gc_locks.share(conn, blobs=parsed.blobs, manifests=[(rid, d) for d in (*parsed.manifests, digest)],
                                 tag=None if tag is None else (rid, tag))
            await self._check_references(conn, rid, parsed)
            mid = (await conn.execute(_INSERT_MANIFEST, {
                "rid": rid, "digest": digest, "media_type": parsed.media_type, "artifact_type": parsed.artifact_type,
                "subject": parsed.subject, "annotations": parsed.annotations, "payload": body, "size": len(body),
            })).scalar()
            if mid is not None:
                if parsed.blobs or parsed.manifests:
                    await conn.execute(_INSERT_REFERENCES, {
                        "mid": mid, "digests": [*parsed.blobs, *parsed.manifests],
                        "kinds": ["blob"] * len(parsed.blobs) + ["manifest"] * len(parsed.manifests)})
                changes.append(Event(events.MANIFEST_PUSHED, name, tag, digest, {"mediaType": parsed.media_type}))
            else:
                mid = await self._renew_manifest(conn, rid, digest)
            if tag is not None:
                changes.append(await self._tag(conn, rid, name, tag, mid, digest, immutable, actor.name))
            await events.record(conn, actor, [*changes, *also])
        if tag is not None:
            self.cache.invalidate(name)
        return digest, parsed

    async def _renew_manifest(self, conn: AsyncConnection, rid: int, digest: str) -> int:
        """The id of a manifest pushed again; renewed (as a checked blob link is) when older than
        ``renew_links_after``, so GC's grace period starts over for a client that re-pushes it
        untagged, as a child of an index about to follow."""
        row = (await conn.execute(_MANIFEST_AGE, {"rid": rid, "digest": digest})).one()
        if row.age > self.renew_links_after:
            await conn.execute(_RENEW_MANIFEST, {"id": row.id})
        return int(row.id)

    async def _manifest_repo(self, conn: AsyncConnection, name: str, create: bool
                             ) -> tuple[int, bool, list[Event]]:
        """The repository's id, whether its tags are immutable, and the events of its creation
        (created if missing and ``create``, else NAME_UNKNOWN)."""
        row = (await conn.execute(_REPOSITORY, {"name": name})).first()
        if row is not None:
            return int(row.id), bool(row.immutable_tags), []
        if not create:
            raise RegistryError(codes.NAME_UNKNOWN, detail={"name": name})
        rid, created = await ensure_repository(conn, name)
        return rid, False, created

    async def _tag(self, conn: AsyncConnection, rid: int, name: str, tag: str, mid: int, digest: str,
                   immutable: bool, pushed_by: str) -> Event:
        """Point ``tag`` at manifest ``mid`` (``digest``), pushed by account ``pushed_by``; its event.
        In a repository with immutable tags, only a new tag (or the same manifest again) is
        accepted, else DENIED and the transaction rolls back."""
        values = {"rid": rid, "tag": tag, "mid": mid, "by": pushed_by[:255]}
        if not immutable:
            previous = (await conn.execute(_MOVE_TAG, values)).scalar()
            if previous is not None and previous != digest:
                return Event(events.TAG_MOVED, name, tag, digest, {"previous": previous})
            return Event(events.TAG_PUSHED, name, tag, digest)
        await conn.execute(_ADD_TAG, values)
        current = (await conn.execute(_TAGGED, values)).scalar()  # a new statement: sees a rival's commit
        if current != mid:
            raise _immutable(name, tag)
        return Event(events.TAG_PUSHED, name, tag, digest)

    async def _check_references(self, conn: AsyncConnection, rid: int, parsed: ParsedManifest) -> None:
        """Every blob and child manifest ``parsed`` names is in the repository (else
        MANIFEST_BLOB_UNKNOWN) with the size its descriptor says (else MANIFEST_INVALID): the
        existence query returns the sizes, so this costs no further round-trip."""
        sizes: dict[str, int] = {}
        for kind, digests, query in (("blob", parsed.blobs, _LINKED_BLOBS),
                                     ("manifest", parsed.manifests, _PRESENT_MANIFESTS)):
            if digests:
                have = {row.digest: int(row.size) for row in await conn.execute(
                    query, {"rid": rid, "digests": list(digests)})}
                missing = [d for d in digests if d not in have]
                if missing:
                    raise _unknown_references(missing, kind)
                sizes.update(have)
        wrong = [RegistryError(codes.MANIFEST_INVALID, detail={"descriptor": where, "digest": digest, "size": size,
                                                              "stored": sizes[digest]},
                               message=f"manifest invalid: {where}: size {size} does not match the stored "
                                       f"{'manifest' if where.startswith('manifests') else 'blob'}'s "
                                       f"{sizes[digest]} bytes")
                 for where, digest, size in parsed.sizes if sizes.get(digest, size) != size]
        if wrong:
            raise RegistryError(wrong[0].code, wrong[0].detail, wrong[0].message, more=wrong[1:])

    async def delete_manifest(self, name: str, reference: str, actor: Actor) -> str:
        """By digest: delete the manifest (and its tags). By tag: delete the tag only.

        Returns the digest of the manifest deleted or untagged.
        """
        async with self.engine.begin() as conn:
            rid, immutable, _ = await self._manifest_repo(conn, name, create=False)
            if immutable:
                tagged = select(tags.c.name).where(tags.c.repository_id == rid)
                if is_digest(reference):
                    tagged = tagged.join(manifests, manifests.c.id == tags.c.manifest_id).where(
                        manifests.c.digest == reference)
                else:
                    tagged = tagged.where(tags.c.name == reference)
                tag = (await conn.execute(tagged.order_by(tags.c.name).limit(1))).scalar()
                if tag is not None:
                    raise _immutable(name, tag)
            if is_digest(reference):
                untagged = sorted((await conn.execute(_UNTAG_MANIFEST, {"rid": rid, "digest": reference})).scalars())
                digest = (await conn.execute(
                    delete(manifests).where(manifests.c.repository_id == rid, manifests.c.digest == reference)
                    .returning(manifests.c.digest)
                )).scalar()
                change = Event(events.MANIFEST_DELETED, name, digest=digest, detail={"tags": untagged})
            else:
                mid = (await conn.execute(delete(tags).where(tags.c.repository_id == rid, tags.c.name == reference)
                                          .returning(tags.c.manifest_id))).scalar()
                digest = None if mid is None else (await conn.execute(
                    select(manifests.c.digest).where(manifests.c.id == mid))).scalar()
                change = Event(events.TAG_DELETED, name, reference, digest)
            if digest is None:
                raise RegistryError(codes.MANIFEST_UNKNOWN, detail={"reference": reference})
            await events.record(conn, actor, [change])
        self.cache.invalidate(name)
        return str(digest)

    async def platform_child(self, name: str, index: StoredManifest, accepts: Callable[[str], bool]
                             ) -> StoredManifest | None:
        """For a client that cannot take a list: its linux/amd64 image, as the reference registry does."""
        parsed = parse_manifest(index.payload, index.media_type)
        for digest, os_, arch, _variant in parsed.platforms:
            if os_ == "linux" and arch == "amd64":
                try:
                    child = await self.get_manifest(name, digest)
                except RegistryError:
                    return None
                return child if accepts(child.media_type) else None
        return None

    # -- listings -------------------------------------------------------------------------

    async def list_tags(self, name: str, n: int | None, last: str | None) -> tuple[list[str], bool]:
        """Tags after ``last`` in the spec's lexical order (case-insensitive; byte order breaks ties).

        The flag says whether more follow.
        """
        async with self.engine.connect() as conn:
            rid = await self.require_repo(conn, name)
            folded = func.lower(tags.c.name)
            q = select(tags.c.name).where(tags.c.repository_id == rid).order_by(folded, tags.c.name)
            if last:
                q = q.where(tuple_(folded, tags.c.name) > tuple_(last.lower(), last))
            if n is not None:
                q = q.limit(n + 1)
            names = list((await conn.execute(q)).scalars())
        if n is not None and len(names) > n:
            return names[:n], True
        return names, False

    async def pull_tags(self, name: str, n: int | None, last: str | None) -> tuple[list[str], bool]:
        """``list_tags`` as a pulling client sees it: a repository served by ``misses`` (a
        pull-through cache) lists what it serves, cached or not."""
        every = await self.misses.tags(name) if self.misses is not None else None
        if every is None:
            return await self.list_tags(name, n, last)
        if last:
            after = (last.lower(), last)
            every = [t for t in every if (t.lower(), t) > after]
        if n is not None and len(every) > n:
            return every[:n], True
        return every, False

    async def catalog(self, n: int | None, last: str | None) -> tuple[list[str], bool]:
        q = select(repositories.c.name).order_by(repositories.c.name)
        if last:
            q = q.where(repositories.c.name > last)
        if n is not None:
            q = q.limit(n + 1)
        async with self.engine.connect() as conn:
            names = list((await conn.execute(q)).scalars())
        if n is not None and len(names) > n:
            return names[:n], True
        return names, False

    async def referrers(self, name: str, digest: str, artifact_type: str | None, after: int = 0,
                        limit: int | None = None) -> list[tuple[int, dict[str, Any]]]:
        """(cursor, descriptor) of the manifests in ``name`` whose subject is ``digest``, in push order.

        ``after`` is the cursor of the last descriptor already returned (pagination).
        """
        q = (select(manifests.c.id, manifests.c.media_type, manifests.c.digest, manifests.c.size,
                    manifests.c.artifact_type, manifests.c.annotations)
             .select_from(manifests.join(repositories, repositories.c.id == manifests.c.repository_id))
             .where(and_(repositories.c.name == name, manifests.c.subject_digest == digest,
                         manifests.c.id > after))
             .order_by(manifests.c.id))
        if artifact_type is not None:
            q = q.where(manifests.c.artifact_type == artifact_type)
        if limit is not None:
            q = q.limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        out = []
        for r in rows:
            d: dict[str, Any] = {"mediaType": r.media_type, "digest": r.digest, "size": r.size}
            if r.artifact_type:
                d["artifactType"] = r.artifact_type
            if r.annotations:
                d["annotations"] = r.annotations
            out.append((int(r.id), d))
        return out


def _immutable(name: str, tag: str) -> RegistryError:
    return RegistryError(codes.DENIED, detail={"tag": tag},
                         message=f"tag {tag} in {name} is immutable: it cannot be moved or deleted "
                                 f"(push a new tag, or turn off immutableTags on the repository)")


def _unknown_references(missing: Sequence[str], kind: str) -> RegistryError:
    """One MANIFEST_BLOB_UNKNOWN per missing digest (the spec's code for blobs and child manifests alike)."""
    errors = [RegistryError(codes.MANIFEST_BLOB_UNKNOWN, detail={"digest": d},
                            message=f"{kind} unknown to registry: {d}") for d in missing]
    return RegistryError(errors[0].code, errors[0].detail, errors[0].message, more=errors[1:])

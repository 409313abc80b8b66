"""``dtr fsck``: do the registry's tables agree with storage, and with each other? (docs/fsck.md)

Checked a page at a time (keyset pagination, a short snapshot each: it runs beside a serving
registry, in flat memory): manifests (body size; with ``deep`` its digest, hashed by Postgres;
blobs linked and children present in the repository), tags and links pointing nowhere, blob
rows against their files (size; with ``deep`` the streamed digest), upload rows against storage,
and (unless one repository is checked) orphaned blob files and upload directories older than
the grace period.

``repair`` does what is safe, through the registry's own writes with an ``Actor`` and outbox
events: drops rows pointing nowhere, blob rows whose bytes are gone or corrupt (with their
links, so clients upload the blob again; corrupt bytes go too), upload rows without storage and
orphans; corrects a recorded size whose bytes verify. Blob rows and blob files change only under
the blob's exclusive GC lock (``dtr.registry.locks``) after a re-check, so a push in flight is
never hurt; a verified blob row is never deleted. A manifest missing a blob or child cannot be
repaired: it is named (repository:tag and digest) for a re-push.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.ops.tasks import bounded
from dtr.registry import events, locks
from dtr.registry.events import SYSTEM, Actor, Event
from dtr.registry.names import blob_path, is_valid_digest, upload_path
from dtr.storage.base import FileInfo, PathNotFoundError, StorageDriver, StorageError

PAGE = 500
#: Storage operations (stat, hash, delete) in flight at once.
CONCURRENCY = 16
#: Images named per broken blob, at most.
MAX_IMAGES = 20

#: A progress report: (done, total or None, what is being done).
Progress = Callable[[int, int | None, str], None]

#: The digest of a manifest's stored body, computed in Postgres.
_BODY_DIGEST = ("(CASE split_part(m.digest, ':', 1) WHEN 'sha256' THEN 'sha256:' || encode(sha256(m.payload), 'hex') "
                "WHEN 'sha512' THEN 'sha512:' || encode(sha512(m.payload), 'hex') END)")
_IN_REPO = "(CAST(:rid AS bigint) IS NULL OR {} = :rid)"

_MANIFESTS = text(f"""
SELECT m.id, coalesce(r.name, '#' || m.repository_id) AS repository, m.digest, m.size,
       octet_length(m.payload) AS length, CASE WHEN :deep THEN {_BODY_DIGEST} ELSE m.digest END AS body_digest
FROM manifests m LEFT JOIN repositories r ON r.id = m.repository_id
WHERE m.id > :after AND {_IN_REPO.format("m.repository_id")} ORDER BY m.id LIMIT :limit
""")
#: References of the manifests ``ids`` that their repository lacks.
_MISSING_REFS = text("""
SELECT x.manifest_id, x.digest, x.kind,
       x.kind = 'blob' AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = x.digest) AS no_row
FROM manifest_references x JOIN manifests m ON m.id = x.manifest_id
WHERE x.manifest_id = ANY(CAST(:ids AS bigint[])) AND CASE WHEN x.kind = 'blob'
  THEN NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.repository_id = m.repository_id AND l.digest = x.digest)
  ELSE NOT EXISTS (SELECT 1 FROM manifests c WHERE c.repository_id = m.repository_id AND c.digest = x.digest) END
ORDER BY x.manifest_id, x.digest
""")
#: The names of manifests: repository, digest, and its tags and the tags of indexes holding it.
_IMAGES = text("""
SELECT m.id, coalesce(r.name, '#' || m.repository_id) AS repository, m.digest, ARRAY(
    SELECT t.name FROM tags t WHERE t.manifest_id = m.id
  UNION
    SELECT t.name FROM manifest_references p JOIN manifests pm ON pm.id = p.manifest_id
    JOIN tags t ON t.manifest_id = pm.id
    WHERE p.kind = 'manifest' AND p.digest = m.digest AND pm.repository_id = m.repository_id
  ORDER BY 1) AS tags
FROM manifests m LEFT JOIN repositories r ON r.id = m.repository_id
WHERE m.id = ANY(CAST(:ids AS bigint[])) ORDER BY m.id
""")
_USERS = text(f"""
SELECT DISTINCT x.manifest_id FROM manifest_references x JOIN manifests m ON m.id = x.manifest_id
WHERE x.digest = :digest AND {_IN_REPO.format("m.repository_id")} ORDER BY 1 LIMIT :limit
""")
_TAGS = text(f"""
SELECT t.repository_id, t.name AS key, coalesce(r.name, '#' || t.repository_id) AS repository, t.manifest_id,
       NOT EXISTS (SELECT 1 FROM manifests m WHERE m.id = t.manifest_id) AS dangling
FROM tags t LEFT JOIN repositories r ON r.id = t.repository_id
WHERE (t.repository_id, t.name) > (:after_repo, :after) AND {_IN_REPO.format("t.repository_id")}
ORDER BY t.repository_id, t.name LIMIT :limit
""")
_LINKS = text(f"""
SELECT l.repository_id, l.digest AS key, coalesce(r.name, '#' || l.repository_id) AS repository,
       NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = l.digest) AS dangling
FROM repository_blobs l LEFT JOIN repositories r ON r.id = l.repository_id
WHERE (l.repository_id, l.digest) > (:after_repo, :after) AND {_IN_REPO.format("l.repository_id")}
ORDER BY l.repository_id, l.digest LIMIT :limit
""")
_BLOBS = text("""
SELECT b.digest, b.size FROM blobs b WHERE b.digest > :after AND (CAST(:rid AS bigint) IS NULL OR EXISTS (
    SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest AND l.repository_id = :rid))
ORDER BY b.digest LIMIT :limit
""")
_UPLOADS = text(f"SELECT u.id FROM uploads u WHERE u.id > :after AND {_IN_REPO.format('u.repository_id')} "
                "ORDER BY u.id LIMIT :limit")
_COUNT = {name: text(f"SELECT count(*) FROM {table} WHERE {_IN_REPO.format(column)}") for name, table, column in (
    ("manifests", "manifests", "repository_id"), ("tags", "tags", "repository_id"),
    ("links", "repository_blobs", "repository_id"), ("uploads", "uploads", "repository_id"),
    ("blobs", "blobs b", "(SELECT l.repository_id FROM repository_blobs l WHERE l.digest = b.digest "
                         "AND l.repository_id = :rid)"))}
_KNOWN_BLOBS = text("SELECT digest FROM blobs WHERE digest = ANY(CAST(:digests AS text[]))")
_KNOWN_UPLOADS = text("SELECT id FROM uploads WHERE id = ANY(CAST(:ids AS uuid[]))")
_LOCK_BLOB = text("SELECT pg_try_advisory_xact_lock(:k)")

# -- repairs (each in the caller's transaction) ----------------------------------------------
_FIX_MANIFEST_SIZE = text(f"UPDATE manifests m SET size = octet_length(m.payload) "
                          f"WHERE m.id = :id AND m.digest = {_BODY_DIGEST} RETURNING m.size")
_FIX_BLOB_SIZE = text("UPDATE blobs SET size = :size WHERE digest = :digest")
_DROP_TAG = text("DELETE FROM tags t WHERE t.repository_id = :rid AND t.name = :key "
                 "AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.id = t.manifest_id)")
_DROP_LINK = text("DELETE FROM repository_blobs l WHERE l.repository_id = :rid AND l.digest = :key "
                  "AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = l.digest)")
_DROP_LINKS = text("DELETE FROM repository_blobs l USING repositories r WHERE l.digest = :digest "
                   "AND r.id = l.repository_id RETURNING r.name")
_DROP_BLOB = text("DELETE FROM blobs WHERE digest = :digest")
_DROP_UPLOAD = text("DELETE FROM uploads WHERE id = :id")


@dataclasses.dataclass
class Problem:
    """One inconsistency. ``subject``: what is wrong (``repo@digest``, a digest, a path, an upload id)."""

    kind: str
    subject: str
    message: str
    repairable: bool
    #: What an admin should do about it, when fsck cannot.
    action: str = ""
    #: The images (``repository:tag``, else ``repository@digest``) it breaks.
    images: list[str] = dataclasses.field(default_factory=list)
    repaired: str = ""

    def json(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "message": self.message, "images": self.images,
                "repairable": self.repairable, "repaired": bool(self.repaired), "repair": self.repaired or None,
                "action": self.action or None}


@dataclasses.dataclass
class Report:
    deep: bool
    repair: bool
    repository: str | None
    checked: dict[str, int] = dataclasses.field(default_factory=dict)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def left(self) -> list[Problem]:
        """The problems not repaired."""
        return [p for p in self.problems if not p.repaired]

    def json(self) -> dict[str, Any]:
        return {"clean": not self.problems, "deep": self.deep, "repair": self.repair, "repository": self.repository,
                "checked": self.checked, "problems": [p.json() for p in self.problems],
                "repaired": len(self.problems) - len(self.left), "unrepaired": len(self.left), "notes": self.notes}


@dataclasses.dataclass(frozen=True)
class Options:
    deep: bool = False
    repair: bool = False
    #: Check only this repository (its manifests, tags, links, the blobs it links, its uploads).
    repository: str | None = None
    #: Orphans younger than this (seconds) are left alone: they may belong to a push in flight.
    grace: float = 86400.0
    actor: Actor = SYSTEM


class UnknownRepository(LookupError):
    """``Options.repository`` names no repository."""


async def check(engine: AsyncEngine, storage: StorageDriver, options: Options,
                progress: Progress = lambda done, total, what: None) -> Report:
    """Run every check (and with ``options.repair`` the safe repairs); what was found."""
    rid = None
    if options.repository is not None:
        async with engine.connect() as conn:
            rid = (await conn.execute(text("SELECT id FROM repositories WHERE name = :n"),
                                      {"n": options.repository})).scalar()
        if rid is None:
            raise UnknownRepository(f"no repository {options.repository}")
    run = _Run(engine, storage, options, rid, progress)
    await run.manifests()
    await run.dangling()
    await run.blobs()
    await run.uploads()
    if rid is None:
        await run.orphan_blobs()
        await run.orphan_uploads()
    else:
        run.report.notes.append("orphaned objects are not looked for when checking one repository")
    return run.report


def _image_names(repository: str, digest: str, tags: Sequence[str]) -> list[str]:
    return [f"{repository}:{t}" for t in tags] or [f"{repository}@{digest}"]


async def _hash(storage: StorageDriver, path: str, algorithm: str) -> tuple[str, int]:
    """The digest and size of the object at ``path``, streamed."""
    hasher, size = hashlib.new(algorithm), 0
    loop = asyncio.get_running_loop()
    async for chunk in storage.reader(path):
        size += len(chunk)
        await loop.run_in_executor(None, hasher.update, chunk)
    return f"{algorithm}:{hasher.hexdigest()}", size


class _Run:
    def __init__(self, engine: AsyncEngine, storage: StorageDriver, options: Options, rid: int | None,
                 progress: Progress) -> None:
        self.engine, self.storage, self.o, self.rid, self.progress = engine, storage, options, rid, progress
        self.report = Report(options.deep, options.repair, options.repository)

    def _found(self, problem: Problem) -> Problem:
        self.report.problems.append(problem)
        return problem

    async def _bounded(self, items: Sequence[Any], fn: Callable[[Any], Awaitable[None]]) -> None:
        """``fn`` on every item, CONCURRENCY at a time; a storage failure is reported, not fatal."""
        async def one(item: Any) -> None:
            try:
                await fn(item)
            except StorageError as e:
                self._found(Problem("storage_error", e.path, str(e), False,
                                    action="check the storage backend, then run dtr fsck again"))

        await bounded(items, one, CONCURRENCY)

    async def _pages(self, what: str, query: Any, key: Callable[[Any], dict[str, Any]], start: dict[str, Any],
                     **params: Any) -> AsyncIterator[Sequence[Any]]:
        """Pages of ``query`` by keyset (``key`` of a page's last row gives the next page's
        parameters), each read in a snapshot of its own; counts them in ``checked[what]``."""
        async with self.engine.connect() as conn:
            total = (await conn.execute(_COUNT[what], {"rid": self.rid})).scalar_one()
            await conn.commit()
            done, after = 0, start
            self.progress(0, total, f"checking {what}")
            while page := (await conn.execute(query, {**params, **after, "rid": self.rid, "limit": PAGE})).all():
                await conn.commit()
                yield page
                done += len(page)
                after = key(page[-1])
                self.progress(done, max(done, total), f"checking {what}")
        self.report.checked[what] = done

    async def _images(self, conn: AsyncConnection, ids: Sequence[int]) -> dict[int, list[str]]:
        if not ids:
            return {}
        rows = await conn.execute(_IMAGES, {"ids": list(ids)})
        return {r.id: _image_names(r.repository, r.digest, r.tags) for r in rows}

    # -- manifests ----------------------------------------------------------------------

    async def manifests(self) -> None:
        async for page in self._pages("manifests", _MANIFESTS, lambda r: {"after": r.id}, {"after": 0},
                                      deep=self.o.deep):
            bad_size = [r for r in page if r.size != r.length]
            bad_digest = [r for r in page if r.body_digest != r.digest]
            async with self.engine.connect() as conn:
                missing = (await conn.execute(_MISSING_REFS, {"ids": [r.id for r in page]})).all()
                names = await self._images(conn, sorted({r.id for r in (*bad_size, *bad_digest)} |
                                                        {x.manifest_id for x in missing}))
                await conn.commit()
            for r in bad_digest:
                self._found(Problem("manifest_digest", r.digest, f"{names[r.id][0]}: the stored manifest does not hash "
                                    f"to its digest ({r.body_digest})", False, images=names[r.id],
                                    action=f"delete {r.repository}@{r.digest} and push the image again"))
            for r in bad_size:
                p = self._found(Problem("manifest_size", r.digest, f"{names[r.id][0]}: recorded size {r.size}, "
                                        f"stored manifest {r.length} bytes", r.body_digest == r.digest,
                                        images=names[r.id]))
                if self.o.repair and p.repairable:
                    async with self.engine.begin() as conn:
                        if (await conn.execute(_FIX_MANIFEST_SIZE, {"id": r.id})).first() is not None:
                            p.repaired = f"size set to {r.length} (the body verifies)"
            for x in missing:
                why = "no blob record" if x.no_row else "not linked in its repository" if x.kind == "blob" \
                    else "not in its repository"
                self._incomplete(names[x.manifest_id], x.kind, x.digest, why)

    def _incomplete(self, images: list[str], kind: str, digest: str, why: str) -> None:
        """An image that cannot be pulled whole: only pushing it again mends it."""
        self._found(Problem("manifest_incomplete", images[0], f"{', '.join(images)} needs {kind} {digest}: {why}",
                            False, action=f"push {images[0]} again", images=images))

    # -- rows pointing nowhere ------------------------------------------------------------

    async def dangling(self) -> None:
        """Tags whose manifest and links whose blob row are gone (only a damaged database has them)."""
        for what, query, drop in (("tag", _TAGS, _DROP_TAG), ("link", _LINKS, _DROP_LINK)):
            async for page in self._pages(f"{what}s", query, lambda r: {"after_repo": r.repository_id, "after": r.key},
                                          {"after_repo": 0, "after": ""}):
                for r in (r for r in page if r.dangling):
                    tag = what == "tag"
                    p = self._found(Problem(
                        f"{what}_dangling", f"{r.repository}:{r.key}" if tag else f"{r.repository}@{r.key}",
                        f"tag {r.repository}:{r.key} points to manifest #{r.manifest_id}, which does not exist" if tag
                        else f"{r.repository} links blob {r.key}, which has no blob record", True))
                    if not self.o.repair:
                        continue
                    async with self.engine.begin() as conn:
                        if (await conn.execute(drop, {"rid": r.repository_id, "key": r.key})).rowcount:
                            await events.record(conn, self.o.actor, [
                                Event(events.TAG_DELETED, r.repository, r.key, detail={"fsck": p.kind}) if tag else
                                Event(events.BLOB_UNLINKED, r.repository, digest=r.key, detail={"fsck": p.kind})])
                            p.repaired = f"{what} deleted"

    # -- blobs ----------------------------------------------------------------------------

    async def blobs(self) -> None:
        async for page in self._pages("blobs", _BLOBS, lambda r: {"after": r.digest}, {"after": ""}):
            await self._bounded(page, lambda r: self._blob(r.digest, int(r.size)))

    async def _blob_fault(self, digest: str, size: int) -> tuple[str, str] | None:
        """(kind, message) of what is wrong with the blob's bytes, or None when they are right."""
        path = blob_path(digest)
        try:
            info = await self.storage.stat(path)
        except PathNotFoundError:
            return "blob_missing", f"blob {digest}: its file {path} is missing from storage"
        if info.size != size:
            return "blob_size", f"blob {digest}: recorded size {size}, stored file {info.size} bytes"
        if self.o.deep:
            actual, read = await _hash(self.storage, path, digest.partition(":")[0])
            if actual != digest or read != size:
                return "blob_digest", f"blob {digest}: the stored file is corrupt (it hashes to {actual})"
        return None

    async def _blob(self, digest: str, size: int) -> None:
        if not is_valid_digest(digest):
            self._found(Problem("blob_invalid", digest, f"blob record with an invalid digest {digest!r}", False,
                                action="delete the row by hand"))
            return
        fault = await self._blob_fault(digest, size)
        if fault is None:
            return
        async with self.engine.connect() as conn:
            users = list((await conn.execute(_USERS, {"digest": digest, "rid": self.rid,
                                                      "limit": MAX_IMAGES})).scalars())
            names = await self._images(conn, users)
        images = sorted({n for ns in names.values() for n in ns})
        p = self._found(Problem(fault[0], digest, fault[1] + (f" (used by {', '.join(images)})" if images else ""),
                                True, images=images))
        if not self.o.repair or await self._repair_blob(p, digest, size):
            for ns in names.values():
                self._incomplete(ns, "blob", digest, "its bytes are missing or corrupt")

    async def _repair_blob(self, p: Problem, digest: str, size: int) -> bool:
        """A size that verifies is corrected; otherwise the row and its links go (the bytes too if
        corrupt), under the blob's exclusive lock after a re-check, so clients upload it again.
        Whether the blob's bytes are still bad (its images broken)."""
        path = blob_path(digest)
        if p.kind == "blob_size":
            try:
                actual, read = await _hash(self.storage, path, digest.partition(":")[0])
            except PathNotFoundError:
                actual, read = "", 0
            if actual == digest:
                async with self.engine.begin() as conn:
                    await conn.execute(_FIX_BLOB_SIZE, {"digest": digest, "size": read})
                p.repaired = f"size set to {read} (the bytes verify)"
                return False
        async with self.engine.begin() as conn:
            if not (await conn.execute(_LOCK_BLOB, {"k": locks.blob_key(digest)})).scalar():
                p.action = "in use by a push: run fsck --repair again"
                return True
            if await self._blob_fault(digest, size) is None:
                p.repaired = "none needed: healthy when read again"
                return False
            repositories = list((await conn.execute(_DROP_LINKS, {"digest": digest})).scalars())
            await conn.execute(_DROP_BLOB, {"digest": digest})
            await events.record(conn, self.o.actor, [Event(events.BLOB_UNLINKED, name, digest=digest,
                                                           detail={"fsck": p.kind}) for name in repositories])
            if p.kind != "blob_missing":
                await self._delete(path)
        p.repaired = f"blob record and {len(repositories)} links deleted" + \
            ("" if p.kind == "blob_missing" else ", corrupt bytes deleted")
        return True

    async def _delete(self, path: str) -> None:
        with contextlib.suppress(PathNotFoundError):
            await self.storage.delete(path)

    # -- uploads --------------------------------------------------------------------------

    async def uploads(self) -> None:
        async def one(upload_id: uuid.UUID) -> None:
            try:
                await self.storage.stat(f"/uploads/{upload_id}")
                return
            except PathNotFoundError:
                pass
            p = self._found(Problem("upload_missing", str(upload_id),
                                    f"upload {upload_id} has a record but nothing in storage", True))
            if self.o.repair:
                async with self.engine.begin() as conn:
                    await conn.execute(_DROP_UPLOAD, {"id": upload_id})
                p.repaired = "upload record deleted"

        async for page in self._pages("uploads", _UPLOADS, lambda r: {"after": r.id},
                                      {"after": uuid.UUID(int=0)}):
            await self._bounded([r.id for r in page], one)

    # -- orphans --------------------------------------------------------------------------

    def _old(self, info: FileInfo | None, cutoff: dt.datetime) -> bool:
        return info is None or info.modified is None or info.modified < cutoff

    async def _walk(self, path: str) -> AsyncIterator[list[FileInfo]]:
        """The objects under ``path`` (none if it does not exist), a page at a time."""
        page: list[FileInfo] = []
        try:
            async for info in self.storage.walk(path):
                page.append(info)
                if len(page) == PAGE:
                    yield page
                    page = []
        except PathNotFoundError:
            pass
        if page:
            yield page

    async def orphan_blobs(self) -> None:
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.o.grace)
        seen = 0
        async for page in self._walk("/blobs"):
            found = [(_digest_of_path(i.path), i) for i in page]
            async with self.engine.connect() as conn:
                known = set((await conn.execute(_KNOWN_BLOBS, {"digests": [d for d, _ in found if d]})).scalars())
            await self._bounded([(d, i) for d, i in found if d not in known and self._old(i, cutoff)],
                           lambda item: self._orphan_blob(*item))
            seen += len(page)
            self.progress(seen, None, "looking for orphaned blobs")
        self.report.checked["stored_blobs"] = seen

    async def _orphan_blob(self, digest: str | None, info: FileInfo) -> None:
        p = self._found(Problem("orphan_blob", info.path, f"{info.path} ({info.size} bytes, modified "
                                f"{info.modified.isoformat() if info.modified else 'at an unknown time'}) "
                                f"has no blob record", True))
        if not self.o.repair:
            return
        async with self.engine.begin() as conn:
            if digest is not None:
                if not (await conn.execute(_LOCK_BLOB, {"k": locks.blob_key(digest)})).scalar():
                    p.action = "in use by a push: run fsck --repair again"
                    return
                if (await conn.execute(_KNOWN_BLOBS, {"digests": [digest]})).first() is not None:
                    return  # a push recorded it meanwhile
            await self._delete(info.path)
        p.repaired = "file deleted"

    async def orphan_uploads(self) -> None:
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.o.grace)
        try:
            dirs = await self.storage.list("/uploads")
        except PathNotFoundError:
            dirs = []
        ids = {}
        for path in dirs:
            with contextlib.suppress(ValueError):  # not an upload's: left alone, as cleanup does
                ids[uuid.UUID(path.rsplit("/", 1)[-1])] = path
        listed = list(ids)
        for i in range(0, len(listed), PAGE):
            async with self.engine.connect() as conn:
                known = set((await conn.execute(_KNOWN_UPLOADS, {"ids": listed[i:i + PAGE]})).scalars())
            await self._bounded([u for u in listed[i:i + PAGE] if u not in known],
                           lambda u: self._orphan_upload(u, ids[u], cutoff))
        self.report.checked["stored_uploads"] = len(dirs)

    async def _orphan_upload(self, upload_id: uuid.UUID, path: str, cutoff: dt.datetime) -> None:
        try:
            info: FileInfo | None = await self.storage.stat(upload_path(str(upload_id)))
        except PathNotFoundError:
            info = None
        if not self._old(info, cutoff):
            return
        p = self._found(Problem("orphan_upload", path, f"upload directory {path} has no upload record", True))
        if self.o.repair:
            async with self.engine.connect() as conn:
                if (await conn.execute(_KNOWN_UPLOADS, {"ids": [upload_id]})).first() is not None:
                    return  # recorded meanwhile
            await self._delete(path)
            p.repaired = "directory deleted"


def _digest_of_path(path: str) -> str | None:
    """The digest whose blob lives at ``path``, or None for anything else."""
    parts = path.split("/")
    if len(parts) != 5 or parts[:2] != ["", "blobs"]:
        return None
    digest = f"{parts[2]}:{parts[4]}"
    return digest if is_valid_digest(digest) and blob_path(digest) == path else None

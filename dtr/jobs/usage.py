"""Storage used per repository and per namespace, recounted by the ``usage`` job (and after GC).

A repository uses the blobs linked into it (each counted once) and its manifests' bodies;
``unique_bytes`` counts only blobs no other repository links (what deleting it would free).
A namespace (the part of the name before the first ``/``) counts each blob once however many
of its repositories share it; its ``unique_bytes`` only blobs linked from no other namespace.
The use cases at the end read what the job wrote (site admins); a repository or namespace the job
has not counted yet uses nothing (zeros, ``updatedAt`` null).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, exists, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.api.errors import APIError, codes
from dtr.auth.models import Account
from dtr.jobs.context import JobContext
from dtr.jobs.models import StorageUsage
from dtr.jobs.params import only
from dtr.registry.models import Repository
from dtr.times import iso

if TYPE_CHECKING:
    from dtr.jobs import shapes
    from dtr.jobs.caller import Caller

storage_usage = cast(Table, StorageUsage.__table__)
accounts = cast(Table, Account.__table__)
repositories = cast(Table, Repository.__table__)
#: Rows a listing returns at most.
LIST_LIMIT = 10_000

_RECOUNT = """
WITH links AS (
    SELECT r.name AS repo, split_part(r.name, '/', 1) AS ns, l.digest, b.size
    FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id JOIN blobs b ON b.digest = l.digest
),
repo_count AS (SELECT digest, count(*) AS n FROM links GROUP BY digest),
ns_count AS (SELECT digest, count(DISTINCT ns) AS n FROM links GROUP BY digest),
mani AS (
    SELECT r.name AS repo, split_part(r.name, '/', 1) AS ns, count(m.id) AS n, coalesce(sum(m.size), 0) AS bytes
    FROM repositories r LEFT JOIN manifests m ON m.repository_id = r.id GROUP BY r.name
),
per_repo AS (
    SELECT mani.repo AS name, mani.n AS manifests, mani.bytes AS mbytes,
           count(links.digest) AS blobs, coalesce(sum(links.size), 0) AS bbytes,
           coalesce(sum(links.size) FILTER (WHERE rc.n = 1), 0) AS ubytes
    FROM mani LEFT JOIN links ON links.repo = mani.repo LEFT JOIN repo_count rc ON rc.digest = links.digest
    GROUP BY mani.repo, mani.n, mani.bytes
),
ns_blobs AS (SELECT DISTINCT ns, digest, size FROM links),
per_ns AS (
    SELECT m.ns AS name, sum(m.n) AS manifests, sum(m.bytes) AS mbytes,
           (SELECT count(*) FROM ns_blobs nb WHERE nb.ns = m.ns) AS blobs,
           (SELECT coalesce(sum(nb.size), 0) FROM ns_blobs nb WHERE nb.ns = m.ns) AS bbytes,
           (SELECT coalesce(sum(nb.size), 0) FROM ns_blobs nb JOIN ns_count c ON c.digest = nb.digest
             WHERE nb.ns = m.ns AND c.n = 1) AS ubytes
    FROM mani m GROUP BY m.ns
),
fresh AS (
    SELECT 'repository' AS scope, name, mbytes + bbytes AS bytes, mbytes + ubytes AS unique_bytes,
           blobs, manifests
    FROM per_repo
    UNION ALL
    SELECT 'namespace', name, mbytes + bbytes, mbytes + ubytes, blobs, manifests FROM per_ns
),
gone AS (DELETE FROM storage_usage u
         WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.scope = u.scope AND f.name = u.name))
INSERT INTO storage_usage (scope, name, bytes, unique_bytes, blobs, manifests, updated_at)
SELECT scope, name, bytes, unique_bytes, blobs, manifests, now() FROM fresh
ON CONFLICT (scope, name) DO UPDATE SET bytes = excluded.bytes, unique_bytes = excluded.unique_bytes,
    blobs = excluded.blobs, manifests = excluded.manifests, updated_at = excluded.updated_at
"""


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    only(params, set())
    return params


async def recount(engine: AsyncEngine) -> int:
    """Rewrite ``storage_usage`` from the current metadata; returns the number of rows written."""
    async with engine.begin() as conn:
        return (await conn.execute(text(_RECOUNT))).rowcount


async def run(ctx: JobContext) -> dict[str, Any]:
    rows = await recount(ctx.engine)
    ctx.log(f"storage usage recounted for {rows} repositories and namespaces")
    return {"rows": rows}


# -- use cases ----------------------------------------------------------------------------------


def usage_json(r: Any) -> shapes.Usage:
    return {"name": r.name, "bytes": r.bytes, "uniqueBytes": r.unique_bytes, "blobs": r.blobs,
            "manifests": r.manifests, "updatedAt": iso(r.updated_at)}


def _uncounted(name: str) -> shapes.Usage:
    """The usage of what exists but was not counted yet: nothing."""
    return {"name": name, "bytes": 0, "uniqueBytes": 0, "blobs": 0, "manifests": 0, "updatedAt": None}


async def _usage(caller: Caller, scope: str, name: str | None = None,
                 namespace: str | None = None) -> list[shapes.Usage]:
    caller.admin()
    q = select(storage_usage).where(storage_usage.c.scope == scope).order_by(storage_usage.c.name).limit(LIST_LIMIT)
    if name is not None:
        q = q.where(storage_usage.c.name == name)
    if namespace is not None:
        q = q.where(func.split_part(storage_usage.c.name, "/", 1) == namespace)
    async with caller.engine.connect() as conn:
        return [usage_json(r) for r in await conn.execute(q)]


async def list_namespaces(caller: Caller) -> list[shapes.Usage]:
    """Every namespace's usage, by name."""
    return await _usage(caller, "namespace")


async def namespace_usage(caller: Caller, namespace: str) -> shapes.Usage:
    """One namespace's usage (zeros if not counted yet); APIError NO_SUCH_NAMESPACE if there is
    neither an account of that name nor a repository in it."""
    rows = await _usage(caller, "namespace", namespace)
    if rows:
        return rows[0]
    known = or_(exists().where(accounts.c.name == namespace),
                exists().where(repositories.c.name.startswith(f"{namespace}/", autoescape=True)))
    async with caller.engine.connect() as conn:
        if not (await conn.execute(select(known))).scalar():
            raise APIError(codes.NO_SUCH_NAMESPACE, f"no namespace named {namespace[:64]!r}")
    return _uncounted(namespace)


async def list_repositories(caller: Caller, namespace: str | None = None) -> list[shapes.Usage]:
    """Every repository's usage (of ``namespace`` only, if given), by name."""
    return await _usage(caller, "repository", namespace=namespace)


async def repository_usage(caller: Caller, repository: str) -> shapes.Usage:
    """One repository's usage (zeros if not counted yet); APIError NO_SUCH_REPOSITORY if there is
    no such repository."""
    rows = await _usage(caller, "repository", repository)
    if rows:
        return rows[0]
    async with caller.engine.connect() as conn:
        await caller.repository_id(conn, repository)
    return _uncounted(repository)

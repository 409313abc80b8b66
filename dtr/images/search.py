"""DTR's autocomplete (``autocomplete``): repositories, namespaces and, for site admins, accounts
whose names start with what a person typed.

Names are lowercase (the registry's and the accounts' grammars), so the query is lowercased and
matched as a prefix: of a repository's full name (``acme/we``) or of its name without the
namespace (``we`` finds ``acme/webapp``, through ``ix_repositories_repo_part``), and of an
account's name; each an index range, then filtered by what the caller may see (the access
decision as SQL, ``dtr.accounts.repositories.visible_to``): a 10,000-repository registry is not
scanned per search.

- ``repositoryResults``: repositories the caller may read (anonymous callers: public ones).
- ``namespaceResults``: accounts holding at least one repository the caller may read.
- ``accountResults``: every matching account, for site admins only (empty for others).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, and_, exists, literal, or_, select

from dtr.accounts.repositories import visible_to
from dtr.auth.caller import Caller
from dtr.auth.models import Account, RepositoryMeta
from dtr.images import shapes
from dtr.images.models import repo_part, repositories

accounts = cast(Table, Account.__table__)
repo_meta = cast(Table, RepositoryMeta.__table__)
MAX_LIMIT = 100


def _prefix(text: str) -> str:
    """A LIKE pattern matching what starts with ``text`` (its wildcards escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _repositories(p: Any, query: str, limit: int) -> Any:
    pattern = _prefix(query)
    matches = repositories.c.name.like(pattern) if "/" in query else \
        or_(repositories.c.name.like(pattern), repo_part.like(pattern))
    return (select(repositories.c.id, repositories.c.name)
            .select_from(repositories.outerjoin(repo_meta, repo_meta.c.repository_id == repositories.c.id))
            .where(matches, visible_to(p)).order_by(repositories.c.name).limit(limit))


def _namespaces(p: Any, query: str, limit: int) -> Any:
    a = accounts.alias("ns")
    namespace, slash, _ = query.partition("/")
    inside = and_(repositories.c.name > a.c.name + literal("/"), repositories.c.name < a.c.name + literal("0"))
    holds = exists(select(literal(1)).select_from(
        repositories.outerjoin(repo_meta, repo_meta.c.repository_id == repositories.c.id))
        .where(inside, visible_to(p)))
    named = a.c.name == namespace if slash else a.c.name.like(_prefix(namespace))
    return select(a.c.name, a.c.is_org).where(named, holds).order_by(a.c.name).limit(limit)


async def autocomplete(c: Caller, query: str, include_repositories: bool = True, include_accounts: bool = True,
                       limit: int = 50) -> shapes.SearchResults:
    """What starts with ``query`` (case-insensitive), at most ``limit`` (1..``MAX_LIMIT``) of each
    kind: repositories and namespaces the caller may see (``include_repositories``), accounts for
    site admins (``include_accounts``). An empty query finds nothing."""
    q, limit = query.strip().lower(), max(1, min(limit, MAX_LIMIT))
    p = c.principal
    out: shapes.SearchResults = {"repositoryResults": [], "namespaceResults": [], "accountResults": []}
    if not q:
        return out
    async with c.engine.connect() as conn:
        if include_repositories:
            for r in await conn.execute(_repositories(p, q, limit)):
                namespace, _, name = r.name.partition("/")
                out["repositoryResults"].append({"id": int(r.id), "namespace": namespace, "name": name})
            out["namespaceResults"] = [{"name": r.name, "isOrg": bool(r.is_org)}
                                       for r in await conn.execute(_namespaces(p, q, limit))]
        if include_accounts and p.authenticated and p.is_admin and "/" not in q:
            rows = await conn.execute(select(accounts.c.id, accounts.c.name, accounts.c.is_org)
                                      .where(accounts.c.name.like(_prefix(q))).order_by(accounts.c.name).limit(limit))
            out["accountResults"] = [{"id": int(r.id), "name": r.name, "isOrg": bool(r.is_org)} for r in rows]
    return out

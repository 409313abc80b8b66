"""Use cases on repositories (as the JSON API and a UI see them: metadata, visibility, immutability)
and on team access to a repository or to a whole organisation namespace, apart from HTTP.

The registry's own tables are written through ``dtr.registry.changes`` only; this module writes
its ``repository_meta`` row and the grants. Who may do what is the access decision
(``dtr.auth.access.decide``); a repository the caller may not even read is answered as missing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from sqlalchemy import Table, delete, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.accounts import service as svc
from dtr.accounts import shapes
from dtr.accounts.context import Caller
from dtr.accounts.orgs import authorize_org
from dtr.api.errors import APIError, codes
from dtr.auth.access import Action, Level, Principal, decide
from dtr.auth.models import NamespaceTeamAccess, RepositoryMeta, RepositoryTeamAccess
from dtr.auth.repoaccess import check_repository
from dtr.registry import changes
from dtr.registry.errors import RegistryError
from dtr.registry.models import Repository
from dtr.registry.names import check_name as check_repo_name
from dtr.times import iso
from dtr.trust import store as trust_store

repositories = cast(Table, Repository.__table__)
repo_meta = cast(Table, RepositoryMeta.__table__)
repo_team_access = cast(Table, RepositoryTeamAccess.__table__)
ns_team_access = cast(Table, NamespaceTeamAccess.__table__)
VISIBILITIES = ("public", "private")


def repo_json(row: Any, namespace_type: str) -> shapes.Repository:
    namespace, _, name = row.name.partition("/")
    return {"id": row.id, "namespace": namespace, "namespaceType": namespace_type, "name": name,
            "fullName": row.name, "shortDescription": row.short_description or "",
            "longDescription": row.long_description or "", "visibility": row.visibility or "private",
            "immutableTags": bool(row.immutable_tags), "scanOnPush": bool(row.scan_on_push), "status": "ok",
            "createdAt": iso(row.created_at)}


def grant_json(row: Any, org_name: str) -> shapes.Grant:
    return {"accessLevel": row.access_level, "team": svc.team_json(row, org_name)}


# -- database work ------------------------------------------------------------------------------


def _repo_select(scan_on_push_default: bool) -> Any:
    """Repositories with their metadata (``scan_on_push``: ``scan_on_push_default`` without a meta row)."""
    scan_on_push = func.coalesce(repo_meta.c.scan_on_push, scan_on_push_default).label("scan_on_push")
    return (select(repositories.c.id, repositories.c.name, repositories.c.created_at, repositories.c.immutable_tags,
                   repo_meta.c.visibility, repo_meta.c.short_description, repo_meta.c.long_description, scan_on_push)
            .select_from(repositories.outerjoin(repo_meta, repo_meta.c.repository_id == repositories.c.id)))


async def _get_repository(conn: AsyncConnection, full_name: str, scan_on_push_default: bool) -> Any:
    row = (await conn.execute(_repo_select(scan_on_push_default).where(repositories.c.name == full_name))).first()
    if row is None:
        raise APIError(codes.NO_SUCH_REPOSITORY, f"no repository named {full_name[:300]!r}")
    return row


def visible_to(p: Principal) -> Any:
    """A WHERE clause: repositories ``p`` may at least read (the access decision, as SQL)."""
    if p.authenticated and p.is_admin:
        return literal(True)
    public = repo_meta.c.visibility == "public"
    if not p.authenticated:
        return public
    accounts, org_members, team_members = svc.accounts, svc.org_members, svc.team_members
    ns = func.split_part(repositories.c.name, "/", 1)
    owned_orgs = (select(accounts.c.name).join(org_members, org_members.c.org_id == accounts.c.id)
                  .where(org_members.c.user_id == p.id, org_members.c.is_admin))
    my_teams = select(team_members.c.team_id).where(team_members.c.user_id == p.id)
    repo_grant = exists().where(repo_team_access.c.repository_id == repositories.c.id,
                                repo_team_access.c.team_id.in_(my_teams))
    ns_grant = exists().where(ns_team_access.c.team_id.in_(my_teams),
                              ns_team_access.c.namespace_id == accounts.c.id, accounts.c.name == ns,
                              accounts.c.is_org)
    return or_(public, ns == p.name, ns.in_(owned_orgs), repo_grant, ns_grant)


async def _set_meta(conn: AsyncConnection, repo_id: int, meta: dict[str, Any], scan_on_push_default: bool) -> None:
    """Write ``meta``; a new row takes ``scan_on_push_default`` unless ``meta`` sets it."""
    stmt = pg_insert(repo_meta).values(repository_id=repo_id, **{"scan_on_push": scan_on_push_default, **meta})
    await conn.execute(stmt.on_conflict_do_update(index_elements=[repo_meta.c.repository_id],
                                                  set_={**meta, "updated_at": func.now()}))


async def _grants(conn: AsyncConnection, table: Table, key: str, key_id: int) -> list[Any]:
    q = (select(svc.teams, table.c.access_level).join(table, table.c.team_id == svc.teams.c.id)
         .where(table.c[key] == key_id).order_by(svc.teams.c.name))
    return list((await conn.execute(q)).all())


async def _set_grant(conn: AsyncConnection, table: Table, key: str, key_id: int, team_id: int, level: str) -> None:
    stmt = pg_insert(table).values({key: key_id, "team_id": team_id, "access_level": level})
    await conn.execute(stmt.on_conflict_do_update(index_elements=[table.c[key], table.c.team_id],
                                                  set_={"access_level": level}))


async def _remove_grant(conn: AsyncConnection, table: Table, key: str, key_id: int, team_id: int) -> bool:
    res = await conn.execute(delete(table).where(table.c[key] == key_id, table.c.team_id == team_id))
    return bool(res.rowcount)


async def _namespace_type(conn: AsyncConnection, namespace: str) -> str:
    row = await svc.find_account(conn, namespace)
    return "none" if row is None else "organization" if row.is_org else "user"


async def _open_repository(c: Caller, conn: AsyncConnection, namespace: str, name: str, action: Action) -> Any:
    """The repository, if the caller may ``action`` it (NO_SUCH_REPOSITORY when it may not even read it)."""
    row = await _get_repository(conn, f"{namespace}/{name}", c.scan_on_push_default)
    await check_repository(c, conn, row.name, action)
    return row


async def _namespace_org(conn: AsyncConnection, namespace: str) -> Any:
    row = await svc.find_account(conn, namespace)
    if row is None or not row.is_org:
        raise APIError(codes.INVALID_OPERATION,
                       f"team access applies to organisation namespaces; {namespace} is not one")
    return row


# -- repositories -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RepoChanges:
    """What to set on a repository; None leaves a field as it is (a new one's: private, no descriptions)."""

    visibility: str | None = None
    short_description: str | None = None
    long_description: str | None = None
    immutable_tags: bool | None = None
    scan_on_push: bool | None = None

    def meta(self) -> dict[str, Any]:
        """The ``repository_meta`` columns to write."""
        if self.visibility is not None and self.visibility not in VISIBILITIES:
            raise APIError(codes.INVALID_PARAMETER, "visibility must be public or private")
        return svc.given(visibility=self.visibility, short_description=self.short_description,
                         long_description=self.long_description, scan_on_push=self.scan_on_push)

    def audited(self) -> dict[str, Any]:
        return svc.given(visibility=self.visibility, immutableTags=self.immutable_tags, scanOnPush=self.scan_on_push)


async def list_repositories(c: Caller, namespace: str | None, start: str | None,
                            size: int, contains: str = "") -> tuple[list[Any], dict[str, str]]:
    """(repositories the caller may see by name from ``start``, ``size`` + 1 of them; each one's
    namespace type by namespace). ``start`` may omit the namespace when listing one; ``contains``:
    only names with this text (case-insensitive)."""
    if namespace is not None and start and not start.startswith(f"{namespace}/"):
        start = f"{namespace}/{start}"
    q = (_repo_select(c.scan_on_push_default).where(visible_to(c.principal)).order_by(repositories.c.name)
         .limit(size + 1))
    if contains:
        q = q.where(repositories.c.name.contains(contains.lower(), autoescape=True))
    if namespace is not None:
        q = q.where(repositories.c.name.startswith(f"{namespace}/", autoescape=True))
    if start:
        q = q.where(repositories.c.name >= start)
    async with c.engine.connect() as conn:
        rows = list((await conn.execute(q)).all())
        names = {namespace} if namespace is not None else {r.name.partition("/")[0] for r in rows}
        return rows, {ns: await _namespace_type(conn, ns) for ns in names}


async def create_repository(c: Caller, namespace: str, name: str, new: RepoChanges) -> tuple[Any, str]:
    """(the new repository, its namespace type): needs the right to create in the namespace."""
    p = c.user()
    full = f"{namespace}/{name}"
    bad = APIError(codes.INVALID_NAME, f"invalid repository name {name[:200]!r}: lowercase letters, digits "
                   "and separators (. _ -), one path component")
    if not name or "/" in name:
        raise bad
    try:
        check_repo_name(full)
    except RegistryError:
        raise bad from None
    meta = RepoChanges(new.visibility or "private", new.short_description or "", new.long_description or "",
                       scan_on_push=new.scan_on_push).meta()
    async with c.engine.begin() as conn:
        ns_type = await _namespace_type(conn, namespace)
        if ns_type == "none":
            raise APIError(codes.NO_SUCH_ACCOUNT, f"no account named {namespace!r}")
        if c.auth is not None:
            facts = await c.auth.repo_facts(p, full, conn)
            if not facts.exists and not decide(p, facts, Action.CREATE):
                raise APIError(codes.FORBIDDEN, f"you may not create repositories in namespace {namespace}")
        rid = await changes.create_repository(conn, full, c.actor, immutable_tags=bool(new.immutable_tags))
        if rid is None:
            raise APIError(codes.CONFLICT, f"repository {full!r} exists")
        await _set_meta(conn, rid, meta, c.scan_on_push_default)
        row = await _get_repository(conn, full, c.scan_on_push_default)
    await c.changed("repo_create", "repository", full, {"visibility": meta["visibility"]})
    return row, ns_type


async def get_repository(c: Caller, namespace: str, name: str) -> tuple[Any, str]:
    """(the repository, its namespace type), if the caller may read it."""
    async with c.engine.connect() as conn:
        row = await _open_repository(c, conn, namespace, name, Action.PULL)
        return row, await _namespace_type(conn, namespace)


async def update_repository(c: Caller, namespace: str, name: str, change: RepoChanges) -> tuple[Any, str]:
    """Change visibility, descriptions and immutability (repository admins)."""
    meta = change.meta()
    async with c.engine.begin() as conn:
        row = await _open_repository(c, conn, namespace, name, Action.ADMIN)
        if meta:
            await _set_meta(conn, row.id, meta, c.scan_on_push_default)
        if change.immutable_tags is not None:
            await changes.set_immutable_tags(conn, row.id, row.name, change.immutable_tags, c.actor)
        row = await _get_repository(conn, row.name, c.scan_on_push_default)
        ns_type = await _namespace_type(conn, namespace)
    await c.changed("repo_update", "repository", row.name, change.audited())
    return row, ns_type


async def delete_repository(c: Caller, namespace: str, name: str) -> None:
    """Delete the repository (repository admins); its bytes stay for garbage collection."""
    async with c.engine.begin() as conn:
        row = await _open_repository(c, conn, namespace, name, Action.ADMIN)
        await trust_store.delete_repository(conn, row.name)  # its Notary data goes with it
        await changes.delete_repository(conn, row.id, row.name, c.actor)
    await c.changed("repo_delete", "repository", row.name)


# -- team access --------------------------------------------------------------------------------


async def list_repo_team_access(c: Caller, namespace: str, name: str) -> tuple[Any, Any, list[Any]]:
    """(repository, organisation, teams with ``access_level``): repository admins."""
    async with c.engine.connect() as conn:
        repo = await _open_repository(c, conn, namespace, name, Action.ADMIN)
        org = await _namespace_org(conn, namespace)
        return repo, org, await _grants(conn, repo_team_access, "repository_id", repo.id)


async def set_repo_team_access(c: Caller, namespace: str, name: str, team_name: str,
                               level: Level) -> tuple[Any, Any, Any]:
    """Give a team of the repository's organisation ``level`` on it: (repository, organisation, team)."""
    async with c.engine.begin() as conn:
        repo = await _open_repository(c, conn, namespace, name, Action.ADMIN)
        org = await _namespace_org(conn, namespace)
        team = await svc.get_team(conn, org.id, team_name)
        await _set_grant(conn, repo_team_access, "repository_id", repo.id, team.id, level.api_name)
    await c.changed("repo_team_access_set", "repository", repo.name,
                    {"team": team.name, "accessLevel": level.api_name})
    return repo, org, team


async def remove_repo_team_access(c: Caller, namespace: str, name: str, team_name: str) -> None:
    async with c.engine.begin() as conn:
        repo = await _open_repository(c, conn, namespace, name, Action.ADMIN)
        org = await _namespace_org(conn, namespace)
        team = await svc.get_team(conn, org.id, team_name)
        if not await _remove_grant(conn, repo_team_access, "repository_id", repo.id, team.id):
            raise APIError(codes.NO_SUCH_GRANT, f"team {team.name} has no access to {repo.name}")
    await c.changed("repo_team_access_remove", "repository", repo.name, {"team": team.name})


async def _open_namespace(c: Caller, conn: AsyncConnection, namespace: str) -> Any:
    c.user()
    org = await _namespace_org(conn, namespace)
    await authorize_org(c, conn, org, manage=True)
    return org


async def list_ns_team_access(c: Caller, namespace: str) -> tuple[Any, list[Any]]:
    """(organisation, teams with ``access_level`` on all its repositories): owners and site admins."""
    async with c.engine.connect() as conn:
        org = await _open_namespace(c, conn, namespace)
        return org, await _grants(conn, ns_team_access, "namespace_id", org.id)


async def set_ns_team_access(c: Caller, namespace: str, team_name: str, level: Level) -> tuple[Any, Any]:
    """Give a team ``level`` on every repository of its organisation: (organisation, team)."""
    async with c.engine.begin() as conn:
        org = await _open_namespace(c, conn, namespace)
        team = await svc.get_team(conn, org.id, team_name)
        await _set_grant(conn, ns_team_access, "namespace_id", org.id, team.id, level.api_name)
    await c.changed("namespace_team_access_set", "organization", org.name,
                    {"team": team.name, "accessLevel": level.api_name})
    return org, team


async def remove_ns_team_access(c: Caller, namespace: str, team_name: str) -> None:
    async with c.engine.begin() as conn:
        org = await _open_namespace(c, conn, namespace)
        team = await svc.get_team(conn, org.id, team_name)
        if not await _remove_grant(conn, ns_team_access, "namespace_id", org.id, team.id):
            raise APIError(codes.NO_SUCH_GRANT, f"team {team.name} has no namespace access to {org.name}")
    await c.changed("namespace_team_access_remove", "organization", org.name, {"team": team.name})

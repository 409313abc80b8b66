"""Overrides: a vulnerability hidden in one image, a repository, a namespace or the whole
registry, with the reason (see ``results``); created, read, listed and deleted, the images they
touch recounted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.auth.access import Action
from dtr.auth.repoaccess import may_admin_namespace
from dtr.scanning import shapes
from dtr.scanning.access import Caller, open_repository
from dtr.scanning.reports import normalise_vuln_id
from dtr.scanning.results import images_with_vuln, manifests, overrides, recount
from dtr.times import iso


def _split(repository: str) -> tuple[str, str]:
    namespace, sep, name = repository.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise APIError(codes.INVALID_PARAMETER, f"{repository[:300]!r} is not a repository name (namespace/name)")
    return namespace, name


def override_json(r: Any) -> shapes.Override:
    return {"id": r.id, "vulnId": r.vuln_id, "scope": r.scope, "digest": r.digest, "component": r.component,
            "reason": r.reason, "actor": r.actor, "createdAt": iso(r.created_at)}


async def _authorize_scope(c: Caller, conn: AsyncConnection, scope: str, digest: str) -> str:
    """Check the caller may manage overrides of ``scope``; its kind for the audit record."""
    c.user()
    if scope == "":
        if digest:
            raise APIError(codes.INVALID_PARAMETER, "an override of one image names its repository as scope")
        c.admin()
        return "registry"
    if "/" in scope:
        namespace, name = _split(scope)
        row = await open_repository(c, conn, namespace, name, Action.ADMIN)
        if digest and (await conn.execute(select(manifests.c.id).where(
                manifests.c.repository_id == row.id, manifests.c.digest == digest))).first() is None:
            raise APIError(codes.NO_SUCH_TAG, f"no manifest {digest[:200]!r} in {scope}")
        return "repository"
    if digest:
        raise APIError(codes.INVALID_PARAMETER, "an override of one image names its repository as scope")
    if not await may_admin_namespace(c, conn, scope):
        raise APIError(codes.FORBIDDEN, f"overrides of the namespace {scope} need admin access to it")
    return "namespace"


@dataclasses.dataclass(frozen=True)
class OverrideSpec:
    vuln_id: str
    scope: str
    reason: str
    digest: str = ""
    component: str = ""


async def create_override(c: Caller, spec: OverrideSpec) -> shapes.Override:
    """Hide a vulnerability (see ``results``); the images it touches are recounted."""
    vuln = normalise_vuln_id(spec.vuln_id)
    scope = spec.scope.strip().strip("/")
    if not vuln or not spec.reason.strip():
        raise APIError(codes.INVALID_PARAMETER, "vulnId and reason are required")
    async with c.engine.begin() as conn:
        kind = await _authorize_scope(c, conn, scope, spec.digest)
        row = (await conn.execute(insert(overrides).values(
            vuln_id=vuln, scope=scope, digest=spec.digest, component=spec.component.strip(),
            reason=spec.reason.strip(), actor=c.principal.name or "").returning(*overrides.c))).one()
        await _recount(conn, vuln, spec.digest)
    made = override_json(row)
    await c.changed("scan_override_create", kind, scope or "*", {k: v for k, v in made.items() if k != "createdAt"})
    return made


async def _recount(conn: AsyncConnection, vuln_id: str, digest: str) -> None:
    await recount(conn, await images_with_vuln(conn, vuln_id, digest))


async def _get_override(conn: AsyncConnection, override_id: int) -> Any:
    row = (await conn.execute(select(overrides).where(overrides.c.id == override_id))).first()
    if row is None:
        raise APIError(codes.NO_SUCH_OVERRIDE)
    return row


def override_id(raw: str) -> int:
    """An override id from its text; NO_SUCH_OVERRIDE if it cannot be one."""
    if not raw.isdigit() or len(raw) > 18:
        raise APIError(codes.NO_SUCH_OVERRIDE)
    return int(raw)


async def get_override(c: Caller, oid: int) -> shapes.Override:
    """An override: for callers who may read its repository (a namespace's: any user; the
    registry's: any user), as missing otherwise."""
    async with c.engine.connect() as conn:
        row = await _get_override(conn, oid)
        await _may_read_scope(c, conn, row.scope)
    return override_json(row)


async def _may_read_scope(c: Caller, conn: AsyncConnection, scope: str) -> None:
    c.user()
    if "/" in scope:
        namespace, name = _split(scope)
        try:
            await open_repository(c, conn, namespace, name, Action.PULL)
        except APIError:
            raise APIError(codes.NO_SUCH_OVERRIDE) from None


async def delete_override(c: Caller, oid: int) -> None:
    """Delete an override (the same right as creating it); the images it touched are recounted."""
    async with c.engine.begin() as conn:
        row = await _get_override(conn, oid)
        await _may_read_scope(c, conn, row.scope)
        kind = await _authorize_scope(c, conn, row.scope, row.digest)
        await conn.execute(delete(overrides).where(overrides.c.id == oid))
        await _recount(conn, row.vuln_id, row.digest)
    await c.changed("scan_override_delete", kind, row.scope or "*",
                    {"id": row.id, "vulnId": row.vuln_id, "digest": row.digest, "component": row.component})


async def list_overrides(c: Caller, repository: str | None, vuln_id: str | None) -> list[shapes.Override]:
    """The overrides that apply in ``repository`` (read access), or every override (site admins)."""
    q = select(overrides).order_by(overrides.c.id)
    async with c.engine.connect() as conn:
        if repository:
            namespace, name = _split(repository)
            row = await open_repository(c, conn, namespace, name, Action.PULL)
            q = q.where(or_(overrides.c.scope == "", overrides.c.scope == row.name, overrides.c.scope == namespace))
        else:
            c.admin()
        if vuln_id:
            q = q.where(overrides.c.vuln_id == normalise_vuln_id(vuln_id))
        return [override_json(r) for r in await conn.execute(q)]


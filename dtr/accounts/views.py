"""``/api/v0`` for accounts, organisations, teams, repositories, grants, access tokens,
settings and audit events, in DTR's shapes. Lists page with ``pageStart``/``pageSize`` and
answer ``X-Next-Page-Start`` when there is more.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.accounts import audit
from dtr.accounts import service as svc
from dtr.api.app import APIError, read_json
from dtr.auth.access import Action, Level, Principal, decide
from dtr.auth.api import api_auth, principal, require_admin, require_user
from dtr.auth.passwords import PasswordPolicyError, check_policy, hash_password_async, verify_password_async
from dtr.auth.service import DEFAULT_SETTINGS, AuthService, hash_token, new_access_token
from dtr.keys import AUTH, CONFIG, DATABASE
from dtr.registry.errors import RegistryError
from dtr.registry.names import check_name as check_repo_name

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_PAGE = 1000
DEFAULT_PAGE = 100


# -- helpers -------------------------------------------------------------------------------


def _engine(request: web.Request) -> AsyncEngine:
    return request.config_dict[DATABASE].engine


def _auth(request: web.Request) -> AuthService | None:
    return request.config_dict[AUTH]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json",
                        headers=headers)


def _page(request: web.Request) -> tuple[str | None, int]:
    raw = request.query.get("pageSize", str(DEFAULT_PAGE))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise APIError(400, "INVALID_PARAMETER", f"pageSize must be an integer from 1 to {MAX_PAGE}")
    return request.query.get("pageStart") or None, int(raw)


def _paged(key: str, rows: list[Any], size: int, render: Callable[[Any], Any], next_key: Callable[[Any], Any],
           extra: dict[str, Any] | None = None) -> web.Response:
    headers = {"X-Next-Page-Start": str(next_key(rows[size]))} if len(rows) > size else None
    return _json({**(extra or {}), key: [render(r) for r in rows[:size]]}, headers=headers)


def _changed(request: web.Request, type_: str, object_type: str, object_name: str,
             detail: dict[str, Any] | None = None) -> None:
    """Audit a change by the caller; cached credentials are dropped (grants and accounts moved)."""
    auth = _auth(request)
    if auth is not None:
        auth.forget_credentials()
    audit.record_soon(_engine(request), type_, principal(request).name, request.remote, object_type,
                      object_name, detail)


def _str(body: dict[str, Any], key: str, default: str | None = None, limit: int = 1000) -> str | None:
    value = body.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise APIError(400, "INVALID_PARAMETER", f"{key} must be a string")
    if len(value) > limit:
        raise APIError(400, "INVALID_PARAMETER", f"{key} must be at most {limit} characters")
    return value


def _bool(body: dict[str, Any], key: str, default: bool | None = None) -> bool | None:
    value = body.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise APIError(400, "INVALID_PARAMETER", f"{key} must be true or false")
    return value


async def _body(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise APIError(400, "INVALID_JSON", "the request body must be a JSON object")
    return body


def _not_found(e: svc.NotFound) -> APIError:
    return APIError(404, "NOT_FOUND", str(e))


@web.middleware
async def _service_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except svc.NotFound as e:
        raise _not_found(e) from None
    except svc.Conflict as e:
        raise APIError(409, "CONFLICT", str(e)) from None


def _policy(request: web.Request, password: str, username: str) -> None:
    try:
        check_policy(password, username, request.config_dict[CONFIG].auth.min_password_length)
    except PasswordPolicyError as e:
        raise APIError(400, "INVALID_PASSWORD", str(e)) from None


async def _org_manager(conn: AsyncConnection, p: Principal, org: Any) -> bool:
    return p.is_admin or await svc.org_role(conn, org.id, p.id) is True


async def _require_org_manager(conn: AsyncConnection, p: Principal, org: Any) -> None:
    if not await _org_manager(conn, p, org):
        raise APIError(403, "FORBIDDEN", f"only site admins and owners of {org.name} may do this")


async def _require_org_reader(conn: AsyncConnection, p: Principal, org: Any) -> None:
    if not p.is_admin and await svc.org_role(conn, org.id, p.id) is None:
        raise APIError(403, "FORBIDDEN", f"only members of {org.name} may see this")


# -- accounts --------------------------------------------------------------------------------


async def list_accounts(request: web.Request) -> web.Response:
    """List users and organisations (``filter``: all, users, orgs, admins)."""
    require_user(request)
    kind = request.query.get("filter", "all")
    if kind not in ("all", "users", "orgs", "admins"):
        raise APIError(400, "INVALID_PARAMETER", "filter must be all, users, orgs or admins")
    start, size = _page(request)
    async with _engine(request).connect() as conn:
        rows = await svc.list_accounts(conn, kind, start, size)
    return _paged("accounts", rows, size, svc.account_json, lambda r: r.name)


async def create_account(request: web.Request) -> web.Response:
    """Create a user (``password``) or an organisation (``isOrg: true``). Site admins only."""
    require_admin(request)
    body = await _body(request)
    name = _str(body, "name", "") or ""
    try:
        svc.check_name(name)
    except ValueError as e:
        raise APIError(400, "INVALID_NAME", str(e)) from None
    is_org = bool(_bool(body, "isOrg", False))
    values: dict[str, Any] = {"name": name, "is_org": is_org, "full_name": _str(body, "fullName", "", 255)}
    if not is_org:
        password = _str(body, "password", None)
        if password is None:
            raise APIError(400, "INVALID_PASSWORD", "a user needs a password")
        _policy(request, password, name)
        values.update(email=_str(body, "email", "", 255), is_admin=bool(_bool(body, "isAdmin", False)),
                      is_active=bool(_bool(body, "isActive", True)),
                      password_hash=await hash_password_async(password))
    async with _engine(request).begin() as conn:
        row = await svc.create_account(conn, **values)
    _changed(request, "account_create", "organization" if is_org else "user", name,
             {"isAdmin": row.is_admin} if not is_org else None)
    return _json(svc.account_json(row), 201)


async def me(request: web.Request) -> web.Response:
    """The calling user."""
    p = require_user(request)
    if not p.name:
        return _json({"name": "", "isAdmin": True, "isOrg": False, "isActive": True, "authDisabled": True})
    async with _engine(request).connect() as conn:
        return _json(svc.account_json(await svc.get_account(conn, p.name)))


async def get_account(request: web.Request) -> web.Response:
    require_user(request)
    async with _engine(request).connect() as conn:
        return _json(svc.account_json(await svc.get_account(conn, request.match_info["name"])))


async def update_account(request: web.Request) -> web.Response:
    """Change fullName, email (the user or an admin), isAdmin, isActive (admins)."""
    p = require_user(request)
    body = await _body(request)
    name = request.match_info["name"]
    async with _engine(request).begin() as conn:
        row = await svc.get_account(conn, name)
        self_edit = not row.is_org and row.name == p.name
        if not (p.is_admin or self_edit or (row.is_org and await _org_manager(conn, p, row))):
            raise APIError(403, "FORBIDDEN", f"you may not change {name}")
        values: dict[str, Any] = {}
        for key, col in (("fullName", "full_name"), ("email", "email")):
            if key in body and not (key == "email" and row.is_org):
                values[col] = _str(body, key, limit=255)
        for key, col in (("isAdmin", "is_admin"), ("isActive", "is_active")):
            if key in body:
                if not p.is_admin:
                    raise APIError(403, "FORBIDDEN", f"only site admins may change {key}")
                if row.is_org:
                    raise APIError(400, "INVALID_PARAMETER", f"{key} applies to users only")
                values[col] = _bool(body, key)
        if values.get("is_active") is False or values.get("is_admin") is False:
            values["credential_gen"] = row.credential_gen + 1
        if values:
            row = await svc.update_account(conn, row.id, **values)
    if values:
        _changed(request, "account_update", "organization" if row.is_org else "user", name,
                 {k: v for k, v in body.items() if k in ("isAdmin", "isActive", "fullName", "email")})
    return _json(svc.account_json(row))


async def delete_account(request: web.Request) -> web.Response:
    """Delete a user or organisation (site admins); its namespace must hold no repositories."""
    p = require_admin(request)
    name = request.match_info["name"]
    async with _engine(request).begin() as conn:
        row = await svc.get_account(conn, name)
        if row.name == p.name:
            raise APIError(400, "INVALID_OPERATION", "you cannot delete your own account")
        if await svc.namespace_has_repositories(conn, name):
            raise APIError(409, "CONFLICT", f"the namespace {name} still has repositories: delete them first")
        await svc.delete_account(conn, row.id)
    _changed(request, "account_delete", "organization" if row.is_org else "user", name)
    return web.Response(status=204)


async def change_password(request: web.Request) -> web.Response:
    """``{oldPassword, newPassword}``; site admins may omit oldPassword for other users."""
    p = require_user(request)
    body = await _body(request)
    name = request.match_info["name"]
    new = _str(body, "newPassword", None)
    if new is None:
        raise APIError(400, "INVALID_PASSWORD", "newPassword is required")
    async with _engine(request).connect() as conn:
        row = await svc.get_user(conn, name)
    if row.is_imported:
        raise APIError(400, "INVALID_OPERATION", f"{name} logs in against the directory (LDAP)")
    if not p.is_admin or row.name == p.name:
        if row.name != p.name:
            raise APIError(403, "FORBIDDEN", "you may change only your own password")
        old = _str(body, "oldPassword", "") or ""
        if not await verify_password_async(row.password_hash, old):
            raise APIError(403, "FORBIDDEN", "oldPassword is wrong")
    _policy(request, new, name)
    hashed = await hash_password_async(new)
    async with _engine(request).begin() as conn:
        row = await svc.update_account(conn, row.id, password_hash=hashed, credential_gen=row.credential_gen + 1)
    _changed(request, "password_change", "user", name)
    return _json(svc.account_json(row))


# -- organisation members and teams ------------------------------------------------------------


def _member_json(row: Any) -> dict[str, Any]:
    return {"member": svc.account_json(row), "isAdmin": bool(row.member_admin)}


async def list_org_members(request: web.Request) -> web.Response:
    p = require_user(request)
    async with _engine(request).connect() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_reader(conn, p, org)
        rows = await svc.list_org_members(conn, org.id)
    return _json({"members": [_member_json(r) for r in rows]})


async def set_org_member(request: web.Request) -> web.Response:
    """Add a user to the organisation; ``isAdmin: true`` makes them an owner."""
    p = require_user(request)
    body = await _body(request) if request.can_read_body else {}
    is_admin = bool(_bool(body, "isAdmin", False))
    async with _engine(request).begin() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_manager(conn, p, org)
        user = await svc.get_user(conn, request.match_info["member"])
        await svc.set_org_member(conn, org.id, user.id, is_admin)
    _changed(request, "org_member_set", "organization", org.name, {"member": user.name, "isAdmin": is_admin})
    return _json({"member": svc.account_json(user), "isAdmin": is_admin})


async def remove_org_member(request: web.Request) -> web.Response:
    p = require_user(request)
    async with _engine(request).begin() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_manager(conn, p, org)
        user = await svc.get_user(conn, request.match_info["member"])
        if not await svc.remove_org_member(conn, org.id, user.id):
            raise APIError(404, "NOT_FOUND", f"{user.name} is not a member of {org.name}")
    _changed(request, "org_member_remove", "organization", org.name, {"member": user.name})
    return web.Response(status=204)


async def list_teams(request: web.Request) -> web.Response:
    p = require_user(request)
    async with _engine(request).connect() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_reader(conn, p, org)
        rows = await svc.list_teams(conn, org.id)
    return _json({"teams": [svc.team_json(r, org.name) for r in rows]})


async def create_team(request: web.Request) -> web.Response:
    p = require_user(request)
    body = await _body(request)
    name = _str(body, "name", "") or ""
    try:
        svc.check_name(name, "team")
    except ValueError as e:
        raise APIError(400, "INVALID_NAME", str(e)) from None
    async with _engine(request).begin() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_manager(conn, p, org)
        row = await svc.create_team(conn, org.id, name, _str(body, "description", "") or "")
    _changed(request, "team_create", "team", f"{org.name}/{name}")
    return _json(svc.team_json(row, org.name), 201)


async def get_team(request: web.Request) -> web.Response:
    p = require_user(request)
    async with _engine(request).connect() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_reader(conn, p, org)
        row = await svc.get_team(conn, org.id, request.match_info["team"])
    return _json(svc.team_json(row, org.name))


async def update_team(request: web.Request) -> web.Response:
    p = require_user(request)
    body = await _body(request)
    async with _engine(request).begin() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_manager(conn, p, org)
        row = await svc.get_team(conn, org.id, request.match_info["team"])
        if "description" in body:
            row = await svc.update_team(conn, row.id, description=_str(body, "description"))
    _changed(request, "team_update", "team", f"{org.name}/{row.name}")
    return _json(svc.team_json(row, org.name))


async def delete_team(request: web.Request) -> web.Response:
    p = require_user(request)
    async with _engine(request).begin() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_manager(conn, p, org)
        row = await svc.get_team(conn, org.id, request.match_info["team"])
        await conn.execute(svc.teams.delete().where(svc.teams.c.id == row.id))
    _changed(request, "team_delete", "team", f"{org.name}/{row.name}")
    return web.Response(status=204)


async def list_team_members(request: web.Request) -> web.Response:
    p = require_user(request)
    async with _engine(request).connect() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_reader(conn, p, org)
        team = await svc.get_team(conn, org.id, request.match_info["team"])
        rows = await svc.list_team_members(conn, team.id)
    return _json({"members": [_member_json(r) for r in rows]})


async def set_team_member(request: web.Request) -> web.Response:
    p = require_user(request)
    body = await _body(request) if request.can_read_body else {}
    is_admin = bool(_bool(body, "isAdmin", False))
    async with _engine(request).begin() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_manager(conn, p, org)
        team = await svc.get_team(conn, org.id, request.match_info["team"])
        user = await svc.get_user(conn, request.match_info["member"])
        await svc.add_team_member(conn, org.id, team.id, user.id, is_admin)
    _changed(request, "team_member_add", "team", f"{org.name}/{team.name}", {"member": user.name})
    return _json({"member": svc.account_json(user), "isAdmin": is_admin})


async def remove_team_member(request: web.Request) -> web.Response:
    p = require_user(request)
    async with _engine(request).begin() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_manager(conn, p, org)
        team = await svc.get_team(conn, org.id, request.match_info["team"])
        user = await svc.get_user(conn, request.match_info["member"])
        if not await svc.remove_team_member(conn, team.id, user.id):
            raise APIError(404, "NOT_FOUND", f"{user.name} is not in team {team.name}")
    _changed(request, "team_member_remove", "team", f"{org.name}/{team.name}", {"member": user.name})
    return web.Response(status=204)


async def get_sync_config(request: web.Request) -> web.Response:
    p = require_user(request)
    async with _engine(request).connect() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_manager(conn, p, org)
        team = await svc.get_team(conn, org.id, request.match_info["team"])
    return _json(svc.sync_json(team))


async def set_sync_config(request: web.Request) -> web.Response:
    """LDAP sync of the team's members: a group DN (``selectGroupMembers``) or a user search filter."""
    p = require_user(request)
    body = await _body(request)
    enable = bool(_bool(body, "enableSync", False))
    by_group = bool(_bool(body, "selectGroupMembers", True))
    group_dn = _str(body, "groupDN", "") or ""
    search = _str(body, "searchFilter", "") or ""
    if enable and by_group and not group_dn:
        raise APIError(400, "INVALID_PARAMETER", "groupDN is required when selectGroupMembers is true")
    if enable and not by_group and not search:
        raise APIError(400, "INVALID_PARAMETER", "searchFilter is required when selectGroupMembers is false")
    values = {"type": "ldap" if enable else "managed",
              "ldap_group_dn": group_dn if enable and by_group else None,
              "ldap_group_member_attr": (_str(body, "groupMemberAttr", "member") or "member") if by_group else None,
              "ldap_user_filter": search if enable and not by_group else None}
    async with _engine(request).begin() as conn:
        org = await svc.get_org(conn, request.match_info["org"])
        await _require_org_manager(conn, p, org)
        team = await svc.get_team(conn, org.id, request.match_info["team"])
        team = await svc.update_team(conn, team.id, **values)
    _changed(request, "team_sync_config", "team", f"{org.name}/{team.name}", svc.sync_json(team))
    return _json(svc.sync_json(team))


# -- repositories ------------------------------------------------------------------------------


async def _namespace_type(conn: AsyncConnection, namespace: str) -> str:
    try:
        row = await svc.get_account(conn, namespace)
    except svc.NotFound:
        return "none"
    return "organization" if row.is_org else "user"


async def _repo_for(request: web.Request, conn: AsyncConnection, action: Action) -> Any:
    """The repository in the path, if the caller may ``action`` it (404 when it may not even read it)."""
    p = principal(request)
    full = f"{request.match_info['namespace']}/{request.match_info['repo']}"
    row = await svc.get_repository(conn, full)
    auth = _auth(request)
    if auth is None:
        return row
    facts = await auth.repo_facts(p, full, conn)
    if not decide(p, facts, Action.PULL):
        raise APIError(404, "NOT_FOUND", f"no repository named {full!r}")
    if not decide(p, facts, action):
        if not p.authenticated:
            raise APIError(401, "UNAUTHORIZED", "authentication required")
        raise APIError(403, "FORBIDDEN", f"{action} on {full} needs {Level.ADMIN.api_name} access")
    return row


def _meta(body: dict[str, Any], partial: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if "visibility" in body or not partial:
        vis = body.get("visibility", "private")
        if vis not in ("public", "private"):
            raise APIError(400, "INVALID_PARAMETER", "visibility must be public or private")
        meta["visibility"] = vis
    for key, col, limit in (("shortDescription", "short_description", 140),
                            ("longDescription", "long_description", 100_000)):
        if key in body or not partial:
            meta[col] = _str(body, key, "", limit) or ""
    return meta


def _immutable_tags(body: dict[str, Any]) -> bool | None:
    value = body.get("immutableTags")
    if value is not None and not isinstance(value, bool):
        raise APIError(400, "INVALID_PARAMETER", "immutableTags must be true or false")
    return value


async def list_all_repositories(request: web.Request) -> web.Response:
    """Repositories the caller may see, by name."""
    start, size = _page(request)
    async with _engine(request).connect() as conn:
        rows = await svc.list_repositories(conn, principal(request), None, start, size)
        types = {ns: await _namespace_type(conn, ns) for ns in {r.name.partition("/")[0] for r in rows}}
    return _paged("repositories", rows, size, lambda r: svc.repo_json(r, types[r.name.partition("/")[0]]),
                  lambda r: r.name)


async def list_namespace_repositories(request: web.Request) -> web.Response:
    start, size = _page(request)
    namespace = request.match_info["namespace"]
    if start and not start.startswith(f"{namespace}/"):
        start = f"{namespace}/{start}"
    async with _engine(request).connect() as conn:
        ns_type = await _namespace_type(conn, namespace)
        rows = await svc.list_repositories(conn, principal(request), namespace, start, size)
    return _paged("repositories", rows, size, lambda r: svc.repo_json(r, ns_type),
                  lambda r: r.name.partition("/")[2])


async def create_repository(request: web.Request) -> web.Response:
    """``{name, visibility, shortDescription, longDescription, immutableTags}`` in the namespace."""
    p = require_user(request)
    body = await _body(request)
    namespace = request.match_info["namespace"]
    name = _str(body, "name", "") or ""
    full = f"{namespace}/{name}"
    bad = APIError(400, "INVALID_NAME", f"invalid repository name {name[:200]!r}: lowercase letters, digits "
                   "and separators (. _ -), one path component")
    if not name or "/" in name:
        raise bad
    try:
        check_repo_name(full)
    except RegistryError:
        raise bad from None
    meta = _meta(body, partial=False)
    immutable = bool(_immutable_tags(body))
    async with _engine(request).begin() as conn:
        ns_type = await _namespace_type(conn, namespace)
        if ns_type == "none":
            raise APIError(404, "NOT_FOUND", f"no account named {namespace!r}")
        auth = _auth(request)
        if auth is not None:
            facts = await auth.repo_facts(p, full, conn)
            if facts.exists:
                raise APIError(409, "CONFLICT", f"repository {full!r} exists")
            if not decide(p, facts, Action.CREATE):
                raise APIError(403, "FORBIDDEN", f"you may not create repositories in namespace {namespace}")
        row = await svc.create_repository(conn, full, meta, immutable)
    _changed(request, "repo_create", "repository", full, {"visibility": meta["visibility"]})
    return _json(svc.repo_json(row, ns_type), 201)


async def get_repository(request: web.Request) -> web.Response:
    async with _engine(request).connect() as conn:
        row = await _repo_for(request, conn, Action.PULL)
        ns_type = await _namespace_type(conn, request.match_info["namespace"])
    return _json(svc.repo_json(row, ns_type))


async def update_repository(request: web.Request) -> web.Response:
    """Change visibility, descriptions and immutableTags (repository admins)."""
    body = await _body(request)
    meta = _meta(body, partial=True)
    immutable = _immutable_tags(body)
    async with _engine(request).begin() as conn:
        row = await _repo_for(request, conn, Action.ADMIN)
        await svc.update_repository(conn, row.id, meta, immutable)
        row = await svc.get_repository(conn, row.name)
        ns_type = await _namespace_type(conn, request.match_info["namespace"])
    _changed(request, "repo_update", "repository", row.name,
             {k: v for k, v in body.items() if k in ("visibility", "immutableTags")})
    return _json(svc.repo_json(row, ns_type))


async def delete_repository(request: web.Request) -> web.Response:
    async with _engine(request).begin() as conn:
        row = await _repo_for(request, conn, Action.ADMIN)
        await svc.delete_repository(conn, row.id, row.name)
    _changed(request, "repo_delete", "repository", row.name)
    return web.Response(status=204)


def _grant_json(row: Any, org_name: str) -> dict[str, Any]:
    return {"accessLevel": row.access_level, "team": svc.team_json(row, org_name)}


async def _repo_org(conn: AsyncConnection, request: web.Request) -> Any:
    namespace = request.match_info["namespace"]
    try:
        return await svc.get_org(conn, namespace)
    except svc.NotFound:
        raise APIError(400, "INVALID_OPERATION",
                       f"team access applies to organisation namespaces; {namespace} is not one") from None


def _level(body: dict[str, Any]) -> str:
    try:
        return Level.parse(str(body.get("accessLevel", ""))).api_name
    except ValueError as e:
        raise APIError(400, "INVALID_PARAMETER", str(e)) from None


async def list_repo_team_access(request: web.Request) -> web.Response:
    async with _engine(request).connect() as conn:
        repo = await _repo_for(request, conn, Action.ADMIN)
        org = await _repo_org(conn, request)
        rows = await svc.repo_team_grants(conn, repo.id)
    return _json({"repository": svc.repo_json(repo, "organization"),
                  "teamAccessList": [_grant_json(r, org.name) for r in rows]})


async def set_repo_team_access(request: web.Request) -> web.Response:
    """``{accessLevel: read-only | read-write | admin}`` for a team of the repository's organisation."""
    body = await _body(request)
    level = _level(body)
    async with _engine(request).begin() as conn:
        repo = await _repo_for(request, conn, Action.ADMIN)
        org = await _repo_org(conn, request)
        team = await svc.get_team(conn, org.id, request.match_info["team"])
        await svc.set_repo_team_grant(conn, repo.id, team.id, level)
    _changed(request, "repo_team_access_set", "repository", repo.name, {"team": team.name, "accessLevel": level})
    return _json({"accessLevel": level, "team": svc.team_json(team, org.name),
                  "repository": svc.repo_json(repo, "organization")})


async def remove_repo_team_access(request: web.Request) -> web.Response:
    async with _engine(request).begin() as conn:
        repo = await _repo_for(request, conn, Action.ADMIN)
        org = await _repo_org(conn, request)
        team = await svc.get_team(conn, org.id, request.match_info["team"])
        if not await svc.remove_repo_team_grant(conn, repo.id, team.id):
            raise APIError(404, "NOT_FOUND", f"team {team.name} has no access to {repo.name}")
    _changed(request, "repo_team_access_remove", "repository", repo.name, {"team": team.name})
    return web.Response(status=204)


async def list_ns_team_access(request: web.Request) -> web.Response:
    p = require_user(request)
    async with _engine(request).connect() as conn:
        org = await _repo_org(conn, request)
        await _require_org_manager(conn, p, org)
        rows = await svc.ns_team_grants(conn, org.id)
    return _json({"namespace": svc.account_json(org), "teamAccessList": [_grant_json(r, org.name) for r in rows]})


async def set_ns_team_access(request: web.Request) -> web.Response:
    p = require_user(request)
    body = await _body(request)
    level = _level(body)
    async with _engine(request).begin() as conn:
        org = await _repo_org(conn, request)
        await _require_org_manager(conn, p, org)
        team = await svc.get_team(conn, org.id, request.match_info["team"])
        await svc.set_ns_team_grant(conn, org.id, team.id, level)
    _changed(request, "namespace_team_access_set", "organization", org.name,
             {"team": team.name, "accessLevel": level})
    return _json({"accessLevel": level, "team": svc.team_json(team, org.name), "namespace": svc.account_json(org)})


async def remove_ns_team_access(request: web.Request) -> web.Response:
    p = require_user(request)
    async with _engine(request).begin() as conn:
        org = await _repo_org(conn, request)
        await _require_org_manager(conn, p, org)
        team = await svc.get_team(conn, org.id, request.match_info["team"])
        if not await svc.remove_ns_team_grant(conn, org.id, team.id):
            raise APIError(404, "NOT_FOUND", f"team {team.name} has no namespace access to {org.name}")
    _changed(request, "namespace_team_access_remove", "organization", org.name, {"team": team.name})
    return web.Response(status=204)


# -- access tokens -------------------------------------------------------------------------------


async def _token_owner(request: web.Request, conn: AsyncConnection) -> Any:
    p = require_user(request)
    name = request.query.get("username") or p.name
    if name != p.name and not p.is_admin:
        raise APIError(403, "FORBIDDEN", "only site admins may manage other users' tokens")
    if not name:
        raise APIError(400, "INVALID_PARAMETER", "username is required when authentication is disabled")
    return await svc.get_user(conn, name)


async def list_tokens(request: web.Request) -> web.Response:
    raw_start, size = _page(request)
    start = int(raw_start) if raw_start and raw_start.isdigit() else 0
    async with _engine(request).connect() as conn:
        user = await _token_owner(request, conn)
        rows = await svc.list_tokens(conn, user.id, start, size)
    return _paged("apiTokens", rows, size, lambda r: svc.token_json(r, user.name), lambda r: r.id)


async def create_token(request: web.Request) -> web.Response:
    """``{tokenLabel, expiresAt?}``: the token is in the answer, once; only its hash is kept."""
    body = await _body(request) if request.can_read_body else {}
    label = _str(body, "tokenLabel", "", 255) or ""
    expires = None
    raw = _str(body, "expiresAt", None, 64)
    if raw:
        try:
            expires = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise APIError(400, "INVALID_PARAMETER", "expiresAt must be an ISO 8601 time") from None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.UTC)
    token = new_access_token()
    async with _engine(request).begin() as conn:
        user = await _token_owner(request, conn)
        row = (await conn.execute(svc.access_tokens.insert().values(
            user_id=user.id, token_hash=hash_token(token), label=label, is_active=True, expires_at=expires)
            .returning(*svc.access_tokens.c))).first()
    _changed(request, "token_create", "user", user.name, {"tokenLabel": label})
    return _json({**svc.token_json(row, user.name), "token": token}, 201)


async def get_token(request: web.Request) -> web.Response:
    async with _engine(request).connect() as conn:
        user = await _token_owner(request, conn)
        row = await svc.get_token(conn, user.id, request.match_info["hash"])
    return _json(svc.token_json(row, user.name))


async def update_token(request: web.Request) -> web.Response:
    """Change ``tokenLabel`` or ``isActive`` (false revokes it)."""
    body = await _body(request)
    values: dict[str, Any] = {}
    if "tokenLabel" in body:
        values["label"] = _str(body, "tokenLabel", "", 255)
    if "isActive" in body:
        values["is_active"] = _bool(body, "isActive")
    async with _engine(request).begin() as conn:
        user = await _token_owner(request, conn)
        row = await svc.get_token(conn, user.id, request.match_info["hash"])
        if values:
            row = (await conn.execute(svc.access_tokens.update().where(svc.access_tokens.c.id == row.id)
                                      .values(**values).returning(*svc.access_tokens.c))).first()
    _changed(request, "token_update", "user", user.name, {"tokenLabel": row.label, "isActive": row.is_active})
    return _json(svc.token_json(row, user.name))


async def delete_token(request: web.Request) -> web.Response:
    async with _engine(request).begin() as conn:
        user = await _token_owner(request, conn)
        row = await svc.get_token(conn, user.id, request.match_info["hash"])
        await conn.execute(svc.access_tokens.delete().where(svc.access_tokens.c.id == row.id))
    _changed(request, "token_revoke", "user", user.name, {"tokenLabel": row.label})
    return web.Response(status=204)


# -- settings and events -------------------------------------------------------------------------


async def get_settings(request: web.Request) -> web.Response:
    require_user(request)
    auth = _auth(request)
    return _json(await auth.settings() if auth is not None else dict(DEFAULT_SETTINGS))


async def update_settings(request: web.Request) -> web.Response:
    """``{createRepositoryOnPush: bool}`` (site admins)."""
    require_admin(request)
    body = await _body(request)
    unknown = set(body) - set(DEFAULT_SETTINGS)
    if unknown:
        raise APIError(400, "INVALID_PARAMETER", f"unknown settings: {', '.join(sorted(unknown))}; "
                       f"known: {', '.join(DEFAULT_SETTINGS)}")
    changes = {k: _bool(body, k) for k in body}
    auth = _auth(request)
    if auth is None:
        raise APIError(400, "INVALID_OPERATION", "authentication is disabled; settings have no effect")
    values = await auth.update_settings(changes)
    _changed(request, "settings_update", "settings", "", changes)
    return _json(values)


def _time(request: web.Request, key: str) -> dt.datetime | None:
    raw = request.query.get(key)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise APIError(400, "INVALID_PARAMETER", f"{key} must be an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def list_events(request: web.Request) -> web.Response:
    """Audit events, newest first; filters ``actor``, ``type``, ``object``, ``publishedAfter``,
    ``publishedBefore`` (site admins)."""
    require_admin(request)
    raw_start, size = _page(request)
    if raw_start is not None and not raw_start.isdigit():
        raise APIError(400, "INVALID_PARAMETER", "pageStart must be an event id")
    f = svc.EventFilter(actor=request.query.get("actor"), type=request.query.get("type"),
                        object_name=request.query.get("object"), after=_time(request, "publishedAfter"),
                        before=_time(request, "publishedBefore"))
    async with _engine(request).connect() as conn:
        rows = await svc.list_events(conn, f, int(raw_start) if raw_start else None, size)
    return _paged("events", rows, size, svc.event_json, lambda r: r.id)


# -- OpenAPI -------------------------------------------------------------------------------------


async def docs(request: web.Request) -> web.Response:
    """The OpenAPI 3 document of every /api/v0 route, built from the router."""
    paths: dict[str, dict[str, Any]] = {}
    for route in request.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "*"):
            continue
        doc = (route.handler.__doc__ or route.handler.__name__.replace("_", " ")).strip()
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in _path_params(path)]
        op: dict[str, Any] = {"summary": doc.splitlines()[0], "description": doc,
                              "operationId": f"{route.method.lower()}_{route.handler.__name__}",
                              "responses": {"200": {"description": "success"},
                                            "default": {"description": 'error: {"errors": [{"code", "message"}]}'}}}
        if params:
            op["parameters"] = params
        paths.setdefault(path, {})[route.method.lower()] = op
    return _json({"openapi": "3.0.3", "info": {"title": "dtr API", "version": "v0"},
                  "components": {"securitySchemes": {"basic": {"type": "http", "scheme": "basic"},
                                                     "bearer": {"type": "http", "scheme": "bearer"}}},
                  "security": [{"basic": []}, {"bearer": []}], "paths": dict(sorted(paths.items()))})


def _path_params(path: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in path:
        if ch == "{":
            depth, cur = depth + 1, ""
        elif ch == "}":
            depth -= 1
            out.append(cur.split(":")[0])
        elif depth:
            cur += ch
    return out


def register(app: web.Application) -> None:
    """Routes and the authentication middleware of /api/v0."""
    app.middlewares.append(api_auth)
    app.middlewares.append(_service_errors)
    r = app.router
    r.add_get("/docs.json", docs)
    r.add_get("/accounts", list_accounts)
    r.add_post("/accounts", create_account)
    r.add_get("/accounts/me", me)
    r.add_get("/accounts/{name}", get_account)
    r.add_patch("/accounts/{name}", update_account)
    r.add_delete("/accounts/{name}", delete_account)
    r.add_post("/accounts/{name}/changePassword", change_password)
    r.add_get("/accounts/{org}/members", list_org_members)
    r.add_put("/accounts/{org}/members/{member}", set_org_member)
    r.add_delete("/accounts/{org}/members/{member}", remove_org_member)
    r.add_get("/accounts/{org}/teams", list_teams)
    r.add_post("/accounts/{org}/teams", create_team)
    r.add_get("/accounts/{org}/teams/{team}", get_team)
    r.add_patch("/accounts/{org}/teams/{team}", update_team)
    r.add_delete("/accounts/{org}/teams/{team}", delete_team)
    r.add_get("/accounts/{org}/teams/{team}/members", list_team_members)
    r.add_put("/accounts/{org}/teams/{team}/members/{member}", set_team_member)
    r.add_delete("/accounts/{org}/teams/{team}/members/{member}", remove_team_member)
    r.add_get("/accounts/{org}/teams/{team}/memberSyncConfig", get_sync_config)
    r.add_put("/accounts/{org}/teams/{team}/memberSyncConfig", set_sync_config)
    r.add_get("/repositories", list_all_repositories)
    r.add_get("/repositories/{namespace}", list_namespace_repositories)
    r.add_post("/repositories/{namespace}", create_repository)
    r.add_get("/repositories/{namespace}/{repo}", get_repository)
    r.add_patch("/repositories/{namespace}/{repo}", update_repository)
    r.add_delete("/repositories/{namespace}/{repo}", delete_repository)
    r.add_get("/repositories/{namespace}/{repo}/teamAccess", list_repo_team_access)
    r.add_put("/repositories/{namespace}/{repo}/teamAccess/{team}", set_repo_team_access)
    r.add_delete("/repositories/{namespace}/{repo}/teamAccess/{team}", remove_repo_team_access)
    r.add_get("/repositoryNamespaces/{namespace}/teamAccess", list_ns_team_access)
    r.add_put("/repositoryNamespaces/{namespace}/teamAccess/{team}", set_ns_team_access)
    r.add_delete("/repositoryNamespaces/{namespace}/teamAccess/{team}", remove_ns_team_access)
    r.add_get("/api_tokens", list_tokens)
    r.add_post("/api_tokens", create_token)
    r.add_get("/api_tokens/{hash}", get_token)
    r.add_patch("/api_tokens/{hash}", update_token)
    r.add_delete("/api_tokens/{hash}", delete_token)
    r.add_get("/meta/settings", get_settings)
    r.add_post("/meta/settings", update_settings)
    r.add_patch("/meta/settings", update_settings)
    r.add_get("/events", list_events)

"""``/api/v0`` for accounts, organisations, teams, repositories, grants, access tokens, settings
and audit events, in DTR's shapes. Each handler parses the request, calls its use case
(``usecases``, ``orgs``, ``repositories``) with the request's ``Caller`` and renders the answer;
``@raises`` declares the error codes it may answer, for the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dtr.accounts import orgs, usecases
from dtr.accounts import repositories as repos
from dtr.accounts import service as svc
from dtr.accounts.context import Caller
from dtr.api.errors import APIError, codes, raises
from dtr.api.http import boolean, json_response, page, paged, read_object, string, timestamp
from dtr.auth.access import Level
from dtr.auth.api import principal
from dtr.keys import AUTH, CONFIG, DATABASE


def caller(request: web.Request) -> Caller:
    """The request's principal and client address, with what the use cases work with."""
    return Caller(request.config_dict[DATABASE].engine, principal(request), request.remote or "",
                  request.config_dict[AUTH], request.config_dict[CONFIG].auth.min_password_length)


def _member_json(row: Any) -> dict[str, Any]:
    return {"member": svc.account_json(row), "isAdmin": bool(row.member_admin)}


_READ = (codes.FORBIDDEN, codes.NO_SUCH_ACCOUNT)
_WRITE = (codes.INVALID_JSON, codes.INVALID_PARAMETER, *_READ)
_TEAM = (*_READ, codes.NO_SUCH_TEAM)
_MEMBER = (*_TEAM, codes.NO_SUCH_MEMBER, codes.INVALID_JSON, codes.INVALID_PARAMETER)
_REPO = (codes.FORBIDDEN, codes.NO_SUCH_REPOSITORY)
_GRANT = (*_REPO, codes.INVALID_OPERATION, codes.NO_SUCH_TEAM)
_TOKEN = (codes.FORBIDDEN, codes.INVALID_PARAMETER, codes.NO_SUCH_ACCOUNT, codes.NO_SUCH_TOKEN)


# -- accounts --------------------------------------------------------------------------------


@raises(codes.INVALID_PARAMETER)
async def list_accounts(request: web.Request) -> web.Response:
    """List users and organisations (``filter``: all, users, orgs, admins)."""
    start, size = page(request)
    rows = await usecases.list_accounts(caller(request), request.query.get("filter", "all"), start, size)
    return paged("accounts", rows, size, svc.account_json, lambda r: r.name)


@raises(*_WRITE, codes.INVALID_NAME, codes.INVALID_PASSWORD, codes.CONFLICT)
async def create_account(request: web.Request) -> web.Response:
    """Create a user (``password``) or an organisation (``isOrg: true``). Site admins only."""
    body = await read_object(request)
    new = usecases.NewAccount(
        name=string(body, "name", "") or "", is_org=bool(boolean(body, "isOrg", False)),
        full_name=string(body, "fullName", "", 255) or "", email=string(body, "email", "", 255) or "",
        password=string(body, "password", None), is_admin=bool(boolean(body, "isAdmin", False)),
        is_active=bool(boolean(body, "isActive", True)))
    return json_response(svc.account_json(await usecases.create_account(caller(request), new)), 201)


@raises(codes.NO_SUCH_ACCOUNT)
async def me(request: web.Request) -> web.Response:
    """The calling user."""
    row = await usecases.me(caller(request))
    if row is None:
        return json_response({"name": "", "isAdmin": True, "isOrg": False, "isActive": True, "authDisabled": True})
    return json_response(svc.account_json(row))


@raises(codes.NO_SUCH_ACCOUNT)
async def get_account(request: web.Request) -> web.Response:
    return json_response(svc.account_json(await usecases.get_account(caller(request), request.match_info["name"])))


@raises(*_WRITE)
async def update_account(request: web.Request) -> web.Response:
    """Change fullName, email (the user or an admin), isAdmin, isActive (admins)."""
    body = await read_object(request)
    changes = usecases.AccountChanges(full_name=string(body, "fullName", limit=255),
                                      email=string(body, "email", limit=255),
                                      is_admin=boolean(body, "isAdmin"), is_active=boolean(body, "isActive"))
    row = await usecases.update_account(caller(request), request.match_info["name"], changes)
    return json_response(svc.account_json(row))


@raises(codes.FORBIDDEN, codes.NO_SUCH_ACCOUNT, codes.INVALID_OPERATION, codes.CONFLICT)
async def delete_account(request: web.Request) -> web.Response:
    """Delete a user or organisation (site admins); its namespace must hold no repositories."""
    await usecases.delete_account(caller(request), request.match_info["name"])
    return web.Response(status=204)


@raises(*_WRITE, codes.INVALID_PASSWORD, codes.INVALID_OPERATION)
async def change_password(request: web.Request) -> web.Response:
    """``{oldPassword, newPassword}``; site admins may omit oldPassword for other users."""
    body = await read_object(request)
    new = string(body, "newPassword", None)
    if new is None:
        raise APIError(codes.INVALID_PASSWORD, "newPassword is required")
    row = await usecases.change_password(caller(request), request.match_info["name"], new,
                                         string(body, "oldPassword", "") or "")
    return json_response(svc.account_json(row))


# -- organisation members and teams ------------------------------------------------------------


@raises(*_READ)
async def list_org_members(request: web.Request) -> web.Response:
    rows = await orgs.list_org_members(caller(request), request.match_info["org"])
    return json_response({"members": [_member_json(r) for r in rows]})


@raises(*_WRITE)
async def set_org_member(request: web.Request) -> web.Response:
    """Add a user to the organisation; ``isAdmin: true`` makes them an owner."""
    is_admin = bool(boolean(await read_object(request, optional=True), "isAdmin", False))
    user = await orgs.set_org_member(caller(request), request.match_info["org"], request.match_info["member"],
                                     is_admin)
    return json_response({"member": svc.account_json(user), "isAdmin": is_admin})


@raises(*_READ, codes.NO_SUCH_MEMBER)
async def remove_org_member(request: web.Request) -> web.Response:
    await orgs.remove_org_member(caller(request), request.match_info["org"], request.match_info["member"])
    return web.Response(status=204)


@raises(*_READ)
async def list_teams(request: web.Request) -> web.Response:
    org, rows = await orgs.list_teams(caller(request), request.match_info["org"])
    return json_response({"teams": [svc.team_json(r, org.name) for r in rows]})


@raises(*_WRITE, codes.INVALID_NAME, codes.CONFLICT)
async def create_team(request: web.Request) -> web.Response:
    body = await read_object(request)
    org, row = await orgs.create_team(caller(request), request.match_info["org"], string(body, "name", "") or "",
                                      string(body, "description", "") or "")
    return json_response(svc.team_json(row, org.name), 201)


@raises(*_TEAM)
async def get_team(request: web.Request) -> web.Response:
    org, row = await orgs.get_team(caller(request), request.match_info["org"], request.match_info["team"])
    return json_response(svc.team_json(row, org.name))


@raises(*_WRITE, codes.NO_SUCH_TEAM)
async def update_team(request: web.Request) -> web.Response:
    body = await read_object(request)
    org, row = await orgs.update_team(caller(request), request.match_info["org"], request.match_info["team"],
                                      string(body, "description"))
    return json_response(svc.team_json(row, org.name))


@raises(*_TEAM)
async def delete_team(request: web.Request) -> web.Response:
    await orgs.delete_team(caller(request), request.match_info["org"], request.match_info["team"])
    return web.Response(status=204)


@raises(*_TEAM)
async def list_team_members(request: web.Request) -> web.Response:
    rows = await orgs.list_team_members(caller(request), request.match_info["org"], request.match_info["team"])
    return json_response({"members": [_member_json(r) for r in rows]})


@raises(*_MEMBER)
async def set_team_member(request: web.Request) -> web.Response:
    is_admin = bool(boolean(await read_object(request, optional=True), "isAdmin", False))
    user = await orgs.set_team_member(caller(request), request.match_info["org"], request.match_info["team"],
                                      request.match_info["member"], is_admin)
    return json_response({"member": svc.account_json(user), "isAdmin": is_admin})


@raises(*_MEMBER)
async def remove_team_member(request: web.Request) -> web.Response:
    await orgs.remove_team_member(caller(request), request.match_info["org"], request.match_info["team"],
                                  request.match_info["member"])
    return web.Response(status=204)


@raises(*_TEAM)
async def get_sync_config(request: web.Request) -> web.Response:
    team = await orgs.get_sync_config(caller(request), request.match_info["org"], request.match_info["team"])
    return json_response(svc.sync_json(team))


@raises(*_WRITE, codes.NO_SUCH_TEAM)
async def set_sync_config(request: web.Request) -> web.Response:
    """LDAP sync of the team's members: a group DN (``selectGroupMembers``) or a user search filter."""
    body = await read_object(request)
    config = orgs.SyncConfig(enable=bool(boolean(body, "enableSync", False)),
                             by_group=bool(boolean(body, "selectGroupMembers", True)),
                             group_dn=string(body, "groupDN", "") or "",
                             group_member_attr=string(body, "groupMemberAttr", "member") or "member",
                             search_filter=string(body, "searchFilter", "") or "")
    team = await orgs.set_sync_config(caller(request), request.match_info["org"], request.match_info["team"], config)
    return json_response(svc.sync_json(team))


# -- repositories and team access ---------------------------------------------------------------


def _repo_changes(body: dict[str, Any], new: bool) -> repos.RepoChanges:
    visibility = body.get("visibility")
    default = "" if new else None
    return repos.RepoChanges(visibility=None if visibility is None else str(visibility),
                             short_description=string(body, "shortDescription", default, 140),
                             long_description=string(body, "longDescription", default, 100_000),
                             immutable_tags=boolean(body, "immutableTags"))


def _level(body: dict[str, Any]) -> Level:
    try:
        return Level.parse(str(body.get("accessLevel", "")))
    except ValueError as e:
        raise APIError(codes.INVALID_PARAMETER, str(e)) from None


def _repo_path(request: web.Request) -> tuple[str, str]:
    return request.match_info["namespace"], request.match_info["repo"]


@raises(codes.INVALID_PARAMETER)
async def list_all_repositories(request: web.Request) -> web.Response:
    """Repositories the caller may see, by name."""
    start, size = page(request)
    rows, types = await repos.list_repositories(caller(request), None, start, size)
    return paged("repositories", rows, size, lambda r: repos.repo_json(r, types[r.name.partition("/")[0]]),
                 lambda r: r.name)


@raises(codes.INVALID_PARAMETER)
async def list_namespace_repositories(request: web.Request) -> web.Response:
    start, size = page(request)
    namespace = request.match_info["namespace"]
    rows, types = await repos.list_repositories(caller(request), namespace, start, size)
    return paged("repositories", rows, size, lambda r: repos.repo_json(r, types[namespace]),
                 lambda r: r.name.partition("/")[2])


@raises(*_WRITE, codes.INVALID_NAME, codes.CONFLICT)
async def create_repository(request: web.Request) -> web.Response:
    """``{name, visibility, shortDescription, longDescription, immutableTags}`` in the namespace."""
    body = await read_object(request)
    row, ns_type = await repos.create_repository(caller(request), request.match_info["namespace"],
                                                 string(body, "name", "") or "", _repo_changes(body, new=True))
    return json_response(repos.repo_json(row, ns_type), 201)


@raises(*_REPO)
async def get_repository(request: web.Request) -> web.Response:
    row, ns_type = await repos.get_repository(caller(request), *_repo_path(request))
    return json_response(repos.repo_json(row, ns_type))


@raises(*_REPO, codes.INVALID_JSON, codes.INVALID_PARAMETER)
async def update_repository(request: web.Request) -> web.Response:
    """Change visibility, descriptions and immutableTags (repository admins)."""
    change = _repo_changes(await read_object(request), new=False)
    row, ns_type = await repos.update_repository(caller(request), *_repo_path(request), change)
    return json_response(repos.repo_json(row, ns_type))


@raises(*_REPO)
async def delete_repository(request: web.Request) -> web.Response:
    await repos.delete_repository(caller(request), *_repo_path(request))
    return web.Response(status=204)


@raises(*_GRANT)
async def list_repo_team_access(request: web.Request) -> web.Response:
    repo, org, rows = await repos.list_repo_team_access(caller(request), *_repo_path(request))
    return json_response({"repository": repos.repo_json(repo, "organization"),
                          "teamAccessList": [repos.grant_json(r, org.name) for r in rows]})


@raises(*_GRANT, codes.INVALID_JSON, codes.INVALID_PARAMETER)
async def set_repo_team_access(request: web.Request) -> web.Response:
    """``{accessLevel: read-only | read-write | admin}`` for a team of the repository's organisation."""
    level = _level(await read_object(request))
    repo, org, team = await repos.set_repo_team_access(caller(request), *_repo_path(request),
                                                       request.match_info["team"], level)
    return json_response({"accessLevel": level.api_name, "team": svc.team_json(team, org.name),
                          "repository": repos.repo_json(repo, "organization")})


@raises(*_GRANT, codes.NO_SUCH_GRANT)
async def remove_repo_team_access(request: web.Request) -> web.Response:
    await repos.remove_repo_team_access(caller(request), *_repo_path(request), request.match_info["team"])
    return web.Response(status=204)


@raises(codes.FORBIDDEN, codes.INVALID_OPERATION)
async def list_ns_team_access(request: web.Request) -> web.Response:
    org, rows = await repos.list_ns_team_access(caller(request), request.match_info["namespace"])
    return json_response({"namespace": svc.account_json(org),
                          "teamAccessList": [repos.grant_json(r, org.name) for r in rows]})


@raises(codes.FORBIDDEN, codes.INVALID_OPERATION, codes.NO_SUCH_TEAM, codes.INVALID_JSON, codes.INVALID_PARAMETER)
async def set_ns_team_access(request: web.Request) -> web.Response:
    level = _level(await read_object(request))
    org, team = await repos.set_ns_team_access(caller(request), request.match_info["namespace"],
                                               request.match_info["team"], level)
    return json_response({"accessLevel": level.api_name, "team": svc.team_json(team, org.name),
                          "namespace": svc.account_json(org)})


@raises(codes.FORBIDDEN, codes.INVALID_OPERATION, codes.NO_SUCH_TEAM, codes.NO_SUCH_GRANT)
async def remove_ns_team_access(request: web.Request) -> web.Response:
    await repos.remove_ns_team_access(caller(request), request.match_info["namespace"], request.match_info["team"])
    return web.Response(status=204)


# -- access tokens -------------------------------------------------------------------------------


def _owner(request: web.Request) -> str | None:
    return request.query.get("username") or None


@raises(*_TOKEN)
async def list_tokens(request: web.Request) -> web.Response:
    raw_start, size = page(request)
    start = int(raw_start) if raw_start and raw_start.isdigit() else 0
    user, rows = await usecases.list_tokens(caller(request), _owner(request), start, size)
    return paged("apiTokens", rows, size, lambda r: svc.token_json(r, user.name), lambda r: r.id)


@raises(*_TOKEN, codes.INVALID_JSON)
async def create_token(request: web.Request) -> web.Response:
    """``{tokenLabel, expiresAt?}``: the token is in the answer, once; only its hash is kept."""
    body = await read_object(request, optional=True)
    label = string(body, "tokenLabel", "", 255) or ""
    expires = timestamp(string(body, "expiresAt", None, 64), "expiresAt")
    user, row, token = await usecases.create_token(caller(request), _owner(request), label, expires)
    return json_response({**svc.token_json(row, user.name), "token": token}, 201)


@raises(*_TOKEN)
async def get_token(request: web.Request) -> web.Response:
    user, row = await usecases.get_token(caller(request), _owner(request), request.match_info["hash"])
    return json_response(svc.token_json(row, user.name))


@raises(*_TOKEN, codes.INVALID_JSON)
async def update_token(request: web.Request) -> web.Response:
    """Change ``tokenLabel`` or ``isActive`` (false revokes it)."""
    body = await read_object(request)
    user, row = await usecases.update_token(caller(request), _owner(request), request.match_info["hash"],
                                            string(body, "tokenLabel", None, 255), boolean(body, "isActive"))
    return json_response(svc.token_json(row, user.name))


@raises(*_TOKEN)
async def delete_token(request: web.Request) -> web.Response:
    await usecases.delete_token(caller(request), _owner(request), request.match_info["hash"])
    return web.Response(status=204)


# -- settings and events -------------------------------------------------------------------------


async def get_settings(request: web.Request) -> web.Response:
    return json_response(await usecases.get_settings(caller(request)))


@raises(codes.FORBIDDEN, codes.INVALID_JSON, codes.INVALID_PARAMETER, codes.INVALID_OPERATION)
async def update_settings(request: web.Request) -> web.Response:
    """``{createRepositoryOnPush: bool}`` (site admins)."""
    body = await read_object(request)
    return json_response(await usecases.update_settings(caller(request), {k: boolean(body, k) for k in body}))


@raises(codes.FORBIDDEN, codes.INVALID_PARAMETER)
async def list_events(request: web.Request) -> web.Response:
    """Audit events, newest first; filters ``actor``, ``type``, ``object``, ``publishedAfter``,
    ``publishedBefore`` (site admins)."""
    raw_start, size = page(request)
    if raw_start is not None and not raw_start.isdigit():
        raise APIError(codes.INVALID_PARAMETER, "pageStart must be an event id")
    q = request.query
    f = svc.EventFilter(actor=q.get("actor"), type=q.get("type"), object_name=q.get("object"),
                        after=timestamp(q.get("publishedAfter"), "publishedAfter"),
                        before=timestamp(q.get("publishedBefore"), "publishedBefore"))
    rows = await usecases.list_events(caller(request), f, int(raw_start) if raw_start else None, size)
    return paged("events", rows, size, svc.event_json, lambda r: r.id)


def register(app: web.Application) -> None:
    """The accounts routes of /api/v0 (authentication is the API's: ``dtr.api.app.create_api_app``)."""
    r = app.router
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

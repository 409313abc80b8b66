"""``/api/v0`` for accounts, organisations, teams, repositories, grants, access tokens, settings
and audit events, in DTR's shapes (``shapes``). Each handler is a typed operation
(``dtr.api.operations``): its annotations say what it parses and answers; it calls its use case
(``usecases``, ``orgs``, ``repositories``) with the request's ``Caller`` and renders the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from dtr.accounts import orgs, usecases
from dtr.accounts import repositories as repos
from dtr.accounts import service as svc
from dtr.accounts import shapes as s
from dtr.accounts.context import Caller
from dtr.api.errors import APIError, codes
from dtr.api.operations import Paged, PageQuery, add_all, operation
from dtr.auth.access import Level
from dtr.auth.api import principal
from dtr.keys import AUTH, CONFIG, DATABASE


def caller(request: web.Request) -> Caller:
    """The request's principal and client address, with what the use cases work with."""
    return Caller(request.config_dict[DATABASE].engine, principal(request), request.remote or "",
                  request.config_dict[AUTH], request.config_dict[CONFIG].auth.min_password_length,
                  request.config_dict[CONFIG].scanning.scan_on_push)


def _member(row: Any, is_admin: bool | None = None) -> s.Member:
    return {"member": svc.account_json(row), "isAdmin": bool(row.member_admin if is_admin is None else is_admin)}


def _next(rows: list[Any], size: int, key: Callable[[Any], object]) -> str | None:
    """The pageStart after ``rows`` (fetched with one more than ``size``), None on the last page."""
    return str(key(rows[size])) if len(rows) > size else None


_READ = (codes.FORBIDDEN, codes.NO_SUCH_ACCOUNT)
_WRITE = (codes.INVALID_JSON, *_READ)
_TEAM = (*_READ, codes.NO_SUCH_TEAM)
_MEMBER = (*_TEAM, codes.NO_SUCH_MEMBER)
_REPO = (codes.FORBIDDEN, codes.NO_SUCH_REPOSITORY)
_GRANT = (*_REPO, codes.INVALID_OPERATION, codes.NO_SUCH_TEAM)
_TOKEN = (codes.FORBIDDEN, codes.NO_SUCH_ACCOUNT, codes.NO_SUCH_TOKEN)


# -- accounts --------------------------------------------------------------------------------


@operation()
async def list_accounts(request: web.Request, query: s.AccountsQuery) -> Paged[s.AccountList]:
    """List users and organisations (``filter``: all, users, orgs, admins)."""
    rows = await usecases.list_accounts(caller(request), query.filter, query.page_start, query.page_size)
    return Paged({"accounts": [svc.account_json(r) for r in rows[:query.page_size]]},
                 _next(rows, query.page_size, lambda r: r.name))


@operation(*_WRITE, codes.INVALID_NAME, codes.INVALID_PASSWORD, codes.CONFLICT, status=201)
async def create_account(request: web.Request, body: s.NewAccount) -> s.Account:
    """Create a user (``password``) or an organisation (``isOrg: true``). Site admins only."""
    new = usecases.NewAccount(name=body.name, is_org=body.is_org, full_name=body.full_name, email=body.email,
                              password=body.password, is_admin=body.is_admin, is_active=body.is_active)
    return svc.account_json(await usecases.create_account(caller(request), new))


@operation(codes.NO_SUCH_ACCOUNT)
async def me(request: web.Request) -> s.Account | s.AuthOff:
    """The calling user."""
    row = await usecases.me(caller(request))
    if row is None:
        return {"name": "", "isAdmin": True, "isOrg": False, "isActive": True, "authDisabled": True}
    return svc.account_json(row)


@operation(codes.NO_SUCH_ACCOUNT)
async def get_account(request: web.Request, name: str) -> s.Account:
    """A user or organisation."""
    return svc.account_json(await usecases.get_account(caller(request), name))


@operation(*_WRITE, codes.CONFLICT)
async def update_account(request: web.Request, name: str, body: s.AccountChanges) -> s.Account:
    """Change fullName, email (the user or an admin), isAdmin, isActive (admins)."""
    changes = usecases.AccountChanges(full_name=body.full_name, email=body.email, is_admin=body.is_admin,
                                      is_active=body.is_active)
    return svc.account_json(await usecases.update_account(caller(request), name, changes))


@operation(codes.FORBIDDEN, codes.NO_SUCH_ACCOUNT, codes.INVALID_OPERATION, codes.CONFLICT)
async def delete_account(request: web.Request, name: str) -> None:
    """Delete a user or organisation (site admins); its namespace must hold no repositories."""
    await usecases.delete_account(caller(request), name)


@operation(*_WRITE, codes.INVALID_PASSWORD, codes.INVALID_OPERATION)
async def change_password(request: web.Request, name: str, body: s.PasswordChange) -> s.Account:
    """Change a user's password: ``{oldPassword, newPassword}``; site admins may omit oldPassword
    for other users."""
    return svc.account_json(await usecases.change_password(caller(request), name, body.new_password,
                                                           body.old_password))


# -- organisation members and teams ------------------------------------------------------------


@operation(*_READ)
async def list_org_members(request: web.Request, org: str) -> s.MemberList:
    """The organisation's members."""
    return {"members": [_member(r) for r in await orgs.list_org_members(caller(request), org)]}


@operation(*_WRITE)
async def set_org_member(request: web.Request, org: str, member: str, body: s.Membership) -> s.Member:
    """Add a user to the organisation; ``isAdmin: true`` makes them an owner."""
    user = await orgs.set_org_member(caller(request), org, member, body.is_admin)
    return _member(user, body.is_admin)


@operation(*_READ, codes.NO_SUCH_MEMBER)
async def remove_org_member(request: web.Request, org: str, member: str) -> None:
    """Remove a user from the organisation (and its teams)."""
    await orgs.remove_org_member(caller(request), org, member)


@operation(*_READ)
async def list_teams(request: web.Request, org: str) -> s.TeamList:
    """The organisation's teams."""
    found, rows = await orgs.list_teams(caller(request), org)
    return {"teams": [svc.team_json(r, found.name) for r in rows]}


@operation(*_WRITE, codes.INVALID_NAME, codes.CONFLICT, status=201)
async def create_team(request: web.Request, org: str, body: s.NewTeam) -> s.Team:
    """Create a team in the organisation."""
    found, row = await orgs.create_team(caller(request), org, body.name, body.description)
    return svc.team_json(row, found.name)


@operation(*_TEAM)
async def get_team(request: web.Request, org: str, team: str) -> s.Team:
    """A team of the organisation."""
    found, row = await orgs.get_team(caller(request), org, team)
    return svc.team_json(row, found.name)


@operation(*_WRITE, codes.NO_SUCH_TEAM)
async def update_team(request: web.Request, org: str, team: str, body: s.TeamChanges) -> s.Team:
    """Change the team's description."""
    found, row = await orgs.update_team(caller(request), org, team, body.description)
    return svc.team_json(row, found.name)


@operation(*_TEAM)
async def delete_team(request: web.Request, org: str, team: str) -> None:
    """Delete the team (its members stay in the organisation)."""
    await orgs.delete_team(caller(request), org, team)


@operation(*_TEAM)
async def list_team_members(request: web.Request, org: str, team: str) -> s.MemberList:
    """The team's members."""
    return {"members": [_member(r) for r in await orgs.list_team_members(caller(request), org, team)]}


@operation(*_MEMBER, codes.INVALID_JSON)
async def set_team_member(request: web.Request, org: str, team: str, member: str, body: s.Membership) -> s.Member:
    """Add a user to the team (and the organisation)."""
    user = await orgs.set_team_member(caller(request), org, team, member, body.is_admin)
    return _member(user, body.is_admin)


@operation(*_MEMBER)
async def remove_team_member(request: web.Request, org: str, team: str, member: str) -> None:
    """Remove a user from the team."""
    await orgs.remove_team_member(caller(request), org, team, member)


@operation(*_TEAM)
async def get_sync_config(request: web.Request, org: str, team: str) -> s.SyncConfig:
    """The team's LDAP member sync."""
    return svc.sync_json(await orgs.get_sync_config(caller(request), org, team))


@operation(*_WRITE, codes.NO_SUCH_TEAM, codes.INVALID_OPERATION)
async def set_sync_config(request: web.Request, org: str, team: str, body: s.SyncConfigChanges) -> s.SyncConfig:
    """LDAP sync of the team's members: a group DN (``selectGroupMembers``) or a user search filter."""
    config = orgs.SyncConfig(enable=body.enable_sync, by_group=body.select_group_members, group_dn=body.group_dn,
                             group_member_attr=body.group_member_attr, search_filter=body.search_filter)
    return svc.sync_json(await orgs.set_sync_config(caller(request), org, team, config))


# -- repositories and team access ---------------------------------------------------------------


def _changes(body: s.RepositoryFields) -> repos.RepoChanges:
    return repos.RepoChanges(visibility=body.visibility, short_description=body.short_description,
                             long_description=body.long_description, immutable_tags=body.immutable_tags,
                             scan_on_push=body.scan_on_push)


@operation()
async def list_all_repositories(request: web.Request, query: PageQuery) -> Paged[s.RepositoryList]:
    """Repositories the caller may see, by name."""
    rows, types = await repos.list_repositories(caller(request), None, query.page_start, query.page_size)
    return Paged({"repositories": [repos.repo_json(r, types[r.name.partition("/")[0]])
                                   for r in rows[:query.page_size]]},
                 _next(rows, query.page_size, lambda r: r.name))


@operation()
async def list_namespace_repositories(request: web.Request, namespace: str,
                                      query: PageQuery) -> Paged[s.RepositoryList]:
    """Repositories of the namespace the caller may see, by name."""
    rows, types = await repos.list_repositories(caller(request), namespace, query.page_start, query.page_size)
    return Paged({"repositories": [repos.repo_json(r, types[namespace]) for r in rows[:query.page_size]]},
                 _next(rows, query.page_size, lambda r: r.name.partition("/")[2]))


@operation(*_WRITE, codes.INVALID_NAME, codes.CONFLICT, status=201)
async def create_repository(request: web.Request, namespace: str, body: s.NewRepository) -> s.Repository:
    """Create a repository in the namespace (its admins, or site admins)."""
    fields = body.model_copy(update={k: v if v is not None else "" for k, v in
                                     (("short_description", body.short_description),
                                      ("long_description", body.long_description))})
    row, ns_type = await repos.create_repository(caller(request), namespace, body.name, _changes(fields))
    return repos.repo_json(row, ns_type)


@operation(*_REPO)
async def get_repository(request: web.Request, namespace: str, repo: str) -> s.Repository:
    """A repository."""
    row, ns_type = await repos.get_repository(caller(request), namespace, repo)
    return repos.repo_json(row, ns_type)


@operation(*_REPO, codes.INVALID_JSON)
async def update_repository(request: web.Request, namespace: str, repo: str,
                            body: s.RepositoryFields) -> s.Repository:
    """Change visibility, descriptions and immutableTags (repository admins)."""
    row, ns_type = await repos.update_repository(caller(request), namespace, repo, _changes(body))
    return repos.repo_json(row, ns_type)


@operation(*_REPO)
async def delete_repository(request: web.Request, namespace: str, repo: str) -> None:
    """Delete a repository, its tags and manifests (repository admins)."""
    await repos.delete_repository(caller(request), namespace, repo)


@operation(*_GRANT)
async def list_repo_team_access(request: web.Request, namespace: str, repo: str) -> s.RepositoryAccess:
    """The teams granted access to the repository."""
    found, org, rows = await repos.list_repo_team_access(caller(request), namespace, repo)
    return {"repository": repos.repo_json(found, "organization"),
            "teamAccessList": [repos.grant_json(r, org.name) for r in rows]}


@operation(*_GRANT, codes.INVALID_JSON)
async def set_repo_team_access(request: web.Request, namespace: str, repo: str, team: str,
                               body: s.AccessLevelChange) -> s.RepositoryGrant:
    """Grant a team of the repository's organisation ``read-only``, ``read-write`` or ``admin``."""
    level = Level.parse(body.access_level)
    found, org, row = await repos.set_repo_team_access(caller(request), namespace, repo, team, level)
    return {"accessLevel": level.api_name, "team": svc.team_json(row, org.name),
            "repository": repos.repo_json(found, "organization")}


@operation(*_GRANT, codes.NO_SUCH_GRANT)
async def remove_repo_team_access(request: web.Request, namespace: str, repo: str, team: str) -> None:
    """Take a team's access to the repository away."""
    await repos.remove_repo_team_access(caller(request), namespace, repo, team)


@operation(codes.FORBIDDEN, codes.INVALID_OPERATION)
async def list_ns_team_access(request: web.Request, namespace: str) -> s.NamespaceAccess:
    """The teams granted access to every repository of the organisation's namespace."""
    org, rows = await repos.list_ns_team_access(caller(request), namespace)
    return {"namespace": svc.account_json(org), "teamAccessList": [repos.grant_json(r, org.name) for r in rows]}


@operation(codes.FORBIDDEN, codes.INVALID_OPERATION, codes.NO_SUCH_TEAM, codes.INVALID_JSON)
async def set_ns_team_access(request: web.Request, namespace: str, team: str,
                             body: s.AccessLevelChange) -> s.NamespaceGrant:
    """Grant a team access to every repository of the organisation's namespace."""
    level = Level.parse(body.access_level)
    org, row = await repos.set_ns_team_access(caller(request), namespace, team, level)
    return {"accessLevel": level.api_name, "team": svc.team_json(row, org.name), "namespace": svc.account_json(org)}


@operation(codes.FORBIDDEN, codes.INVALID_OPERATION, codes.NO_SUCH_TEAM, codes.NO_SUCH_GRANT)
async def remove_ns_team_access(request: web.Request, namespace: str, team: str) -> None:
    """Take a team's namespace-wide access away."""
    await repos.remove_ns_team_access(caller(request), namespace, team)


# -- access tokens -------------------------------------------------------------------------------


@operation(*_TOKEN)
async def list_tokens(request: web.Request, query: s.TokensQuery) -> Paged[s.TokenList]:
    """The access tokens of the caller (or of ``username``, for site admins)."""
    start = int(query.page_start) if query.page_start and query.page_start.isdigit() else 0
    user, rows = await usecases.list_tokens(caller(request), query.username, start, query.page_size)
    return Paged({"apiTokens": [svc.token_json(r, user.name) for r in rows[:query.page_size]]},
                 _next(rows, query.page_size, lambda r: r.id))


@operation(*_TOKEN, codes.INVALID_JSON, status=201)
async def create_token(request: web.Request, query: s.TokenOwner, body: s.NewToken) -> s.NewTokenAnswer:
    """Create an access token ``{tokenLabel, expiresAt?}``: the token is in the answer, once; only its
    hash is kept."""
    user, row, token = await usecases.create_token(caller(request), query.username, body.token_label,
                                                   body.expires_at)
    return {**svc.token_json(row, user.name), "token": token}


@operation(*_TOKEN)
async def get_token(request: web.Request, hash: str, query: s.TokenOwner) -> s.Token:
    """An access token, by its hash."""
    user, row = await usecases.get_token(caller(request), query.username, hash)
    return svc.token_json(row, user.name)


@operation(*_TOKEN, codes.INVALID_JSON)
async def update_token(request: web.Request, hash: str, query: s.TokenOwner, body: s.TokenChanges) -> s.Token:
    """Change ``tokenLabel`` or ``isActive`` (false revokes it)."""
    user, row = await usecases.update_token(caller(request), query.username, hash, body.token_label,
                                            body.is_active)
    return svc.token_json(row, user.name)


@operation(*_TOKEN)
async def delete_token(request: web.Request, hash: str, query: s.TokenOwner) -> None:
    """Delete an access token."""
    await usecases.delete_token(caller(request), query.username, hash)


# -- settings and events -------------------------------------------------------------------------


@operation()
async def get_settings(request: web.Request) -> s.Settings:
    """The site settings."""
    return _settings(await usecases.get_settings(caller(request)))


def _settings(values: dict[str, Any]) -> s.Settings:
    return {"createRepositoryOnPush": bool(values["createRepositoryOnPush"])}


async def _update_settings(request: web.Request, body: s.SettingsChanges) -> s.Settings:
    changes = body.model_dump(by_alias=True, exclude_unset=True)
    return _settings(await usecases.update_settings(caller(request), changes))


@operation(codes.FORBIDDEN, codes.INVALID_JSON, codes.INVALID_OPERATION)
async def update_settings(request: web.Request, body: s.SettingsChanges) -> s.Settings:
    """Change the site settings (site admins): the fields given."""
    return await _update_settings(request, body)


@operation(codes.FORBIDDEN, codes.INVALID_JSON, codes.INVALID_OPERATION)
async def post_settings(request: web.Request, body: s.SettingsChanges) -> s.Settings:
    """Change the site settings (site admins), as DTR's clients POST them: the fields given."""
    return await _update_settings(request, body)


@operation(codes.FORBIDDEN)
async def list_events(request: web.Request, query: s.EventsQuery) -> Paged[s.EventList]:
    """Audit events, newest first; filters ``actor``, ``type``, ``object``, ``publishedAfter``,
    ``publishedBefore`` (site admins)."""
    start = query.page_start
    if start is not None and not start.isdigit():
        raise APIError(codes.INVALID_PARAMETER, "pageStart must be an event id")
    f = svc.EventFilter(actor=query.actor, type=query.type, object_name=query.object_name,
                        after=query.published_after, before=query.published_before)
    rows = await usecases.list_events(caller(request), f, int(start) if start else None, query.page_size)
    return Paged({"events": [svc.event_json(r) for r in rows[:query.page_size]]},
                 _next(rows, query.page_size, lambda r: r.id))


def register(app: web.Application) -> None:
    """The accounts routes of /api/v0 (authentication is the API's: ``dtr.api.app.create_api_app``)."""
    from dtr.accounts.ldapviews import ROUTES as LDAP_ROUTES  # it uses ``caller`` from here

    add_all(app.router, (
        ("GET", "/accounts", list_accounts),
        ("POST", "/accounts", create_account),
        ("GET", "/accounts/me", me),
        ("GET", "/accounts/{name}", get_account),
        ("PATCH", "/accounts/{name}", update_account),
        ("DELETE", "/accounts/{name}", delete_account),
        ("POST", "/accounts/{name}/changePassword", change_password),
        ("GET", "/accounts/{org}/members", list_org_members),
        ("PUT", "/accounts/{org}/members/{member}", set_org_member),
        ("DELETE", "/accounts/{org}/members/{member}", remove_org_member),
        ("GET", "/accounts/{org}/teams", list_teams),
        ("POST", "/accounts/{org}/teams", create_team),
        ("GET", "/accounts/{org}/teams/{team}", get_team),
        ("PATCH", "/accounts/{org}/teams/{team}", update_team),
        ("DELETE", "/accounts/{org}/teams/{team}", delete_team),
        ("GET", "/accounts/{org}/teams/{team}/members", list_team_members),
        ("PUT", "/accounts/{org}/teams/{team}/members/{member}", set_team_member),
        ("DELETE", "/accounts/{org}/teams/{team}/members/{member}", remove_team_member),
        ("GET", "/accounts/{org}/teams/{team}/memberSyncConfig", get_sync_config),
        ("PUT", "/accounts/{org}/teams/{team}/memberSyncConfig", set_sync_config),
        ("GET", "/repositories", list_all_repositories),
        ("GET", "/repositories/{namespace}", list_namespace_repositories),
        ("POST", "/repositories/{namespace}", create_repository),
        ("GET", "/repositories/{namespace}/{repo}", get_repository),
        ("PATCH", "/repositories/{namespace}/{repo}", update_repository),
        ("DELETE", "/repositories/{namespace}/{repo}", delete_repository),
        ("GET", "/repositories/{namespace}/{repo}/teamAccess", list_repo_team_access),
        ("PUT", "/repositories/{namespace}/{repo}/teamAccess/{team}", set_repo_team_access),
        ("DELETE", "/repositories/{namespace}/{repo}/teamAccess/{team}", remove_repo_team_access),
        ("GET", "/repositoryNamespaces/{namespace}/teamAccess", list_ns_team_access),
        ("PUT", "/repositoryNamespaces/{namespace}/teamAccess/{team}", set_ns_team_access),
        ("DELETE", "/repositoryNamespaces/{namespace}/teamAccess/{team}", remove_ns_team_access),
        ("GET", "/api_tokens", list_tokens),
        ("POST", "/api_tokens", create_token),
        ("GET", "/api_tokens/{hash}", get_token),
        ("PATCH", "/api_tokens/{hash}", update_token),
        ("DELETE", "/api_tokens/{hash}", delete_token),
        ("GET", "/meta/settings", get_settings),
        ("POST", "/meta/settings", post_settings),
        ("PATCH", "/meta/settings", update_settings),
        ("GET", "/events", list_events),
        *LDAP_ROUTES,
    ))

"""Use cases on organisations: members, teams, team members and the teams' LDAP sync, apart from HTTP.

Members of an organisation may see it; its owners (members with ``isAdmin``) and site admins
manage it. ``open_org``/``open_team`` are the one opening every use case here starts with.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.accounts import service as svc
from dtr.accounts.context import Caller
from dtr.api.errors import APIError, codes
from dtr.auth.access import Principal


async def may_manage(conn: AsyncConnection, p: Principal, org: Any) -> bool:
    """Whether ``p`` is a site admin or an owner of ``org``."""
    return p.is_admin or await svc.org_role(conn, org.id, p.id) is True


async def authorize_org(c: Caller, conn: AsyncConnection, org: Any, manage: bool) -> None:
    """FORBIDDEN unless the caller may see ``org`` (``manage`` False: its members) or manage it."""
    p = c.user()
    if manage and not await may_manage(conn, p, org):
        raise APIError(codes.FORBIDDEN, f"only site admins and owners of {org.name} may do this")
    if not manage and not p.is_admin and await svc.org_role(conn, org.id, p.id) is None:
        raise APIError(codes.FORBIDDEN, f"only members of {org.name} may see this")


async def open_org(c: Caller, conn: AsyncConnection, name: str, manage: bool) -> Any:
    """The organisation ``name``, once the caller is known to may see it or (``manage``) manage it."""
    c.user()
    org = await svc.get_org(conn, name)
    await authorize_org(c, conn, org, manage)
    return org


async def open_team(c: Caller, conn: AsyncConnection, org_name: str, team_name: str,
                    manage: bool) -> tuple[Any, Any]:
    """(organisation, team), as ``open_org`` opens the organisation."""
    org = await open_org(c, conn, org_name, manage)
    return org, await svc.get_team(conn, org.id, team_name)


# -- members ----------------------------------------------------------------------------------


async def list_org_members(c: Caller, org_name: str) -> list[Any]:
    """Accounts with ``member_admin`` (owner or not), by name."""
    async with c.engine.connect() as conn:
        org = await open_org(c, conn, org_name, manage=False)
        return await svc.list_org_members(conn, org.id)


async def set_org_member(c: Caller, org_name: str, member: str, is_admin: bool) -> Any:
    """Add ``member`` to the organisation (``is_admin``: as an owner); the member's account."""
    async with c.engine.begin() as conn:
        org = await open_org(c, conn, org_name, manage=True)
        user = await svc.get_user(conn, member)
        await svc.set_org_member(conn, org.id, user.id, is_admin)
    await c.changed("org_member_set", "organization", org.name, {"member": user.name, "isAdmin": is_admin})
    return user


async def remove_org_member(c: Caller, org_name: str, member: str) -> None:
    """Remove ``member`` from the organisation and its teams."""
    async with c.engine.begin() as conn:
        org = await open_org(c, conn, org_name, manage=True)
        user = await svc.get_user(conn, member)
        if not await svc.remove_org_member(conn, org.id, user.id):
            raise APIError(codes.NO_SUCH_MEMBER, f"{user.name} is not a member of {org.name}")
    await c.changed("org_member_remove", "organization", org.name, {"member": user.name})


# -- teams ------------------------------------------------------------------------------------


async def list_teams(c: Caller, org_name: str) -> tuple[Any, list[Any]]:
    async with c.engine.connect() as conn:
        org = await open_org(c, conn, org_name, manage=False)
        return org, await svc.list_teams(conn, org.id)


async def create_team(c: Caller, org_name: str, name: str, description: str = "") -> tuple[Any, Any]:
    """(organisation, the new team)."""
    c.user()
    try:
        svc.check_name(name, "team")
    except ValueError as e:
        raise APIError(codes.INVALID_NAME, str(e)) from None
    async with c.engine.begin() as conn:
        org = await open_org(c, conn, org_name, manage=True)
        row = await svc.create_team(conn, org.id, name, description)
    await c.changed("team_create", "team", f"{org.name}/{name}")
    return org, row


async def get_team(c: Caller, org_name: str, team_name: str) -> tuple[Any, Any]:
    async with c.engine.connect() as conn:
        return await open_team(c, conn, org_name, team_name, manage=False)


async def update_team(c: Caller, org_name: str, team_name: str, description: str | None) -> tuple[Any, Any]:
    """Change the description (None: leave it)."""
    async with c.engine.begin() as conn:
        org, row = await open_team(c, conn, org_name, team_name, manage=True)
        if description is not None:
            row = await svc.update_team(conn, row.id, description=description)
    await c.changed("team_update", "team", f"{org.name}/{row.name}")
    return org, row


async def delete_team(c: Caller, org_name: str, team_name: str) -> None:
    async with c.engine.begin() as conn:
        org, row = await open_team(c, conn, org_name, team_name, manage=True)
        await svc.delete_team(conn, row.id)
    await c.changed("team_delete", "team", f"{org.name}/{row.name}")


async def list_team_members(c: Caller, org_name: str, team_name: str) -> list[Any]:
    """Accounts with ``member_admin``, by name."""
    async with c.engine.connect() as conn:
        _, team = await open_team(c, conn, org_name, team_name, manage=False)
        return await svc.list_team_members(conn, team.id)


async def set_team_member(c: Caller, org_name: str, team_name: str, member: str, is_admin: bool) -> Any:
    """Add ``member`` to the team (and so to the organisation); the member's account."""
    async with c.engine.begin() as conn:
        org, team = await open_team(c, conn, org_name, team_name, manage=True)
        user = await svc.get_user(conn, member)
        await svc.add_team_member(conn, org.id, team.id, user.id, is_admin)
    await c.changed("team_member_add", "team", f"{org.name}/{team.name}", {"member": user.name})
    return user


async def remove_team_member(c: Caller, org_name: str, team_name: str, member: str) -> None:
    async with c.engine.begin() as conn:
        org, team = await open_team(c, conn, org_name, team_name, manage=True)
        user = await svc.get_user(conn, member)
        if not await svc.remove_team_member(conn, team.id, user.id):
            raise APIError(codes.NO_SUCH_MEMBER, f"{user.name} is not in team {team.name}")
    await c.changed("team_member_remove", "team", f"{org.name}/{team.name}", {"member": user.name})


# -- LDAP sync of a team's members ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SyncConfig:
    """Sync the team's members from a directory group (``by_group``) or a user search filter."""

    enable: bool = False
    by_group: bool = True
    group_dn: str = ""
    group_member_attr: str = "member"
    search_filter: str = ""

    def columns(self) -> dict[str, Any]:
        """The team's columns; INVALID_PARAMETER when sync is on without the group DN or the
        search filter it selects members by (blank is none)."""
        if self.enable and self.by_group and not self.group_dn.strip():
            raise APIError(codes.INVALID_PARAMETER, "groupDN is required when selectGroupMembers is true")
        if self.enable and not self.by_group and not self.search_filter.strip():
            raise APIError(codes.INVALID_PARAMETER, "searchFilter is required when selectGroupMembers is false")
        return {"type": "ldap" if self.enable else "managed",
                "ldap_group_dn": self.group_dn if self.enable and self.by_group else None,
                "ldap_group_member_attr": (self.group_member_attr or "member") if self.by_group else None,
                "ldap_user_filter": self.search_filter if self.enable and not self.by_group else None}


async def get_sync_config(c: Caller, org_name: str, team_name: str) -> Any:
    """The team (``service.sync_json`` renders its sync configuration); owners and site admins."""
    async with c.engine.connect() as conn:
        return (await open_team(c, conn, org_name, team_name, manage=True))[1]


async def set_sync_config(c: Caller, org_name: str, team_name: str, config: SyncConfig) -> Any:
    """Configure the team's LDAP sync; the team after the change. Turning sync on needs a
    directory (``auth.ldap``): INVALID_OPERATION without one."""
    c.user()
    values = config.columns()
    async with c.engine.begin() as conn:
        org, team = await open_team(c, conn, org_name, team_name, manage=True)
        if config.enable and (c.auth is None or await c.auth.directory() is None):
            raise APIError(codes.INVALID_OPERATION, "LDAP is not configured: save its settings (/api/v0/meta/ldap) "
                           "or set auth.ldap in the configuration to sync team members from a directory")
        team = await svc.update_team(conn, team.id, **values)
    await c.changed("team_sync_config", "team", f"{org.name}/{team.name}", dict(svc.sync_json(team)))
    return team

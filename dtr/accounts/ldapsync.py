"""``dtr ldap sync``: directory users become (imported) dtr users, users gone from the directory
are deactivated (never deleted), and teams with a sync config get the directory's members.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.accounts import service as svc
from dtr.audit import service as audit
from dtr.auth.ldap import Directory, DirectoryUser

accounts = svc.accounts


@dataclasses.dataclass
class SyncReport:
    created: list[str] = dataclasses.field(default_factory=list)
    updated: int = 0
    deactivated: list[str] = dataclasses.field(default_factory=list)
    #: Gone from the directory but kept active: the last active site admin.
    kept: list[str] = dataclasses.field(default_factory=list)
    #: Directory users whose name is taken by a local (non-directory) account.
    conflicts: list[str] = dataclasses.field(default_factory=list)
    #: "org/team" -> (added, removed) member names.
    teams: dict[str, tuple[list[str], list[str]]] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "deactivated": self.deactivated,
                "kept": self.kept, "conflicts": self.conflicts,
                "teams": {k: {"added": a, "removed": r} for k, (a, r) in self.teams.items()}}


async def sync(engine: AsyncEngine, directory: Directory) -> SyncReport:
    report = SyncReport()
    found = {u.username: u for u in await directory.users()}
    async with engine.begin() as conn:
        existing = {r.name: r for r in (await conn.execute(select(accounts))).all()}
        for name, user in found.items():
            row = existing.get(name)
            if row is not None and (row.is_org or not row.is_imported):
                report.conflicts.append(name)
                continue
            values = {"full_name": user.full_name[:255], "email": user.email[:255], "ldap_dn": user.dn}
            if row is None:
                try:
                    svc.check_name(name)
                except ValueError:
                    report.conflicts.append(name)
                    continue
                await conn.execute(pg_insert(accounts).values(
                    name=name, is_org=False, password_hash=None, is_admin=False, is_active=True,
                    is_imported=True, credential_gen=0, **values).on_conflict_do_nothing())
                report.created.append(name)
            elif (row.full_name, row.email, row.ldap_dn) != (values["full_name"], values["email"], values["ldap_dn"]):
                await conn.execute(update(accounts).where(accounts.c.id == row.id).values(**values))
                report.updated += 1
        admins = set(await svc.lock_active_admins(conn))
        for name, row in existing.items():
            if row.is_imported and row.is_active and name not in found:
                if admins == {name}:  # never leave the site without an admin
                    report.kept.append(name)
                    continue
                admins.discard(name)
                await conn.execute(update(accounts).where(accounts.c.id == row.id)
                                   .values(is_active=False, credential_gen=row.credential_gen + 1))
                report.deactivated.append(name)
        ids = {r.name: r.id for r in (await conn.execute(select(accounts.c.name, accounts.c.id)
                                                          .where(accounts.c.is_imported))).all()}
        team_rows = (await conn.execute(
            select(svc.teams, accounts.c.name.label("org_name"))
            .join(accounts, accounts.c.id == svc.teams.c.org_id).where(svc.teams.c.type == "ldap"))).all()
    for team in team_rows:
        members = await _team_members(directory, team, found)
        want = {ids[n] for n in members if n in ids}
        async with engine.begin() as conn:
            have = {r.user_id: r for r in (await conn.execute(
                select(svc.team_members.c.user_id).where(svc.team_members.c.team_id == team.id))).all()}
            names = {v: k for k, v in ids.items()}
            added = sorted(names[i] for i in want - set(have))
            removed = sorted(names.get(i, str(i)) for i in set(have) - want)
            for uid in want - set(have):
                await svc.add_team_member(conn, team.org_id, team.id, uid, False)
            for uid in set(have) - want:
                await svc.remove_team_member(conn, team.id, uid)
        report.teams[f"{team.org_name}/{team.name}"] = (added, removed)
    await audit.record(engine, "ldap_sync", "", "", "directory", directory.cfg.url,
                       {"created": len(report.created), "deactivated": report.deactivated,
                        "teams": {k: {"added": a, "removed": r} for k, (a, r) in report.teams.items()}})
    return report


async def _team_members(directory: Directory, team: Any, found: dict[str, DirectoryUser]) -> set[str]:
    if team.ldap_group_dn:
        dns = await directory.group_member_dns(team.ldap_group_dn, team.ldap_group_member_attr or "member")
        return {u.username for u in found.values() if u.dn.lower() in dns}
    if team.ldap_user_filter:
        return {u.username for u in await directory.users(team.ldap_user_filter)}
    return set()

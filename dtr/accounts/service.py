"""Accounts, organisations, teams, access tokens, audit events: database work, and their JSON shapes.

Functions take an open connection; the use cases (``dtr.accounts.usecases``, ``orgs``,
``repositories``) own transactions, permission checks and auditing. Lookups of what does not
exist raise ``APIError`` with its ``NO_SUCH_*`` code, clashes ``CONFLICT``.
Names: accounts and teams ``[a-z0-9]`` plus ``-_.`` inside, at most 255 characters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.accounts import shapes
from dtr.api.errors import APIError, codes
from dtr.audit.models import AuditEvent
from dtr.auth.models import (
    AccessToken,
    Account,
    OrgMember,
    Team,
    TeamMember,
)
from dtr.registry.models import Repository
from dtr.times import iso

accounts = cast(Table, Account.__table__)
org_members = cast(Table, OrgMember.__table__)
teams = cast(Table, Team.__table__)
team_members = cast(Table, TeamMember.__table__)
access_tokens = cast(Table, AccessToken.__table__)
repositories = cast(Table, Repository.__table__)
events = cast(Table, AuditEvent.__table__)

NAME = re.compile(shapes.NAME_PATTERN)
#: Names that are API paths, never accounts.
RESERVED = frozenset({"me", "api", "v2", "auth", "admin-api", "_catalog"})




def given(**fields: Any) -> dict[str, Any]:
    """``fields`` without those that are None (in a change, None leaves a field as it is)."""
    return {k: v for k, v in fields.items() if v is not None}


def account_json(row: Any) -> shapes.Account:
    out: shapes.Account = {"id": row.id, "name": row.name, "fullName": row.full_name, "isOrg": row.is_org,
           "isAdmin": row.is_admin, "isActive": row.is_active, "isImported": row.is_imported,
           "createdAt": iso(row.created_at)}
    if not row.is_org:
        out["email"] = row.email
    return out


def team_json(row: Any, org_name: str) -> shapes.Team:
    return {"id": row.id, "orgID": row.org_id, "orgName": org_name, "name": row.name,
            "description": row.description, "type": row.type}


def sync_json(row: Any) -> shapes.SyncConfig:
    return {"enableSync": row.type == "ldap", "selectGroupMembers": row.ldap_group_dn is not None,
            "groupDN": row.ldap_group_dn or "", "groupMemberAttr": row.ldap_group_member_attr or "member",
            "searchFilter": row.ldap_user_filter or ""}


def token_json(row: Any, username: str) -> shapes.Token:
    return {"hashedToken": row.token_hash, "tokenLabel": row.label, "isActive": row.is_active,
            "creationTime": iso(row.created_at), "lastUsed": iso(row.last_used_at),
            "expiresAt": iso(row.expires_at), "generatedBy": username}


def event_json(row: Any) -> shapes.Event:
    return {"id": row.id, "type": row.type, "createdAt": iso(row.at), "actor": row.actor,
            "clientAddress": row.client_addr, "object": {"type": row.object_type, "name": row.object_name},
            "detail": row.detail or {}}


def check_name(name: str, what: str = "account") -> str:
    if not NAME.match(name or ""):
        raise ValueError(f"invalid {what} name {name[:64]!r}: use lowercase letters, digits and . _ - "
                         f"(starting and ending with a letter or digit), at most 255 characters")
    if what == "account" and name in RESERVED:
        raise ValueError(f"{name!r} is reserved")
    return name


def check_email(email: str) -> str:
    """``email`` if empty (no address) or shaped like an address: one ``@``, a local part, a domain
    of dot-separated labels (at least two), nothing blank or unprintable, at most 254 characters;
    ValueError naming ``email`` otherwise."""
    if not email:
        return email
    local, _, domain = email.rpartition("@")
    labels = domain.split(".")
    if (len(email) > 254 or email.count("@") != 1 or not local or len(labels) < 2 or not all(labels)
            or not email.isprintable() or any(ch.isspace() for ch in email)):
        raise ValueError(f"email: {email[:64]!r} is not an e-mail address (expected name@example.com)")
    return email


# -- accounts -------------------------------------------------------------------------------


async def find_account(conn: AsyncConnection, name: str) -> Any | None:
    """The account ``name``, or None."""
    return (await conn.execute(select(accounts).where(accounts.c.name == name))).first()


async def get_account(conn: AsyncConnection, name: str) -> Any:
    row = await find_account(conn, name)
    if row is None:
        raise APIError(codes.NO_SUCH_ACCOUNT, f"no account named {name[:64]!r}")
    return row


async def get_org(conn: AsyncConnection, name: str) -> Any:
    row = await get_account(conn, name)
    if not row.is_org:
        raise APIError(codes.NO_SUCH_ACCOUNT, f"{name[:64]!r} is a user, not an organisation")
    return row


async def get_user(conn: AsyncConnection, name: str) -> Any:
    row = await get_account(conn, name)
    if row.is_org:
        raise APIError(codes.NO_SUCH_ACCOUNT, f"{name[:64]!r} is an organisation, not a user")
    return row


async def create_account(conn: AsyncConnection, **values: Any) -> Any:
    base = {"is_org": False, "full_name": "", "email": "", "password_hash": None, "is_admin": False,
            "is_active": True, "is_imported": False, "credential_gen": 0}
    stmt = pg_insert(accounts).values(**{**base, **values}).on_conflict_do_nothing().returning(*accounts.c)
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise APIError(codes.CONFLICT, f"the name {values['name']!r} is taken")
    return row


async def update_account(conn: AsyncConnection, account_id: int, **values: Any) -> Any:
    stmt = (update(accounts).where(accounts.c.id == account_id)
            .values(**values, updated_at=func.now()).returning(*accounts.c))
    return (await conn.execute(stmt)).first()


async def list_accounts(conn: AsyncConnection, kind: str, start: str | None, size: int,
                        contains: str = "") -> list[Any]:
    q = select(accounts).order_by(accounts.c.name).limit(size + 1)
    if contains:
        q = q.where(accounts.c.name.contains(contains.lower(), autoescape=True))
    if kind == "users":
        q = q.where(accounts.c.is_org.is_(False))
    elif kind == "orgs":
        q = q.where(accounts.c.is_org.is_(True))
    elif kind == "admins":
        q = q.where(accounts.c.is_admin.is_(True))
    if start:
        q = q.where(accounts.c.name >= start)
    return list((await conn.execute(q)).all())


async def lock_active_admins(conn: AsyncConnection) -> list[str]:
    """The names of the active site admins, their rows locked until the transaction ends: a change
    that could leave no admin takes this first, so two such changes at once run one after the other
    (the second sees the first's outcome)."""
    q = (select(accounts.c.name).where(accounts.c.is_admin, accounts.c.is_active, accounts.c.is_org.is_(False))
         .order_by(accounts.c.id).with_for_update())
    return list((await conn.execute(q)).scalars())


async def namespace_has_repositories(conn: AsyncConnection, name: str) -> bool:
    q = select(literal(1)).where(repositories.c.name.startswith(f"{name}/", autoescape=True)).limit(1)
    return (await conn.execute(q)).first() is not None


async def delete_account(conn: AsyncConnection, account_id: int) -> None:
    await conn.execute(delete(accounts).where(accounts.c.id == account_id))


# -- organisations and teams ----------------------------------------------------------------


async def org_role(conn: AsyncConnection, org_id: int, user_id: int) -> bool | None:
    """None: not a member; False: member; True: owner."""
    row = (await conn.execute(select(org_members.c.is_admin).where(
        org_members.c.org_id == org_id, org_members.c.user_id == user_id))).first()
    return None if row is None else bool(row.is_admin)


async def list_org_members(conn: AsyncConnection, org_id: int) -> list[Any]:
    q = (select(accounts, org_members.c.is_admin.label("member_admin"))
         .join(org_members, org_members.c.user_id == accounts.c.id)
         .where(org_members.c.org_id == org_id).order_by(accounts.c.name))
    return list((await conn.execute(q)).all())


async def set_org_member(conn: AsyncConnection, org_id: int, user_id: int, is_admin: bool) -> None:
    stmt = pg_insert(org_members).values(org_id=org_id, user_id=user_id, is_admin=is_admin)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[org_members.c.org_id, org_members.c.user_id],
                                                  set_={"is_admin": is_admin}))


async def remove_org_member(conn: AsyncConnection, org_id: int, user_id: int) -> bool:
    org_teams = select(teams.c.id).where(teams.c.org_id == org_id)
    await conn.execute(delete(team_members).where(team_members.c.user_id == user_id,
                                                  team_members.c.team_id.in_(org_teams)))
    res = await conn.execute(delete(org_members).where(org_members.c.org_id == org_id,
                                                       org_members.c.user_id == user_id))
    return bool(res.rowcount)


async def get_team(conn: AsyncConnection, org_id: int, name: str) -> Any:
    row = (await conn.execute(select(teams).where(teams.c.org_id == org_id, teams.c.name == name))).first()
    if row is None:
        raise APIError(codes.NO_SUCH_TEAM, f"no team named {name[:64]!r} in this organisation")
    return row


async def list_teams(conn: AsyncConnection, org_id: int) -> list[Any]:
    return list((await conn.execute(select(teams).where(teams.c.org_id == org_id).order_by(teams.c.name))).all())


async def create_team(conn: AsyncConnection, org_id: int, name: str, description: str) -> Any:
    stmt = (pg_insert(teams).values(org_id=org_id, name=name, description=description, type="managed")
            .on_conflict_do_nothing().returning(*teams.c))
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise APIError(codes.CONFLICT, f"the organisation already has a team named {name!r}")
    return row


async def update_team(conn: AsyncConnection, team_id: int, **values: Any) -> Any:
    return (await conn.execute(update(teams).where(teams.c.id == team_id).values(**values)
                               .returning(*teams.c))).first()


async def delete_team(conn: AsyncConnection, team_id: int) -> None:
    await conn.execute(delete(teams).where(teams.c.id == team_id))


async def list_team_members(conn: AsyncConnection, team_id: int) -> list[Any]:
    q = (select(accounts, team_members.c.is_admin.label("member_admin"))
         .join(team_members, team_members.c.user_id == accounts.c.id)
         .where(team_members.c.team_id == team_id).order_by(accounts.c.name))
    return list((await conn.execute(q)).all())


async def add_team_member(conn: AsyncConnection, org_id: int, team_id: int, user_id: int, is_admin: bool) -> None:
    """Add (or update) a team member; a new member joins the organisation too."""
    await conn.execute(pg_insert(org_members).values(org_id=org_id, user_id=user_id, is_admin=False)
                       .on_conflict_do_nothing())
    stmt = pg_insert(team_members).values(team_id=team_id, user_id=user_id, is_admin=is_admin)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[team_members.c.team_id, team_members.c.user_id],
                                                  set_={"is_admin": is_admin}))


async def remove_team_member(conn: AsyncConnection, team_id: int, user_id: int) -> bool:
    res = await conn.execute(delete(team_members).where(team_members.c.team_id == team_id,
                                                        team_members.c.user_id == user_id))
    return bool(res.rowcount)


# -- access tokens ----------------------------------------------------------------------------


async def list_tokens(conn: AsyncConnection, user_id: int, start: int, size: int) -> list[Any]:
    q = (select(access_tokens).where(access_tokens.c.user_id == user_id, access_tokens.c.id >= start)
         .order_by(access_tokens.c.id).limit(size + 1))
    return list((await conn.execute(q)).all())


async def get_token(conn: AsyncConnection, user_id: int, token_hash: str) -> Any:
    row = (await conn.execute(select(access_tokens).where(access_tokens.c.token_hash == token_hash,
                                                          access_tokens.c.user_id == user_id))).first()
    if row is None:
        raise APIError(codes.NO_SUCH_TOKEN, "no such access token")
    return row


async def create_token(conn: AsyncConnection, user_id: int, token_hash: str, label: str,
                       expires_at: dt.datetime | None) -> Any:
    stmt = access_tokens.insert().values(user_id=user_id, token_hash=token_hash, label=label, is_active=True,
                                         expires_at=expires_at).returning(*access_tokens.c)
    return (await conn.execute(stmt)).first()


async def update_token(conn: AsyncConnection, token_id: int, **values: Any) -> Any:
    stmt = update(access_tokens).where(access_tokens.c.id == token_id).values(**values).returning(*access_tokens.c)
    return (await conn.execute(stmt)).first()


async def delete_token(conn: AsyncConnection, token_id: int) -> None:
    await conn.execute(delete(access_tokens).where(access_tokens.c.id == token_id))


# -- audit events -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EventFilter:
    actor: str | None = None
    type: str | None = None
    object_name: str | None = None
    after: dt.datetime | None = None
    before: dt.datetime | None = None


async def list_events(conn: AsyncConnection, f: EventFilter, start: int | None, size: int) -> list[Any]:
    """Newest first; ``start`` is the id to start from (inclusive)."""
    conds = []
    if f.actor is not None:
        conds.append(events.c.actor == f.actor)
    if f.type is not None:
        conds.append(events.c.type == f.type)
    if f.object_name is not None:
        conds.append(events.c.object_name == f.object_name)
    if f.after is not None:
        conds.append(events.c.at >= f.after)
    if f.before is not None:
        conds.append(events.c.at < f.before)
    if start is not None:  # the page starts at that event, in (time, id) order
        at_start = select(events.c.at).where(events.c.id == start).scalar_subquery()
        conds.append(tuple_(events.c.at, events.c.id) <= tuple_(at_start, start))
    # By the time of the action: registry actions are audited by an outbox subscriber, after commit.
    q = (select(events).where(and_(literal(True), *conds)).order_by(events.c.at.desc(), events.c.id.desc())
         .limit(size + 1))
    return list((await conn.execute(q)).all())

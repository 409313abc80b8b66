"""Use cases on accounts, personal access tokens, site settings and audit events, apart from HTTP.

Each takes a ``Caller``, checks what the caller may do, runs one transaction and audits the change;
each raises ``APIError`` for what the caller got wrong. Rows come back as the database has them
(``dtr.accounts.service`` renders them as JSON).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.accounts import service as svc
from dtr.accounts.context import Caller
from dtr.accounts.orgs import may_manage
from dtr.api.errors import APIError, codes
from dtr.auth.passwords import PasswordPolicyError, check_policy, hash_password_async, verify_password_async
from dtr.auth.service import DEFAULT_SETTINGS, hash_token, new_access_token

#: What ``list_accounts`` may list.
KINDS = ("all", "users", "orgs", "admins")


def _kind(row: Any) -> str:
    return "organization" if row.is_org else "user"


def _check_password(c: Caller, password: str, username: str) -> None:
    try:
        check_policy(password, username, c.min_password_length)
    except PasswordPolicyError as e:
        raise APIError(codes.INVALID_PASSWORD, str(e)) from None


def _check_email(email: str) -> None:
    try:
        svc.check_email(email)
    except ValueError as e:
        raise APIError(codes.INVALID_PARAMETER, str(e)) from None


def _with_secret(c: Caller, doing: str) -> None:
    """FORBIDDEN when the caller authenticated with a personal access token: ``doing`` (creating
    tokens, changing passwords) needs the password, or a bearer token obtained with it."""
    if c.principal.by_token:
        raise APIError(codes.FORBIDDEN, f"a personal access token may not be used for {doing}: "
                       f"authenticate with your password")


async def _keep_an_admin(conn: AsyncConnection, row: Any) -> None:
    """CONFLICT if ``row`` is the last active site admin (call before demoting, deactivating or
    deleting it, in the same transaction: the admins' rows stay locked until it ends)."""
    admins = await svc.lock_active_admins(conn)
    if admins == [row.name]:
        raise APIError(codes.CONFLICT, f"{row.name} is the last active site admin: make another user admin first")


# -- accounts ---------------------------------------------------------------------------------


async def list_accounts(c: Caller, kind: str, start: str | None, size: int, contains: str = "") -> list[Any]:
    """Users and organisations by name from ``start`` (``size`` + 1 rows: the last tells there is more);
    ``contains``: only names containing it."""
    c.user()
    if kind not in KINDS:
        raise APIError(codes.INVALID_PARAMETER, "filter must be all, users, orgs or admins")
    async with c.engine.connect() as conn:
        return await svc.list_accounts(conn, kind, start, size, contains)


@dataclasses.dataclass(frozen=True)
class NewAccount:
    """A user (with ``password``) or an organisation (``is_org``)."""

    name: str
    is_org: bool = False
    full_name: str = ""
    email: str = ""
    password: str | None = None
    is_admin: bool = False
    is_active: bool = True


async def create_account(c: Caller, new: NewAccount) -> Any:
    """Create a user or an organisation (site admins)."""
    c.admin()
    try:
        svc.check_name(new.name)
    except ValueError as e:
        raise APIError(codes.INVALID_NAME, str(e)) from None
    values: dict[str, Any] = {"name": new.name, "is_org": new.is_org, "full_name": new.full_name}
    if not new.is_org:
        if new.password is None:
            raise APIError(codes.INVALID_PASSWORD, "a user needs a password")
        _check_password(c, new.password, new.name)
        _check_email(new.email)
        values.update(email=new.email, is_admin=new.is_admin, is_active=new.is_active,
                      password_hash=await hash_password_async(new.password))
    async with c.engine.begin() as conn:
        row = await svc.create_account(conn, **values)
    await c.changed("account_create", _kind(row), row.name, None if new.is_org else {"isAdmin": row.is_admin})
    return row


async def me(c: Caller) -> Any | None:
    """The calling user's account; None when authentication is disabled (nobody is calling)."""
    p = c.user()
    if not p.name:
        return None
    async with c.engine.connect() as conn:
        return await svc.get_account(conn, p.name)


async def get_account(c: Caller, name: str) -> Any:
    c.user()
    async with c.engine.connect() as conn:
        return await svc.get_account(conn, name)


@dataclasses.dataclass(frozen=True)
class AccountChanges:
    """None leaves a field as it is; ``email`` is ignored for organisations."""

    full_name: str | None = None
    email: str | None = None
    is_admin: bool | None = None
    is_active: bool | None = None

    def audited(self) -> dict[str, Any]:
        return svc.given(fullName=self.full_name, email=self.email, isAdmin=self.is_admin, isActive=self.is_active)


async def update_account(c: Caller, name: str, changes: AccountChanges) -> Any:
    """Names and email (the user, an owner of the organisation, site admins); isAdmin and isActive
    of users (site admins). Deactivating or demoting a user ends their sessions and tokens' use."""
    p = c.user()
    if changes.email is not None:
        _check_email(changes.email)
    async with c.engine.begin() as conn:
        row = await svc.get_account(conn, name)
        self_edit = not row.is_org and row.name == p.name
        if not (p.is_admin or self_edit or (row.is_org and await may_manage(conn, p, row))):
            raise APIError(codes.FORBIDDEN, f"you may not change {name}")
        values: dict[str, Any] = {}
        if changes.full_name is not None:
            values["full_name"] = changes.full_name
        if changes.email is not None and not row.is_org:
            values["email"] = changes.email
        for key, col, value in (("isAdmin", "is_admin", changes.is_admin),
                                ("isActive", "is_active", changes.is_active)):
            if value is not None:
                if not p.is_admin:
                    raise APIError(codes.FORBIDDEN, f"only site admins may change {key}")
                if row.is_org:
                    raise APIError(codes.INVALID_PARAMETER, f"{key} applies to users only")
                values[col] = value
        if values.get("is_active") is False or values.get("is_admin") is False:
            if row.is_admin and row.is_active:
                await _keep_an_admin(conn, row)
            values["credential_gen"] = row.credential_gen + 1
        if values:
            row = await svc.update_account(conn, row.id, **values)
    if values:
        await c.changed("account_update", _kind(row), name, changes.audited())
    return row


async def delete_account(c: Caller, name: str) -> None:
    """Delete a user or organisation (site admins); its namespace must hold no repositories."""
    p = c.admin()
    async with c.engine.begin() as conn:
        row = await svc.get_account(conn, name)
        if row.name == p.name:
            raise APIError(codes.INVALID_OPERATION, "you cannot delete your own account")
        if await svc.namespace_has_repositories(conn, name):
            raise APIError(codes.CONFLICT, f"the namespace {name} still has repositories: delete them first")
        if row.is_admin and row.is_active:
            await _keep_an_admin(conn, row)
        await svc.delete_account(conn, row.id)
    await c.changed("account_delete", _kind(row), name)


async def change_password(c: Caller, name: str, new: str, old: str = "") -> Any:
    """The user's own password (``old`` must match) or, for site admins, anyone's; never with a
    personal access token."""
    p = c.user()
    _with_secret(c, "changing passwords")
    async with c.engine.connect() as conn:
        row = await svc.get_user(conn, name)
    if row.is_imported:
        raise APIError(codes.INVALID_OPERATION, f"{name} logs in against the directory (LDAP)")
    if not p.is_admin or row.name == p.name:
        if row.name != p.name:
            raise APIError(codes.FORBIDDEN, "you may change only your own password")
        if not old:
            raise APIError(codes.INVALID_PARAMETER, "oldPassword is required")
        if not await verify_password_async(row.password_hash, old):
            raise APIError(codes.FORBIDDEN, "oldPassword is wrong")
    _check_password(c, new, name)
    hashed = await hash_password_async(new)
    async with c.engine.begin() as conn:
        row = await svc.update_account(conn, row.id, password_hash=hashed, credential_gen=row.credential_gen + 1)
    await c.changed("password_change", "user", name)
    return row


# -- access tokens ----------------------------------------------------------------------------


async def _token_owner(c: Caller, conn: AsyncConnection, username: str | None) -> Any:
    p = c.user()
    name = username or p.name
    if name != p.name and not p.is_admin:
        raise APIError(codes.FORBIDDEN, "only site admins may manage other users' tokens")
    if not name:
        raise APIError(codes.INVALID_PARAMETER, "username is required when authentication is disabled")
    return await svc.get_user(conn, name)


async def list_tokens(c: Caller, username: str | None, start: int, size: int) -> tuple[Any, list[Any]]:
    """(the owner, their tokens from id ``start``): the caller's, or ``username``'s for site admins."""
    async with c.engine.connect() as conn:
        user = await _token_owner(c, conn, username)
        return user, await svc.list_tokens(conn, user.id, start, size)


async def create_token(c: Caller, username: str | None, label: str,
                       expires_at: dt.datetime | None) -> tuple[Any, Any, str]:
    """(the owner, the token's row, the token): the token is returned once; only its hash is kept.
    Never with a personal access token; ``expires_at`` must be in the future."""
    c.user()
    _with_secret(c, "creating access tokens")
    if expires_at is not None and expires_at <= dt.datetime.now(dt.UTC):
        raise APIError(codes.INVALID_PARAMETER, "expiresAt is in the past")
    token = new_access_token()
    async with c.engine.begin() as conn:
        user = await _token_owner(c, conn, username)
        row = await svc.create_token(conn, user.id, hash_token(token), label, expires_at)
    await c.changed("token_create", "user", user.name, {"tokenLabel": label})
    return user, row, token


async def get_token(c: Caller, username: str | None, token_hash: str) -> tuple[Any, Any]:
    async with c.engine.connect() as conn:
        user = await _token_owner(c, conn, username)
        return user, await svc.get_token(conn, user.id, token_hash)


async def update_token(c: Caller, username: str | None, token_hash: str, label: str | None = None,
                       is_active: bool | None = None) -> tuple[Any, Any]:
    """Relabel the token or (``is_active`` False) revoke it; None leaves a field as it is."""
    values = svc.given(label=label, is_active=is_active)
    async with c.engine.begin() as conn:
        user = await _token_owner(c, conn, username)
        row = await svc.get_token(conn, user.id, token_hash)
        if values:
            row = await svc.update_token(conn, row.id, **values)
    await c.changed("token_update", "user", user.name, {"tokenLabel": row.label, "isActive": row.is_active})
    return user, row


async def delete_token(c: Caller, username: str | None, token_hash: str) -> None:
    async with c.engine.begin() as conn:
        user = await _token_owner(c, conn, username)
        row = await svc.get_token(conn, user.id, token_hash)
        await svc.delete_token(conn, row.id)
    await c.changed("token_revoke", "user", user.name, {"tokenLabel": row.label})


# -- settings and audit events ----------------------------------------------------------------


async def get_settings(c: Caller) -> dict[str, Any]:
    c.user()
    return await c.auth.settings() if c.auth is not None else dict(DEFAULT_SETTINGS)


async def update_settings(c: Caller, changes: dict[str, bool | None]) -> dict[str, Any]:
    """Change the site settings in ``changes`` (site admins); the settings after the change."""
    c.admin()
    unknown = set(changes) - set(DEFAULT_SETTINGS)
    if unknown:
        raise APIError(codes.INVALID_PARAMETER, f"unknown settings: {', '.join(sorted(unknown))}; "
                       f"known: {', '.join(DEFAULT_SETTINGS)}")
    if c.auth is None:
        raise APIError(codes.INVALID_OPERATION, "authentication is disabled; settings have no effect")
    values = await c.auth.update_settings(changes)
    await c.changed("settings_update", "settings", "", changes)
    return values


async def list_events(c: Caller, f: svc.EventFilter, start: int | None, size: int) -> list[Any]:
    """Audit events, newest first, from id ``start`` (site admins)."""
    c.admin()
    async with c.engine.connect() as conn:
        return await svc.list_events(conn, f, start, size)

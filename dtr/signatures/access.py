"""What the signatures use cases (``trustedkeys``, ``policy``) take: the ``Caller``, and the access
check of a repository or a namespace, the access decision's (``dtr.auth.repoaccess``): a
repository's data is read by whoever may read it (one the caller may not read is answered as
missing) and changed by its admins; a namespace's is read by any user and changed by the
namespace's admins (site admins, the user namespace's owner, the organisation's owners, teams
granted admin on the whole namespace)."""

from __future__ import annotations

import dataclasses
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.auth import caller
from dtr.auth.access import Action
from dtr.auth.models import Account
from dtr.auth.repoaccess import check_repository, may_admin_namespace
from dtr.auth.service import AuthService
from dtr.registry.models import Repository

accounts = cast(Table, Account.__table__)
repositories = cast(Table, Repository.__table__)


@dataclasses.dataclass(frozen=True)
class Caller(caller.Caller):
    """With the auth service (None: authentication is off)."""

    auth: AuthService | None


async def open_repository(c: Caller, conn: AsyncConnection, namespace: str, repo: str, action: Action) -> str:
    """``namespace/repo`` if it exists and the caller may ``action`` it (NO_SUCH_REPOSITORY,
    FORBIDDEN otherwise)."""
    c.user()
    full = f"{namespace}/{repo}"
    if (await conn.execute(select(repositories.c.id).where(repositories.c.name == full))).first() is None:
        raise APIError(codes.NO_SUCH_REPOSITORY, f"no repository named {full[:300]!r}")
    await check_repository(c, conn, full, action)
    return full


async def open_namespace(c: Caller, conn: AsyncConnection, namespace: str, change: bool) -> str:
    """``namespace`` if it exists (NO_SUCH_NAMESPACE) and, with ``change``, the caller is admin of
    every repository of it (FORBIDDEN)."""
    c.user()
    if (await conn.execute(select(accounts.c.id).where(accounts.c.name == namespace))).first() is None:
        raise APIError(codes.NO_SUCH_NAMESPACE, f"no namespace named {namespace[:64]!r}")
    if change and not await may_admin_namespace(c, conn, namespace):
        raise APIError(codes.FORBIDDEN, f"this needs admin access to the namespace {namespace}")
    return namespace


async def open_scope(c: Caller, conn: AsyncConnection, namespace: str, repo: str | None, change: bool) -> str:
    """The scope a route names (the repository ``namespace/repo``, or the namespace when ``repo``
    is None), if the caller may read it, or change it with ``change``."""
    if repo is None:
        return await open_namespace(c, conn, namespace, change)
    return await open_repository(c, conn, namespace, repo, Action.ADMIN if change else Action.PULL)

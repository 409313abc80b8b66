"""The access decision (``dtr.auth.access.decide``) of a use case on one repository or namespace,
answered as ``/api/v0`` errors: what every domain's use cases call before they read or change a
repository's data."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.auth.access import Action, Level, Principal, decide

if TYPE_CHECKING:
    from dtr.auth.service import AuthService


class RepoCaller(Protocol):
    """A use case's caller (``dtr.auth.caller.Caller`` with the auth service; None: auth off)."""

    @property
    def auth(self) -> AuthService | None: ...

    @property
    def principal(self) -> Principal: ...

    def user(self) -> Principal: ...


async def check_repository(c: RepoCaller, conn: AsyncConnection, full_name: str, action: Action) -> None:
    """Return if the caller may ``action`` the repository ``full_name``: NO_SUCH_REPOSITORY when it
    may not even read it (a repository it may not see is answered as missing), UNAUTHORIZED for an
    anonymous caller, FORBIDDEN when it may read but not ``action``."""
    if c.auth is None:
        return
    p = c.principal
    facts = await c.auth.repo_facts(p, full_name, conn)
    if not decide(p, facts, Action.PULL):
        raise APIError(codes.NO_SUCH_REPOSITORY, f"no repository named {full_name[:300]!r}")
    if not decide(p, facts, action):
        c.user()
        need = Level.WRITE if action in (Action.PUSH, Action.DELETE) else Level.ADMIN
        raise APIError(codes.FORBIDDEN, f"{action} on {full_name} needs {need.api_name} access")


async def may_admin_namespace(c: RepoCaller, conn: AsyncConnection, namespace: str) -> bool:
    """The caller is admin of every repository of the namespace (site admin, the user namespace's
    owner, an organisation owner, or a team granted admin on the whole namespace)."""
    p = c.user()
    if c.auth is None or p.is_admin:
        return True
    facts = await c.auth.repo_facts(p, f"{namespace}/", conn)
    return decide(p, dataclasses.replace(facts, exists=True, public=False), Action.ADMIN)

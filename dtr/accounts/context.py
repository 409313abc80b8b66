"""``Caller``: what every accounts use case takes: who asks, from where, and what it works with.

The JSON API builds one per request (``dtr.accounts.views.caller``); a web UI or a test builds
one from a principal and a client address the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.audit import service as audit
from dtr.auth.access import Principal
from dtr.auth.api import check_admin, check_user
from dtr.auth.service import AuthService
from dtr.registry.changes import Actor


@dataclasses.dataclass(frozen=True)
class Caller:
    """``principal`` calling from ``client_addr``; ``auth`` None means authentication is disabled
    (the principal is then ``dtr.auth.api.UNRESTRICTED``)."""

    engine: AsyncEngine
    auth: AuthService | None
    principal: Principal
    client_addr: str
    min_password_length: int

    @property
    def actor(self) -> Actor:
        """The caller as the registry's write functions name it."""
        return Actor(self.principal.name or "", self.client_addr)

    def user(self) -> Principal:
        """The principal, if an authenticated user; APIError UNAUTHORIZED otherwise."""
        return check_user(self.principal)

    def admin(self) -> Principal:
        """The principal, if a site admin; APIError UNAUTHORIZED or FORBIDDEN otherwise."""
        return check_admin(self.principal)

    async def changed(self, type_: str, object_type: str, object_name: str,
                      detail: dict[str, Any] | None = None) -> None:
        """After a committed change: the audit event, and cached credentials dropped (grants and
        accounts may have moved)."""
        if self.auth is not None:
            self.auth.forget_credentials()
        await audit.record(self.engine, type_, self.principal.name, self.client_addr, object_type, object_name,
                           detail)

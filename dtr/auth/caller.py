"""``Caller``: who asks a use case, from where: what every domain's use cases take (the JSON API
builds one per request; a web UI, the CLI or a test builds one from a principal and an address).
Domains extend it with what their use cases work with (``dtr.accounts.context``, ``dtr.jobs.caller``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.audit import service as audit
from dtr.auth.access import Principal
from dtr.auth.api import check_admin, check_user
from dtr.registry.events import Actor


@dataclasses.dataclass(frozen=True)
class Caller:
    """``principal`` calling from ``client_addr``, on the database of ``engine``."""

    engine: AsyncEngine
    principal: Principal
    client_addr: str

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
        """After a committed change: its audit event."""
        await audit.record(self.engine, type_, self.principal.name, self.client_addr, object_type, object_name,
                           detail)

"""``Caller``: what every use case of the jobs domain takes: who asks, from where, and what it
works with.

The JSON API builds one per request (``dtr.jobs.views``); a web UI, the CLI or a test builds one
from a principal and a client address the same way. Every jobs use case is for site admins.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.api.errors import APIError, codes
from dtr.audit import service as audit
from dtr.auth.access import Principal
from dtr.jobs.service import JobService
from dtr.registry.events import Actor
from dtr.registry.service import RegistryService


@dataclasses.dataclass(frozen=True)
class Caller:
    """``principal`` calling from ``client_addr``, with the job queue and the registry."""

    jobs: JobService
    registry: RegistryService
    principal: Principal
    client_addr: str = ""

    @property
    def engine(self) -> AsyncEngine:
        return self.jobs.engine

    @property
    def actor(self) -> Actor:
        """The caller as the registry's write functions name it."""
        return Actor(self.principal.name or "", self.client_addr)

    def admin(self) -> None:
        """APIError UNAUTHORIZED (anonymous) or FORBIDDEN unless the principal is a site admin."""
        if not self.principal.authenticated:
            raise APIError(codes.UNAUTHORIZED)
        if not self.principal.is_admin:
            raise APIError(codes.FORBIDDEN, "only site admins may do this")

    async def changed(self, type_: str, object_type: str, object_name: str,
                      detail: dict[str, Any] | None = None) -> None:
        """After a committed change: its audit event."""
        await audit.record(self.engine, type_, self.principal.name, self.client_addr, object_type, object_name,
                           detail)

    async def repository_id(self, conn: AsyncConnection, name: str) -> int:
        """The id of repository ``name``; APIError NO_SUCH_REPOSITORY if there is none."""
        rid = await self.registry.repo_id(conn, name)
        if rid is None:
            raise APIError(codes.NO_SUCH_REPOSITORY)
        return int(rid)

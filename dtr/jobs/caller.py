"""``Caller`` for the jobs use cases: ``dtr.auth.caller.Caller`` with the job queue and the registry.

The JSON API builds one per request (``dtr.jobs.views``); a web UI, the CLI or a test builds one
from a principal and a client address the same way. Every jobs use case is for site admins.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.auth import caller
from dtr.jobs.service import JobService
from dtr.registry.service import RegistryService


@dataclasses.dataclass(frozen=True)
class Caller(caller.Caller):
    """With the job queue and the registry."""

    jobs: JobService
    registry: RegistryService

    async def repository_id(self, conn: AsyncConnection, name: str) -> int:
        """The id of repository ``name``; APIError NO_SUCH_REPOSITORY if there is none."""
        rid = await self.registry.repo_id(conn, name)
        if rid is None:
            raise APIError(codes.NO_SUCH_REPOSITORY)
        return int(rid)

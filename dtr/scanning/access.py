"""What every scanner use case (``reports``, ``exports``, ``overrides``, ``control``) takes: the
``Caller``, and the access check of a repository.

Every use case needs an authenticated user (401 otherwise). Access is the access decision's
(``dtr.auth.access.decide``): read access to a repository shows its results (a repository the
caller may not read is answered as missing), write access queues a scan or attaches an SBOM,
admin access adds or deletes an override of the repository (of a namespace: admin of the
namespace; of the whole registry: site admins); the database's status, update and import are for
site admins. Searches across repositories show only images of repositories the caller may read.
Changes are audited once committed. Client mistakes are ``APIError``s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.auth import caller
from dtr.auth.access import Action
from dtr.auth.repoaccess import check_repository
from dtr.auth.service import AuthService
from dtr.config.schema import ScanningConfig
from dtr.jobs.service import JobService
from dtr.registry.service import RegistryService
from dtr.scanning.results import repositories


@dataclasses.dataclass(frozen=True)
class Caller(caller.Caller):
    """With the auth service (None: authentication is off), the job queue and the scanner's config."""

    auth: AuthService | None
    jobs: JobService
    config: ScanningConfig
    #: Where uploads are spooled (the server's data directory).
    data_path: Path
    #: The registry (an SBOM attached to its image is pushed there).
    registry: RegistryService


async def open_repository(c: Caller, conn: AsyncConnection, namespace: str, name: str, action: Action) -> Any:
    """The repository ``namespace/name`` (``id``, ``name``) if the caller may ``action`` it
    (``dtr.auth.repoaccess.check_repository``); NO_SUCH_REPOSITORY when there is none."""
    c.user()
    full = f"{namespace}/{name}"
    row = (await conn.execute(select(repositories.c.id, repositories.c.name)
                              .where(repositories.c.name == full))).first()
    if row is None:
        raise APIError(codes.NO_SUCH_REPOSITORY, f"no repository named {full[:300]!r}")
    await check_repository(c, conn, full, action)
    return row

"""Registry traffic the jobs need: tag pulls (for ``last_pulled_at`` rules) and tag pushes
(a push to a repository with a pruning policy or tag limit queues a ``prune`` job for it).

``RegistryEvents.pulled`` subscribes to the registry's tag pulls, written in batches every few
seconds (one upsert per batch), off the request's path. ``queue_pruning`` is an outbox
subscriber (``dtr.registry.events``): it queues the prune job in the transaction that moves its
cursor, so a push is never missed, even across a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.jobs.policies import queue_prune
from dtr.jobs.service import JobService
from dtr.ops.tasks import background
from dtr.registry import events as registry_events
from dtr.registry.events import Event, Handler

log = logging.getLogger("dtr.jobs.events")

FLUSH_INTERVAL = 5.0

_UPSERT_PULLS = text("""
INSERT INTO tag_pulls (repository_id, tag, pulled_at)
SELECT r.id, x.tag, x.at FROM unnest(CAST(:repos AS text[]), CAST(:tags AS text[]), CAST(:ats AS timestamptz[]))
    AS x(repo, tag, at)
JOIN repositories r ON r.name = x.repo
ON CONFLICT (repository_id, tag) DO UPDATE SET pulled_at = greatest(tag_pulls.pulled_at, excluded.pulled_at)
""")

#: Of the named repositories, those a push may make prune (a tag limit or an enabled policy).
_PRUNABLE = text("""
SELECT r.name FROM repositories r LEFT JOIN repository_pruning s ON s.repository_id = r.id
WHERE r.name = ANY(CAST(:repos AS text[])) AND NOT r.immutable_tags
  AND (s.tag_limit IS NOT NULL OR EXISTS (SELECT 1 FROM pruning_policies p WHERE p.repository_id = r.id AND p.enabled))
ORDER BY r.name
""")
_PUSHES = frozenset({registry_events.TAG_PUSHED, registry_events.TAG_MOVED})


def queue_pruning(jobs: JobService) -> Handler:
    """The outbox subscriber that queues a ``prune`` job (one waiting per repository) after pushes
    to a repository with a tag limit or pruning policy."""

    async def handle(conn: AsyncConnection, events: Sequence[Event]) -> None:
        pushed = sorted({e.repository for e in events if e.type in _PUSHES})
        if not pushed:
            return
        for repo in (await conn.execute(_PRUNABLE, {"repos": pushed})).scalars():
            await queue_prune(jobs, conn, repo)

    return handle


class RegistryEvents:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._pulls: dict[tuple[str, str], dt.datetime] = {}

    def pulled(self, repo: str, tag: str) -> None:
        """A manifest was served by tag (a RegistryService.tag_pulled subscriber)."""
        self._pulls[(repo, tag)] = dt.datetime.now(dt.UTC)

    async def flush(self) -> None:
        pulls, self._pulls = self._pulls, {}
        if not pulls:
            return
        keys = sorted(pulls)
        async with self.engine.begin() as conn:
            await conn.execute(_UPSERT_PULLS, {"repos": [k[0] for k in keys], "tags": [k[1] for k in keys],
                                               "ats": [pulls[k] for k in keys]})

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL)
                try:
                    await self.flush()
                except Exception as e:
                    log.warning("recording tag pulls failed: %s", e)

        try:
            async with background(loop()):
                yield
        finally:
            with contextlib.suppress(Exception):
                await self.flush()

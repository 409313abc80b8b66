"""Registry traffic the jobs need: tag pulls (for ``last_pulled_at`` rules) and tag pushes
(a push to a repository with a pruning policy or tag limit queues a ``prune`` job for it).

``pulled``/``pushed`` subscribe to the registry's tag events; pulls are written in batches
every few seconds (one upsert per batch), push triggers in the background, so neither adds a
database round-trip to a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.ops.tasks import background

log = logging.getLogger("dtr.jobs.events")

FLUSH_INTERVAL = 5.0

_UPSERT_PULLS = text("""
INSERT INTO tag_pulls (repository_id, tag, pulled_at)
SELECT r.id, x.tag, x.at FROM unnest(CAST(:repos AS text[]), CAST(:tags AS text[]), CAST(:ats AS timestamptz[]))
    AS x(repo, tag, at)
JOIN repositories r ON r.name = x.repo
ON CONFLICT (repository_id, tag) DO UPDATE SET pulled_at = greatest(tag_pulls.pulled_at, excluded.pulled_at)
""")

_QUEUE_PRUNE = text("""
INSERT INTO jobs (id, action, parameters, max_attempts, stop_timeout, dedupe_key)
SELECT :id, 'prune', jsonb_build_object('repository', r.name), 1, 30, 'prune:' || r.name
FROM repositories r LEFT JOIN repository_pruning s ON s.repository_id = r.id
WHERE r.name = :repo AND NOT r.immutable_tags
  AND (s.tag_limit IS NOT NULL OR EXISTS (SELECT 1 FROM pruning_policies p WHERE p.repository_id = r.id AND p.enabled))
ON CONFLICT (dedupe_key) WHERE status = 'waiting' AND dedupe_key IS NOT NULL DO NOTHING
""")


class RegistryEvents:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._pulls: dict[tuple[str, str], dt.datetime] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def pulled(self, repo: str, tag: str) -> None:
        """A manifest was served by tag (a RegistryService.tag_pulled subscriber)."""
        self._pulls[(repo, tag)] = dt.datetime.now(dt.UTC)

    def pushed(self, repo: str, tag: str) -> None:
        """A manifest was pushed to a tag (a RegistryService.tag_pushed subscriber)."""
        task = asyncio.create_task(self._queue_prune(repo))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _queue_prune(self, repo: str) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(_QUEUE_PRUNE, {"id": uuid.uuid4(), "repo": repo})
        except Exception as e:
            log.warning("queueing tag pruning for %s failed: %s", repo, e)

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
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

"""An in-process cache of manifest lookups, kept coherent across replicas with LISTEN/NOTIFY.

Manifest GETs by tag are the registry's hottest path; answering them from memory avoids a
database round-trip. Every change that can alter a lookup's answer (a tag moved or deleted,
a manifest deleted, a repository deleted) calls ``invalidate(repo)`` in the same process and
``NOTIFY dtr_manifests, '<repo>'`` on commit, so every replica drops that repository's entries.
When the listening connection is lost, the whole cache is dropped and nothing is cached until
it is back, so a replica never serves from a cache that may have missed a notification; the
dropped entries are kept aside (``while_away``) for lookups the database cannot answer at all
(an outage), until the listening connection is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from typing import Any, Generic, TypeVar

from dtr.db.listen import listen
from dtr.ops.metrics import MANIFEST_CACHE
from dtr.ops.tasks import background

log = logging.getLogger("dtr.registry.cache")

CHANNEL = "dtr_manifests"
V = TypeVar("V")


class ManifestCache(Generic[V]):
    """(repository, reference) -> value, bounded (LRU), invalidated per repository."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._entries: OrderedDict[tuple[str, str], V] = OrderedDict()
        self._max = max_entries
        self._listening = False
        #: Bumped on every invalidation, so a lookup that raced with one is not stored.
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        #: The entries held when the listening connection was lost: served only while the
        #: database is unavailable (no change can commit then), dropped when it is back.
        self._away: dict[tuple[str, str], V] = {}
        #: (repository, digest) -> size of blobs served lately, for ``blob_while_away``.
        self._blobs: OrderedDict[tuple[str, str], int] = OrderedDict()

    def get(self, repo: str, reference: str) -> V | None:
        if not self._listening:
            return None
        value = self._entries.get((repo, reference))
        MANIFEST_CACHE.inc("hit" if value is not None else "miss")
        if value is not None:
            self._entries.move_to_end((repo, reference))
        return value

    def generation(self) -> int:
        return self._generation

    def put(self, repo: str, reference: str, value: V, generation: int) -> None:
        """Store a lookup made when ``generation()`` returned ``generation`` (dropped if stale)."""
        if not self._listening or generation != self._generation:
            return
        self._entries[(repo, reference)] = value
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def while_away(self, repo: str, reference: str) -> V | None:
        """The lookup cached before the listening connection was lost, for a caller that found
        the database unavailable: a tag moved on another replica in the moments before the
        outage may still show its former manifest until the database is back."""
        return self._away.get((repo, reference))

    def blob_served(self, repo: str, digest: str, size: int) -> None:
        """Remember that ``repo`` served blob ``digest`` (bounded: the least recent go first)."""
        self._blobs[(repo, digest)] = size
        self._blobs.move_to_end((repo, digest))
        if len(self._blobs) > self._max:
            self._blobs.popitem(last=False)

    def blob_while_away(self, repo: str, digest: str) -> int | None:
        """The size of a blob ``repo`` served lately, for a caller that found the database
        unavailable (a blob unlinked in the moments before the outage may still be served)."""
        return self._blobs.get((repo, digest))

    def invalidate(self, repo: str | None = None) -> None:
        self._generation += 1
        if repo is None:
            self._entries.clear()
            self._away.clear()
            self._blobs.clear()
            return
        for entries in (self._entries, self._away, self._blobs):
            for key in [k for k in entries if k[0] == repo]:
                del entries[key]

    def _set_aside(self) -> None:
        """Stop serving entries (they may miss notifications from now on) but keep them for outages."""
        self._generation += 1
        self._listening = False
        self._away.update(self._entries)
        self._entries.clear()

    # -- cluster coherence ------------------------------------------------------------------

    async def run(self, dsn: str) -> None:
        """Listen for invalidations until cancelled; reconnect with backoff, never cache blind."""

        def connected() -> None:
            self.invalidate()
            self._listening = True

        await listen(dsn, CHANNEL, lambda payload: self.invalidate(payload or None), connected=connected,
                     lost=self._set_aside)

    def running(self, dsn: str) -> contextlib.AbstractAsyncContextManager[asyncio.Task[Any]]:
        """Listen for invalidations for the life of the ``async with`` block."""
        return background(self.run(dsn))

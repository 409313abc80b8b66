"""In-process caches of lookups per repository, kept coherent across replicas with LISTEN/NOTIFY.

Manifest GETs by tag are the registry's hottest path, and a trusted push or pull reads a
repository's current trust files several times; answering them from memory avoids a database
round-trip. Every change that can alter a lookup's answer (a tag moved or deleted, a manifest
deleted, a repository deleted; trust data updated, re-signed or deleted) calls
``invalidate(repo)`` in the same process and notifies the cache's channel on commit
(``NOTIFY dtr_manifests, '<repo>'``; ``dtr_trust`` for trust files), so every replica drops that
repository's entries (``keep_coherent``: the process's one listening connection serves them). A
change a cache has already been told of (``invalidate`` or a refresh after the commit) is sent as
``cache.notice(repo)``: the other replicas' caches drop the repository's entries, it ignores it.

When the listening connection is lost, the whole cache is dropped and nothing is cached until
it is back, so a replica never serves from a cache that may have missed a notification; the
dropped entries are kept aside (``while_away``) for lookups the database cannot answer at all
(an outage), until the listening connection is back.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from dtr.db.listen import Notifications
from dtr.ops.metrics import Counter

log = logging.getLogger("dtr.registry.cache")

CHANNEL = "dtr_manifests"
V = TypeVar("V")
W = TypeVar("W")


class _ByRepository(Generic[W]):
    """(repository, reference) -> value in least-recently-used order, at most ``limit`` of them
    (the least recent go first), with one repository's entries dropped in time proportional to
    their number."""

    def __init__(self, limit: int) -> None:
        self._lru: OrderedDict[tuple[str, str], W] = OrderedDict()
        self._refs: dict[str, set[str]] = {}
        self._limit = limit

    def get(self, key: tuple[str, str]) -> W | None:
        value = self._lru.get(key)
        if value is not None:
            self._lru.move_to_end(key)
        return value

    def put(self, key: tuple[str, str], value: W) -> None:
        self._lru[key] = value
        self._lru.move_to_end(key)
        self._refs.setdefault(key[0], set()).add(key[1])
        if len(self._lru) > self._limit:
            self._unindex(self._lru.popitem(last=False)[0])

    def _unindex(self, key: tuple[str, str]) -> None:
        refs = self._refs[key[0]]
        refs.discard(key[1])
        if not refs:
            del self._refs[key[0]]

    def drop(self, repo: str) -> None:
        for ref in self._refs.pop(repo, ()):
            del self._lru[repo, ref]

    def clear(self) -> None:
        self._lru.clear()
        self._refs.clear()

    def items(self) -> list[tuple[tuple[str, str], W]]:
        return list(self._lru.items())


class RepositoryCache(Generic[V]):
    """(repository, reference) -> value, bounded (LRU), invalidated per repository by the
    notifications on ``channel``; ``lookups`` counts hits and misses (label ``result``)."""

    def __init__(self, lookups: Counter, channel: str = CHANNEL, max_entries: int = 50_000) -> None:
        self.channel = channel
        #: This cache's mark on the notifications it need not act on (``notice``).
        self._origin = secrets.token_hex(8)
        self._lookups = lookups
        self._entries: _ByRepository[V] = _ByRepository(max_entries)
        self._listening = False
        #: Bumped on every invalidation, so a lookup that raced with one is not stored.
        self._generation = 0
        #: The entries held when the listening connection was lost: served only while the
        #: database is unavailable (no change can commit then), dropped when it is back.
        self._away: _ByRepository[V] = _ByRepository(max_entries)
        #: (repository, digest) -> size of blobs served lately, for ``blob_while_away``.
        self._blobs: _ByRepository[int] = _ByRepository(max_entries)

    @property
    def listening(self) -> bool:
        """Whether it serves entries (its listening connection is up)."""
        return self._listening

    def get(self, repo: str, reference: str) -> V | None:
        if not self._listening:
            return None
        value = self._entries.get((repo, reference))
        self._lookups.inc("hit" if value is not None else "miss")
        return value

    def generation(self) -> int:
        return self._generation

    def put(self, repo: str, reference: str, value: V, generation: int) -> None:
        """Store a lookup made when ``generation()`` returned ``generation`` (dropped if stale)."""
        if not self._listening or generation != self._generation:
            return
        self._entries.put((repo, reference), value)

    def while_away(self, repo: str, reference: str) -> V | None:
        """The lookup cached before the listening connection was lost, for a caller that found
        the database unavailable: a tag moved on another replica in the moments before the
        outage may still show its former manifest until the database is back."""
        return self._away.get((repo, reference))

    def blob_served(self, repo: str, digest: str, size: int) -> None:
        """Remember that ``repo`` served blob ``digest`` (bounded: the least recent go first)."""
        self._blobs.put((repo, digest), size)

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
        self._entries.drop(repo)
        self._away.drop(repo)
        self._blobs.drop(repo)

    def _set_aside(self) -> None:
        """Stop serving entries (they may miss notifications from now on) but keep them for outages."""
        self._generation += 1
        self._listening = False
        for key, value in self._entries.items():
            self._away.put(key, value)
        self._entries.clear()

    def notice(self, repo: str) -> str:
        """The payload of a notification for ``repo`` that this cache ignores (the caller applies
        the change to it itself, after the commit)."""
        return f"{repo} {self._origin}"

    def _notified(self, payload: str) -> None:
        repo, _, origin = payload.partition(" ")
        if origin != self._origin:
            self.invalidate(repo or None)

    def _connected(self) -> None:
        self.invalidate()
        self._listening = True


def keep_coherent(notifications: Notifications, caches: Sequence[RepositoryCache[Any]]) -> None:
    """Have ``caches`` listen for their invalidations on ``notifications``: nothing is cached
    until it listens, nor while it is reconnecting."""
    for cache in caches:
        notifications.subscribe(cache.channel, cache._notified, connected=cache._connected, lost=cache._set_aside)

"""The trust files this process has read or stored, kept in memory: a trusted push or pull reads
a GUN's current files several times, mostly right after the update that made them.

Entries live in a ``RepositoryCache`` (``dtr.registry.cache``) under the GUN's repository,
invalidated by notifications on ``CHANNEL`` (not the manifests' channel: a push of an image
leaves its trust data cached): a transaction changing a GUN's files sends ``payload(gun)`` (every
other replica drops the repository's entries when it commits) and, once it has ended, calls
``changed`` (this process drops them, and caches the files it just committed, current and by
checksum, when nothing may have changed them since). Lookups that found nothing are cached too
(``root.json`` 404s while a push creates its repository).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Mapping

from dtr.ops.metrics import TRUST_CACHE
from dtr.registry.cache import RepositoryCache
from dtr.trust.names import gun_repository

__all__ = ["CHANNEL", "CURRENT", "CachedFiles", "StoredFile", "checksum", "repository_of"]

CHANNEL = "dtr_trust"
#: ``which`` of a role's current file.
CURRENT = "current"


@dataclasses.dataclass(frozen=True, slots=True)
class StoredFile:
    data: bytes
    #: When it was stored (Last-Modified).
    modified: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class _Lookup:
    found: StoredFile | None


def checksum(sha256: str) -> str:
    """``which`` of a file by its SHA-256 (hex)."""
    return f"sha256:{sha256.lower()}"


def repository_of(gun: str) -> str:
    """The repository a GUN's files are cached under ("" for a GUN naming none: its changes drop
    every entry)."""
    return gun_repository(gun) or ""


class CachedFiles:
    """(GUN, role, which) -> the file found, or None when there was none; ``which`` names the
    choice: ``CURRENT``, ``v<N>`` or ``sha256:<hex>``."""

    def __init__(self) -> None:
        self.cache: RepositoryCache[_Lookup] = RepositoryCache(TRUST_CACHE, CHANNEL)

    def get(self, gun: str, role: str, which: str) -> _Lookup | None:
        return self.cache.get(repository_of(gun), f"{gun}\0{role}\0{which}")

    def payload(self, gun: str) -> str:
        """The notification of a change to ``gun``'s files that ``changed`` applies here."""
        return self.cache.notice(repository_of(gun))

    def generation(self) -> int:
        return self.cache.generation()

    def put(self, gun: str, role: str, which: str, found: StoredFile | None, generation: int) -> None:
        """Store a lookup made when ``generation()`` returned ``generation``."""
        self.cache.put(repository_of(gun), f"{gun}\0{role}\0{which}", _Lookup(found), generation)

    def changed(self, gun: str, generation: int | None = None, current: Mapping[str, StoredFile] | None = None
                ) -> None:
        """A transaction that may have changed ``gun``'s files has ended: drop its entries; then,
        given the GUN's ``current`` files as committed and the ``generation`` read while the
        transaction still held the GUN's lock, cache them when no invalidation came in since
        (a later change of the GUN, on any replica, is notified after it)."""
        quiet = generation is not None and generation == self.cache.generation()
        self.cache.invalidate(repository_of(gun))
        if quiet and current is not None:
            now = self.cache.generation()
            for role, found in current.items():
                self.put(gun, role, CURRENT, found, now)
                self.put(gun, role, checksum(hashlib.sha256(found.data).hexdigest()), found, now)

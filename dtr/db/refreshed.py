"""A value read from the database and kept in memory, re-read at most every ``ttl`` seconds.

For settings consulted on hot paths (a pull's signing policy, a namespace's pull-through cache):
a change is seen by every replica within ``ttl``, and no request pays a round-trip for them. While
the database is unavailable, the last value read is kept (no change can commit then), so an
outage does not turn every request that consults the setting into a 503; before any read has
succeeded there is nothing to keep, and ``DatabaseUnavailable`` is raised.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from dtr.db.errors import DatabaseUnavailable

T = TypeVar("T")


class Refreshed(Generic[T]):
    """``await get()``: the value ``read()`` returned, at most ``ttl`` seconds old while the database answers."""

    def __init__(self, read: Callable[[], Awaitable[T]], ttl: float) -> None:
        self._read, self.ttl = read, ttl
        self._value: T | None = None
        self._loaded = False
        self._read_at = -ttl

    async def get(self) -> T:
        """The value; DatabaseUnavailable only when it was never read."""
        if time.monotonic() - self._read_at >= self.ttl:
            try:
                self._value, self._loaded = await self._read(), True
            except DatabaseUnavailable:
                if not self._loaded:
                    raise
            self._read_at = time.monotonic()
        return self._value  # type: ignore[return-value]  # set by the read above, or an earlier one

    def last(self) -> T | None:
        """The last value read, None before the first."""
        return self._value

    def forget(self) -> None:
        """Re-read on the next ``get`` (after a change made through this process: seen at once
        here, within ``ttl`` on the other replicas)."""
        self._read_at = -self.ttl

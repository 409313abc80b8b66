"""Slowing down password guessing, per user and per client address, across every replica.

Failures are counted in Postgres (``login_failures``), so a client spreading its guesses over
the replicas behind a load balancer gets no more tries than against one. After ``threshold``
failures within ``window`` seconds of a key's first failure, attempts for that key are refused
for ``base * 2**(failures - threshold)`` seconds (at most ``max_delay``) after the last failure;
refused attempts are not checked, so they neither count nor extend the lock. A successful login
clears the user's failures, not the address's. Keys idle past the window are deleted now and then.
"""

from __future__ import annotations

import itertools
import math

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_RECENT = text("""
SELECT key, failures, extract(epoch FROM last_at - now()) AS last_ago FROM login_failures
WHERE key = ANY(CAST(:keys AS text[])) AND first_at > now() - make_interval(secs => :window)
""")

_FAILED = text("""
INSERT INTO login_failures (key, failures, first_at, last_at)
SELECT k, 1, now(), now() FROM unnest(CAST(:keys AS text[])) AS k
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN login_failures.first_at > now() - make_interval(secs => :window)
                    THEN login_failures.failures + 1 ELSE 1 END,
    first_at = CASE WHEN login_failures.first_at > now() - make_interval(secs => :window)
                    THEN login_failures.first_at ELSE now() END,
    last_at = now()
""")

_FORGET = text("DELETE FROM login_failures WHERE last_at < now() - make_interval(secs => :age)")

#: Every this many failures in a process, keys idle past the window (and any lock) are deleted.
_CLEANUP_EVERY = 100


def duration(seconds: float) -> str:
    """``seconds`` (rounded up to a whole second) for a message: "1 second", "90 seconds",
    "1 minute", "5 minutes", "2 hours"; a larger unit once it is exact or at least two of it
    (rounded up)."""
    n = max(math.ceil(seconds), 0)
    count, unit = n, "second"
    for name, size in (("hour", 3600), ("minute", 60)):
        if n >= 2 * size or (n >= size and n % size == 0):
            count, unit = math.ceil(n / size), name
            break
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _user(name: str) -> str:
    return f"u:{name[:300]}"  # longer names never log in; their failures still count, under one key


def _address(address: str) -> str:
    return f"a:{address[:300]}"


class LoginThrottle:
    def __init__(self, engine: AsyncEngine, user_threshold: int, address_threshold: int, window: float,
                 base: float, max_delay: float) -> None:
        self.engine = engine
        self.user_threshold, self.address_threshold = user_threshold, address_threshold
        self.window, self.base, self.max_delay = window, base, max_delay
        self._failures = itertools.count(1)

    async def retry_after(self, user: str, address: str) -> tuple[float, bool]:
        """Seconds until ``user`` may try again from ``address`` (0: now), and whether ``user`` has
        failures on record (only then does a success need to clear them)."""
        thresholds = {_user(user): self.user_threshold, _address(address): self.address_threshold}
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_RECENT, {"keys": list(thresholds), "window": self.window})).all()
        wait = 0.0
        for row in rows:
            threshold = thresholds[row.key]
            if row.failures >= threshold:
                lock = min(self.base * 2 ** min(row.failures - threshold, 32), self.max_delay)
                wait = max(wait, float(row.last_ago) + lock)
        return wait, _user(user) in {row.key for row in rows}

    async def failure(self, user: str, address: str) -> None:
        async with self.engine.begin() as conn:
            # Sorted keys: two replicas recording failures for the same pair cannot deadlock.
            await conn.execute(_FAILED, {"keys": sorted((_user(user), _address(address))), "window": self.window})
            if next(self._failures) % _CLEANUP_EVERY == 0:
                await conn.execute(_FORGET, {"age": self.window + self.max_delay})

    async def success(self, user: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text("DELETE FROM login_failures WHERE key = :k"), {"k": _user(user)})

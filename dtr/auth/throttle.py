"""Slowing down password guessing, per user and per client address (in process memory).

After ``threshold`` failures within ``window`` seconds, attempts for that key are refused for
``base * 2**(failures - threshold)`` seconds (at most ``max_delay``) after the last failure.
A successful login clears the user's failures, not the address's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_MAX_KEYS = 100_000


class LoginThrottle:
    def __init__(self, user_threshold: int, address_threshold: int, window: float, base: float,
                 max_delay: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.user_threshold, self.address_threshold = user_threshold, address_threshold
        self.window, self.base, self.max_delay, self.clock = window, base, max_delay, clock
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        times = self._failures.get(key)
        if not times:
            return []
        while times and times[0] < now - self.window:
            times.pop(0)
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until ``user`` may try again from ``address`` (0: now)."""
        now = self.clock()
        wait = 0.0
        for key, threshold in ((f"u:{user}", self.user_threshold), (f"a:{address}", self.address_threshold)):
            times = self._recent(key, now)
            if len(times) >= threshold:
                lock = min(self.base * 2 ** (len(times) - threshold), self.max_delay)
                wait = max(wait, times[-1] + lock - now)
        return wait

    def failure(self, user: str, address: str) -> None:
        now = self.clock()
        if len(self._failures) > _MAX_KEYS:
            for key in list(self._failures):
                self._recent(key, now)
            if len(self._failures) > _MAX_KEYS:
                self._failures.clear()
        for key in (f"u:{user}", f"a:{address}"):
            times = self._failures.setdefault(key, [])
            times.append(now)
            del times[:-64]

    def success(self, user: str) -> None:
        self._failures.pop(f"u:{user}", None)

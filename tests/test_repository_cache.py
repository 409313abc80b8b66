"""``dtr.registry.cache.RepositoryCache`` without a database: bounded in least-recently-used order,
one repository's entries dropped alone, stale lookups refused, nothing served while not listening.
(Coherence across replicas: tests/test_replicas.py and tests/trust/test_trust_cache.py.)"""

from __future__ import annotations

from dtr.ops.metrics import Counter
from dtr.registry.cache import RepositoryCache

LOOKUPS = Counter("test_repository_cache_lookups", "lookups in this test", ("result",))


def listening(max_entries: int) -> RepositoryCache[str]:
    cache: RepositoryCache[str] = RepositoryCache(LOOKUPS, max_entries=max_entries)
    cache._connected()  # what the listening connection does once it listens
    return cache


def test_bounded_least_recently_used_first() -> None:
    cache = listening(3)
    for ref in ("a", "b", "c"):
        cache.put("ns/app", ref, ref.upper(), cache.generation())
    assert cache.get("ns/app", "a") == "A"  # a is now the most recent
    cache.put("ns/other", "d", "D", cache.generation())
    assert cache.get("ns/app", "b") is None
    assert [cache.get("ns/app", r) for r in ("a", "c")] == ["A", "C"]
    assert cache.get("ns/other", "d") == "D"


def test_one_repository_dropped_alone_and_stale_lookups_refused() -> None:
    cache = listening(100)
    for repo in ("ns/app", "ns/app2", "ns/ap"):
        cache.put(repo, "latest", repo, cache.generation())
    stale = cache.generation()
    cache.invalidate("ns/app")
    assert cache.get("ns/app", "latest") is None
    assert cache.get("ns/app2", "latest") == "ns/app2" and cache.get("ns/ap", "latest") == "ns/ap"
    cache.put("ns/app", "latest", "read before the change", stale)
    assert cache.get("ns/app", "latest") is None
    cache.put("ns/app", "latest", "read after", cache.generation())
    assert cache.get("ns/app", "latest") == "read after"
    # the bound still holds once entries come and go
    for i in range(300):
        cache.put(f"r/{i % 7}", str(i), "x", cache.generation())
        if i % 5 == 0:
            cache.invalidate(f"r/{i % 7}")
    assert len(cache._entries.items()) <= 100


def test_nothing_served_while_not_listening_but_kept_for_an_outage() -> None:
    cache = listening(10)
    cache.put("ns/app", "latest", "M", cache.generation())
    cache._set_aside()  # the listening connection is lost
    assert cache.get("ns/app", "latest") is None
    assert cache.while_away("ns/app", "latest") == "M"
    cache.put("ns/app", "v2", "N", cache.generation())
    assert cache.while_away("ns/app", "v2") is None and cache.get("ns/app", "v2") is None
    cache._connected()
    assert cache.while_away("ns/app", "latest") is None

"""The trust files kept in memory (``dtr.trust.cached``), on real Postgres: two stores with a
listening connection each stand for two replicas. What one changes, the other serves once the
notification arrives; the one that changed it serves it at once (from memory: the update left
its files there); an image push's notification leaves trust files cached."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.db.engine import connect_args
from dtr.db.listen import Notifications
from dtr.ops.tasks import background
from dtr.registry.cache import CHANNEL as MANIFESTS
from dtr.registry.cache import keep_coherent
from dtr.trust.cached import CURRENT, checksum
from dtr.trust.store import TrustStore
from tests.trust.test_notary_store import REPO, make_store, new_repo
from tests.trust.tufclient import signed_part

GUN = "127.0.0.1:5000/ns/app"


@contextlib.asynccontextmanager
async def replica(engine: AsyncEngine, database_url: str, tmp_path: Path) -> AsyncIterator[TrustStore]:
    """A store whose cache listens, as a replica's does (``dtr.app``)."""
    store = make_store(engine, tmp_path)
    notifications = Notifications(database_url)
    keep_coherent(notifications, [store.files.cache])
    async with background(notifications.run()):
        await until(lambda: store.files.cache.listening)
        yield store


async def until(check: Callable[[], object], within: float = 10.0) -> None:
    """Wait for ``check()`` to hold (a notification's arrival; bounded, not a timing check)."""
    for _ in range(int(within / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check()


async def settled(store: TrustStore, database_url: str) -> None:
    """Wait until ``store`` has acted on every notification committed so far: Postgres delivers
    them in commit order, so once a marker sent now has dropped its entry, the earlier ones are in."""
    marker = "127.0.0.1:5000/settled/marker"
    store.files.put(marker, "root", CURRENT, None, store.files.generation())
    conn = await asyncpg.connect(**connect_args(database_url))
    try:
        await conn.execute("SELECT pg_notify($1, 'settled/marker')", store.files.cache.channel)
    finally:
        await conn.close()
    await until(lambda: store.files.get(marker, "root", CURRENT) is None)


async def version(store: TrustStore, role: str) -> int | None:
    found = await store.current(GUN, role)
    return None if found is None else int(signed_part(found.data)["version"])


async def test_a_change_reaches_the_other_replica_and_is_served_at_once_where_made(
        engine: AsyncEngine, database_url: str, tmp_path: Path) -> None:
    async with replica(engine, database_url, tmp_path / "a") as a, \
            replica(engine, database_url, tmp_path / "b") as b:
        repo = await new_repo(a, GUN)
        await settled(b, database_url)  # else the creation's notification may drop what b reads next
        assert await version(b, "timestamp") == 1 and await version(b, "targets") == 1  # b caches them
        assert b.files.get(GUN, "timestamp", CURRENT) is not None

        repo.add_target("v2", b"two")
        await a.update(GUN, REPO, {"targets": repo.targets_file()})
        # a left what it committed in memory: current files and by checksum, no database read
        cached = a.files.get(GUN, "targets", CURRENT)
        assert cached is not None and cached.found is not None and signed_part(cached.found.data)["version"] == 2
        snapshot = a.files.get(GUN, "snapshot", CURRENT)
        assert snapshot is not None and snapshot.found is not None
        assert a.files.get(GUN, "snapshot", checksum(hashlib.sha256(snapshot.found.data).hexdigest())) is not None
        # b drops its copies when a's commit is notified, and reads the new ones
        await until(lambda: b.files.get(GUN, "targets", CURRENT) is None)
        assert await version(b, "targets") == 2 and await version(b, "timestamp") == 2

        await a.delete(GUN)
        assert await version(a, "root") is None
        # b never read root after the update dropped its copies, so wait for the notification itself
        await settled(b, database_url)
        assert await version(b, "root") is None and await version(b, "timestamp") is None


async def test_a_lookup_that_found_nothing_is_cached_until_the_gun_changes(
        engine: AsyncEngine, database_url: str, tmp_path: Path) -> None:
    async with replica(engine, database_url, tmp_path / "a") as a, \
            replica(engine, database_url, tmp_path / "b") as b:
        assert await b.current(GUN, "root") is None
        missing = b.files.get(GUN, "root", CURRENT)
        assert missing is not None and missing.found is None  # root.json 404s while a push makes the repository
        await new_repo(a, GUN)
        await until(lambda: b.files.get(GUN, "root", CURRENT) is None)
        assert await version(b, "root") == 1


async def test_an_image_push_leaves_trust_files_cached(engine: AsyncEngine, database_url: str,
                                                       tmp_path: Path) -> None:
    async with replica(engine, database_url, tmp_path / "a") as a:
        await new_repo(a, GUN)
        assert a.files.get(GUN, "targets", CURRENT) is not None
        conn = await asyncpg.connect(**connect_args(database_url))
        try:
            # the registry's notification of a push to the repository, then (in order, on the same
            # connection) one for another repository's trust data, whose arrival is observable
            await conn.execute(f"SELECT pg_notify('{MANIFESTS}', $1)", REPO)
            before = a.files.generation()
            await conn.execute("SELECT pg_notify('dtr_trust', 'other/repository')")
        finally:
            await conn.close()
        await until(lambda: a.files.generation() != before)
        assert a.files.get(GUN, "targets", CURRENT) is not None


async def test_a_commit_overtaken_by_a_notification_is_not_cached(engine: AsyncEngine, database_url: str,
                                                                  tmp_path: Path) -> None:
    """``changed`` caches what an update committed only when no invalidation came in since it
    read the generation under the GUN's lock (one may be a later change of the same GUN)."""
    async with replica(engine, database_url, tmp_path / "a") as a:
        await new_repo(a, GUN)
        committed = {"targets": (await a.current(GUN, "targets"))}
        generation = a.files.generation()
        a.files.cache.invalidate("another/repository")  # a notification arriving meanwhile
        a.files.changed(GUN, generation, committed)  # type: ignore[arg-type]
        assert a.files.get(GUN, "targets", CURRENT) is None
        a.files.changed(GUN, a.files.generation(), committed)  # type: ignore[arg-type]
        assert a.files.get(GUN, "targets", CURRENT) is not None

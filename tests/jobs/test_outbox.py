"""The registry's event outbox against real dtr processes and Postgres: events are recorded in
the change's transaction, survive a crash before delivery, are never announced for a rolled
back change, reach a subscriber once across replicas, and come in commit order; a failing
subscriber holds back no other."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dtr.db.engine import asyncpg_url
from tests.jobs.conftest import api, wait_job
from tests.oci import OCI_MANIFEST, digest_of, image, push_blob, push_image, put_manifest


@pytest.fixture
async def engines() -> AsyncIterator[list[AsyncEngine]]:
    """Engines opened by a test on its cluster's database, disposed after it."""
    opened: list[AsyncEngine] = []
    yield opened
    for e in opened:
        await e.dispose()


def _engine(engines: list[AsyncEngine], database_url: str) -> AsyncEngine:
    engines.append(create_async_engine(asyncpg_url(database_url)))
    return engines[-1]


async def _events(engine: AsyncEngine, repo: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(
            "SELECT id, type, tag, digest, actor, detail FROM registry_events WHERE repository = :r ORDER BY id"),
            {"r": repo})).all())


async def _audited(engine: AsyncEngine, repo: str, type_: str = "push") -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(
            "SELECT type, detail FROM audit_events WHERE object_name = :r AND type = :t ORDER BY id"),
            {"r": repo, "t": type_})).all())


async def _until(check: Any, within: float = 30) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def test_an_acknowledged_push_is_delivered_after_a_crash(cluster, http: aiohttp.ClientSession,
                                                               engines: list[AsyncEngine]) -> None:
    """The subscriber's cursor is held by the test, so nothing is delivered before the kill -9."""
    (a,) = cluster(1)
    engine = _engine(engines, a.config["database"]["url"])
    repo = "outbox/crash"

    async def cursor_made() -> bool:  # the outbox makes its cursors once running, maybe after /_ping answers
        async with engine.connect() as conn:
            return bool((await conn.execute(text(
                "SELECT count(*) FROM event_cursors WHERE subscriber = 'audit'"))).scalar())

    assert await _until(cursor_made)
    async with engine.connect() as holder:
        position = (await holder.execute(text(
            "SELECT position FROM event_cursors WHERE subscriber = 'audit' FOR UPDATE"))).scalar()
        assert position is not None
        body = await push_image(http, a.url, repo, "v1", b'{"crash": 1}', [b"layer-crash"])
        a.kill()
        assert [e.type for e in await _events(engine, repo)] == ["repository_created", "manifest_pushed",
                                                                 "tag_pushed"]
        assert await _audited(engine, repo) == []
        await holder.rollback()
    a.start()
    pushed = await _until(lambda: _audited(engine, repo))
    assert [(r.type, r.detail) for r in pushed] == [("push", {"reference": "v1"})]
    assert (await _events(engine, repo))[-1].digest == digest_of(body)


async def test_a_rolled_back_change_announces_nothing(cluster, http: aiohttp.ClientSession,
                                                      engines: list[AsyncEngine]) -> None:
    (a,) = cluster(1)
    engine = _engine(engines, a.config["database"]["url"])
    repo = "outbox/immutable"
    first = await push_image(http, a.url, repo, "v1", b'{"n": 1}', [b"layer-imm"])
    await api(http, "PUT", f"{a.url}/api/v0/repositories/{repo}/pruning", {"immutableTags": True})
    await push_blob(http, a.url, repo, b'{"n": 2}')
    status, err = await put_manifest(http, a.url, repo, "v1", image(b'{"n": 2}', [b"layer-imm"]))
    assert status == 403 and err["errors"][0]["code"] == "DENIED", err
    assert [(e.type, e.digest) for e in await _events(engine, repo)] == [
        ("repository_created", None), ("manifest_pushed", digest_of(first)), ("tag_pushed", digest_of(first))]


async def test_two_replicas_hand_each_event_to_a_subscriber_once(cluster, http: aiohttp.ClientSession,
                                                                 engines: list[AsyncEngine]) -> None:
    a, b = cluster(2)
    engine = _engine(engines, a.config["database"]["url"])
    repo = "outbox/replicas"
    await push_blob(http, a.url, repo, b"layer-rep")
    for blob in (f'{{"r": {i}}}'.encode() for i in range(30)):
        await push_blob(http, a.url, repo, blob)
    results = await asyncio.gather(*(
        put_manifest(http, (a, b)[i % 2].url, repo, f"t{i}", image(f'{{"r": {i}}}'.encode(), [b"layer-rep"]))
        for i in range(30)))
    assert all(status == 201 for status, _ in results), results

    async def delivered() -> bool:
        async with engine.connect() as conn:
            return bool((await conn.execute(text(
                "SELECT position >= (SELECT max(id) FROM registry_events) FROM event_cursors "
                "WHERE subscriber = 'audit'"))).scalar())

    assert await _until(delivered)
    pushes = await _audited(engine, repo)
    assert sorted(r.detail["reference"] for r in pushes) == sorted(f"t{i}" for i in range(30))


async def test_gc_and_pruning_deletes_produce_events(cluster, http: aiohttp.ClientSession,
                                                     engines: list[AsyncEngine]) -> None:
    (a,) = cluster(1)
    engine = _engine(engines, a.config["database"]["url"])
    repo = "outbox/collected"
    untagged = image(b'{"gc": 1}', [b"layer-gc"])
    for blob in (b'{"gc": 1}', b"layer-gc"):
        await push_blob(http, a.url, repo, blob)
    assert (await put_manifest(http, a.url, repo, digest_of(untagged), untagged))[0] == 201
    job = await api(http, "POST", f"{a.url}/api/v0/jobs", {"action": "gc", "parameters": {"grace_period": 0}})
    assert (await wait_job(http, a.url, job["id"], within=120))["status"] == "done"
    gone = [e for e in await _events(engine, repo) if e.type == "manifest_deleted"]
    assert [(e.digest, e.actor, e.detail) for e in gone] == [(digest_of(untagged), "", {"tags": [], "gc": True})]

    pruned_repo = "outbox/pruned"
    await api(http, "PUT", f"{a.url}/api/v0/repositories/{pruned_repo}/pruning", {"tagLimit": 1}, expect=(200, 404))
    await push_image(http, a.url, pruned_repo, "old", b'{"p": 1}', [b"layer-p"])
    await api(http, "PUT", f"{a.url}/api/v0/repositories/{pruned_repo}/pruning", {"tagLimit": 1})
    await push_image(http, a.url, pruned_repo, "new", b'{"p": 2}', [b"layer-p"])

    async def pruned() -> list[Any]:
        return [e for e in await _events(engine, pruned_repo) if e.type == "tag_deleted"]

    deleted = await _until(pruned, within=60)
    assert [(e.tag, e.actor, e.detail) for e in deleted] == [("old", "", {"pruned": "tag limit 1"})]


async def test_events_come_in_commit_order(cluster, http: aiohttp.ClientSession,
                                           engines: list[AsyncEngine]) -> None:
    """Concurrent pushes moving one tag: in id order each move names the digest before it, and
    the last names where the tag points now. And the mechanism itself: while one transaction
    has recorded events and not committed, another cannot draw an event id."""
    a, b = cluster(2)
    engine = _engine(engines, a.config["database"]["url"])
    repo = "outbox/order"
    configs = [f'{{"o": {i}}}'.encode() for i in range(12)]
    for blob in (b"layer-o", *configs):
        await push_blob(http, a.url, repo, blob)
    results = await asyncio.gather(*(put_manifest(http, (a, b)[i % 2].url, repo, "latest", image(c, [b"layer-o"]))
                                     for i, c in enumerate(configs)))
    assert all(status == 201 for status, _ in results), results
    moves = [e for e in await _events(engine, repo) if e.type in ("tag_pushed", "tag_moved")]
    assert len(moves) == 12 and moves[0].type == "tag_pushed"
    for before, after in itertools.pairwise(moves):
        assert after.type == "tag_moved" and after.detail == {"previous": before.digest}, (before, after)
    async with http.get(f"{a.url}/v2/{repo}/manifests/latest",
                        headers={"Accept": OCI_MANIFEST}) as r:
        assert r.headers["Docker-Content-Digest"] == moves[-1].digest

    record = text("SELECT dtr_record_events(CAST(:e AS jsonb), CAST(:i AS text[]))")
    one = json.dumps([{"type": "tag_pushed", "repository": "outbox/mechanism"}])
    async with engine.connect() as first, engine.connect() as second:
        await first.execute(record, {"e": one, "i": []})
        await second.execute(text("SET LOCAL lock_timeout = '1s'"))
        with pytest.raises(DBAPIError, match="lock timeout"):
            await second.execute(record, {"e": one, "i": []})
        await first.rollback()


async def test_a_failing_subscriber_holds_back_no_other(engine: AsyncEngine) -> None:
    """Subscribers behind share one transaction per batch; when one fails, the batch is handed to
    each alone: the others get their events (once), the failing one's cursor stays until it
    recovers, then it gets them all, in order."""
    from dtr.registry.events import SYSTEM, Event, Outbox, record

    got: dict[str, list[int]] = {"audit": [], "flaky": []}
    broken = True

    async def good(conn: Any, batch: Any) -> None:
        await conn.execute(text("SELECT 1"))  # a handler's own statement, in the shared transaction
        got["audit"] += [e.id for e in batch]

    async def flaky(conn: Any, batch: Any) -> None:
        if broken:
            raise RuntimeError("webhook table unreachable")
        got["flaky"] += [e.id for e in batch]

    outbox = Outbox(engine)
    outbox.subscribe("t-good", good)
    outbox.subscribe("t-flaky", flaky)
    await outbox._start()
    for n in range(3):
        async with engine.begin() as conn:
            await record(conn, SYSTEM, [Event("tag_pushed", "outbox/isolated", f"t{n}")])
    assert await outbox.deliver() == 3
    assert len(got["audit"]) == 3 and got["flaky"] == []
    assert await outbox.deliver() == 0  # the good one is up to date, the flaky one waits its retry delay
    broken = False
    outbox._retry_at.clear()
    assert await outbox.deliver() == 3
    assert got["flaky"] == got["audit"] == sorted(got["audit"])
    async with engine.connect() as conn:
        positions = dict((await conn.execute(text(
            "SELECT subscriber, position FROM event_cursors WHERE subscriber LIKE 't-%'"))).all())
    assert positions == {"t-good": got["audit"][-1], "t-flaky": got["audit"][-1]}
    async with engine.begin() as conn:  # both healthy: one shared transaction hands both the new events
        await record(conn, SYSTEM, [Event("tag_pushed", "outbox/isolated", t) for t in ("t3", "t4")])
    assert await outbox.deliver() == 4
    assert got["flaky"] == got["audit"] and len(got["audit"]) == 5

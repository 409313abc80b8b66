"""The jobs domain's use cases called directly, as a web UI would, without HTTP: a real Postgres
database, no dtr process (so queued jobs stay waiting)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.accounts.service import EventFilter, list_events
from dtr.api.errors import APIError, ErrorCode, codes
from dtr.auth.access import ANONYMOUS, Principal
from dtr.jobs import admin, policies, usage
from dtr.jobs.caller import Caller
from dtr.jobs.service import JobService
from dtr.registry.changes import SYSTEM, create_repository
from dtr.registry.service import RegistryService
from dtr.storage.filesystem import FilesystemDriver, FilesystemParams

ROOT = Principal(name="root", id=1, is_admin=True)
ALICE = Principal(name="alice", id=2)

CallerFor = Callable[[Principal], Caller]


@pytest.fixture
async def caller(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[CallerFor]:
    """``caller(principal)``: that principal calling from 192.0.2.1."""
    storage = FilesystemDriver(FilesystemParams(str(tmp_path / "registry")))
    registry = RegistryService(engine, storage)
    yield lambda who: Caller(engine, who, "192.0.2.1", JobService(engine), registry)
    await storage.close()


async def _events(engine: AsyncEngine, type_: str) -> list[tuple[str, str, str, object]]:
    async with engine.connect() as conn:
        rows = await list_events(conn, EventFilter(type=type_), None, 100)
    return [(r.actor, r.client_addr, r.object_name, r.detail) for r in rows]


async def test_an_admin_queues_lists_and_cancels_a_job(caller: CallerFor, engine: AsyncEngine) -> None:
    root = caller(ROOT)
    job = await admin.start_job(root, admin.JobSpec("noop", {"seconds": 1}, admin.JobOptions(retries=2)))
    assert job["status"] == "waiting" and job["retries"] == 2 and job["parameters"] == {"seconds": 1}
    listed, more = await admin.list_jobs(root, action="noop", status="waiting,running")
    assert [j["id"] for j in listed] == [job["id"]] and more is None
    assert await admin.get_job(root, uuid.UUID(job["id"])) == job
    assert (await admin.cancel_job(root, uuid.UUID(job["id"])))["status"] == "cancel"
    assert [x["data"] for x in await admin.job_logs(root, uuid.UUID(job["id"]))] == ["cancelled before it ran"]
    assert await admin.list_jobs(root, status="waiting") == ([], None)
    assert await _events(engine, "job_start") == [("root", "192.0.2.1", job["id"], {"action": "noop"})]
    assert await _events(engine, "job_cancel") == [("root", "192.0.2.1", job["id"], {"action": "noop"})]


async def test_only_site_admins_may_use_the_job_queue(caller: CallerFor, engine: AsyncEngine) -> None:
    for who, code in ((ALICE, codes.FORBIDDEN), (ANONYMOUS, codes.UNAUTHORIZED)):
        with pytest.raises(APIError) as e:
            await admin.start_job(caller(who), admin.JobSpec("noop"))
        assert e.value.code is code
        with pytest.raises(APIError) as e:
            await admin.list_jobs(caller(who))
        assert e.value.code is code
        with pytest.raises(APIError) as e:
            await usage.list_namespaces(caller(who))
        assert e.value.code is code
    assert await admin.list_jobs(caller(ROOT)) == ([], None)  # nothing was queued
    assert await _events(engine, "job_start") == []


async def test_client_mistakes_are_api_errors(caller: CallerFor) -> None:
    root = caller(ROOT)
    cases: list[tuple[Callable[[], Awaitable[object]], ErrorCode]] = [
        (lambda: admin.start_job(root, admin.JobSpec("nope")), codes.INVALID_JOB),
        (lambda: admin.start_job(root, admin.JobSpec("noop", {"seconds": "soon"})), codes.INVALID_JOB),
        (lambda: admin.list_jobs(root, status="lost"), codes.INVALID_PARAMETER),
        (lambda: admin.list_jobs(root, action="nope"), codes.INVALID_PARAMETER),
        (lambda: admin.list_jobs(root, start="not-a-page-start"), codes.INVALID_PARAMETER),
        (lambda: admin.get_job(root, uuid.uuid4()), codes.NO_SUCH_JOB),
        (lambda: admin.put_cron(root, "noop", admin.CronSpec("* * * * *")), codes.INVALID_CRON),
        (lambda: admin.delete_cron(root, "noop"), codes.NO_SUCH_CRON),
        (lambda: policies.list_policies(root, "no/such"), codes.NO_SUCH_REPOSITORY),
        (lambda: usage.repository_usage(root, "no/such"), codes.NO_SUCH_REPOSITORY),
    ]
    for call, code in cases:
        with pytest.raises(APIError) as e:
            await call()
        assert e.value.code is code, e.value.message


async def test_jobs_page_newest_first(caller: CallerFor) -> None:
    root = caller(ROOT)
    queued = [(await admin.start_job(root, admin.JobSpec("noop")))["id"] for _ in range(5)]
    pages, start = [], None
    while True:
        jobs, start = await admin.list_jobs(root, start=start, size=2)
        pages.append([j["id"] for j in jobs])
        if start is None:
            break
    newest = queued[::-1]
    assert pages == [newest[0:2], newest[2:4], newest[4:]]


async def test_pruning_policies_and_settings(caller: CallerFor, engine: AsyncEngine) -> None:
    root = caller(ROOT)
    async with engine.begin() as conn:
        await create_repository(conn, "acme/app", SYSTEM)
    policy = policies.parse_policy({"rules": [{"field": "tag", "operator": "sw", "values": ["dev-"]}],
                                    "enabled": False})
    created = await policies.create_policy(root, "acme/app", policy)
    assert created["enabled"] is False and created["rules"][0]["values"] == ["dev-"]
    assert await policies.list_policies(root, "acme/app") == [created]
    assert (await policies.would_prune(root, "acme/app", policy)) == {"immutableTags": False, "tags": []}
    settings = await policies.put_settings(root, "acme/app", policies.Settings(5, True), evaluate_now=True)
    assert await policies.get_settings(root, "acme/app") == settings == policies.Settings(5, True)
    jobs, _ = await admin.list_jobs(root, action="prune")
    assert [j["parameters"] for j in jobs] == [{"repository": "acme/app"}]
    await policies.delete_policy(root, "acme/app", uuid.UUID(created["id"]))
    with pytest.raises(APIError) as e:
        await policies.get_policy(root, "acme/app", uuid.UUID(created["id"]))
    assert e.value.code is codes.NO_SUCH_PRUNING_POLICY
    assert [t for _, _, _, t in await _events(engine, "repo_pruning_update")] == [
        {"tagLimit": 5, "immutableTags": True}]
    with pytest.raises(APIError) as e:
        await policies.create_policy(caller(ALICE), "acme/app", policy)
    assert e.value.code is codes.FORBIDDEN

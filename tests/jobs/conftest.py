"""Job tests: dtr processes sharing one database, with job timings shortened so tests are quick."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.servers import DtrProcess, create_database

#: Fast heartbeats and polling: a killed worker is found dead within a few seconds.
FAST_JOBS: dict[str, Any] = {
    "poll_interval": 0.2, "heartbeat_interval": 0.5, "worker_timeout": 5, "retry_backoff": 0.5,
    "stop_timeout": 2,
}


@pytest.fixture
def cluster(pg_uri: str, tmp_path: Path) -> Iterator[Callable[..., list[DtrProcess]]]:
    """``cluster(n, jobs={...})``: n started dtr processes on one database and one storage root."""
    started: list[DtrProcess] = []

    def make(n: int = 2, jobs: dict[str, Any] | None = None, **extra: Any) -> list[DtrProcess]:
        url = create_database(pg_uri, migrated=True)
        procs = []
        for _ in range(n):
            cfg = {"jobs": {**FAST_JOBS, **(jobs or {})},
                   "storage": {"filesystem": {"rootdirectory": str(tmp_path / "registry")}}, **extra}
            p = DtrProcess(tmp_path / f"dtr{len(started)}", url, cfg)
            started.append(p)
            procs.append(p.start())
        return procs

    yield make
    for p in started:
        p.stop()


async def api(http: aiohttp.ClientSession, method: str, url: str, body: Any = None,
              expect: int | tuple[int, ...] = (200, 201, 202, 204)) -> Any:
    async with http.request(method, url, json=body) as r:
        data = await r.json() if r.content_type == "application/json" else await r.read()
        ok = (expect,) if isinstance(expect, int) else expect
        assert r.status in ok, f"{method} {url}: {r.status} {data!r}"
        return data


async def wait_job(http: aiohttp.ClientSession, base: str, job_id: str, within: float = 60,
                   statuses: tuple[str, ...] = ("done", "error", "cancel")) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        job = await api(http, "GET", f"{base}/api/v0/jobs/{job_id}")
        if job["status"] in statuses:
            return dict(job)
        if time.monotonic() >= deadline:
            logs = await api(http, "GET", f"{base}/api/v0/jobs/{job_id}/logs?limit=10000")
            tail = "\n".join(str(x["data"]) for x in logs[-30:])
            raise AssertionError(f"job {job_id} still {job['status']} after {within}s:\n{job}\nlast log lines:\n{tail}")
        await asyncio.sleep(0.2)

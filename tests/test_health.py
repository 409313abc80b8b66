"""/health: the version and each component's state, 200 when all are ok, 503 when one is broken,
and nothing from the config in the answer."""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from dtr.keys import CONFIG, DATABASE

#: Heartbeats far apart, so a test can make this process's worker look silent without a race.
pytestmark = pytest.mark.usefixtures("app_extra")


@pytest.fixture
def app_extra() -> dict[str, Any]:
    return {"jobs": {"heartbeat_interval": 3600, "worker_timeout": 7200}}


async def test_health_reports_each_component(app_client: TestClient[web.Request, web.Application]) -> None:
    async with app_client.get("/health") as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    assert body["status"] == "ok"
    assert body["version"] == importlib.metadata.version("dtr")
    c = body["components"]
    assert set(c) == {"database", "storage", "jobs", "outbox"}  # a configured database: no embedded one
    assert all(part["status"] == "ok" for part in c.values()), c
    assert c["database"]["latency_ms"] >= 0 and c["storage"]["latency_ms"] >= 0
    assert c["jobs"]["workers_alive"] >= 1
    assert isinstance(c["outbox"]["lag"], int) and c["outbox"]["lag"] >= 0


@contextlib.contextmanager
def _replaced_by_a_file(root: Path) -> Iterator[None]:
    """The storage root is a plain file meanwhile (running as root, permissions would stop nothing)."""
    moved = root.with_name(root.name + ".away")
    root.rename(moved)
    root.write_text("not a directory")
    try:
        yield
    finally:
        root.unlink()
        moved.rename(root)


async def test_broken_storage_is_503_and_says_which(app: web.Application,
                                                     app_client: TestClient[web.Request, web.Application]) -> None:
    root = Path(app[CONFIG].storage_config.params["rootdirectory"])
    with _replaced_by_a_file(root):
        async with app_client.get("/health") as r:
            assert r.status == 503
            text = await r.text()
            body = await r.json()
    assert body["status"] == "unavailable"
    assert body["components"]["storage"]["status"] == "error" and body["components"]["storage"]["error"]
    assert body["components"]["database"]["status"] == "ok"
    # The answer names no configured value: not the storage root, not the database URL.
    assert str(root) not in text and str(app[CONFIG].database.url) not in text
    async with app_client.get("/health") as r:
        assert r.status == 200


async def test_no_live_worker_is_503(app: web.Application, app_client: TestClient[web.Request, web.Application]
                                     ) -> None:
    """Jobs are unhealthy when no worker heartbeats: here this process's worker looks silent (its
    next heartbeat is an hour away)."""
    async with app[DATABASE].engine.begin() as conn:
        await conn.execute(text("UPDATE job_workers SET heartbeat_at = now() - interval '3 hours'"))
    async with app_client.get("/health") as r:
        assert r.status == 503
        jobs = (await r.json())["components"]["jobs"]
    assert jobs == {"status": "error", "workers_alive": 0, "error": "no job worker is heartbeating"}


@pytest.mark.parametrize("app_extra", [{"database": {"url": None}}])
async def test_the_embedded_postgres_is_a_component(app: web.Application,
                                                    app_client: TestClient[web.Request, web.Application]) -> None:
    """No database URL: dtr runs its own PostgreSQL, and /health says whether its process lives."""
    pid = app[DATABASE].embedded_pid()
    assert pid is not None
    async with app_client.get("/health") as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["components"]["embedded_postgres"] == {"status": "ok"}

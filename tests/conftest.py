"""Session-wide real servers: one embedded Postgres, one dtr per xdist worker.

Fixtures:
- ``pg_uri``: base URI of the shared embedded PostgreSQL (session).
- ``database_url``: a fresh database with dtr's schema (per test, cloned from a template migrated
  once: ``create_database(migrated=True)``); ``engine``: an engine on it, for use cases called
  directly (no HTTP). ``empty_database_url``: a fresh, empty one, for tests of the migrations.
- ``dtr``: a running ``dtr serve`` (``DtrProcess``: ``.url``, ``.host``, ``.port``) shared by the
  worker's tests; use unique repository names (``repo_name``) so tests stay independent.
- ``dtr_factory``: start more dtr processes (own database and data dir) for crash and config tests;
  ``migrated=False`` gives one an empty database, so that it migrates it as it starts.
- ``http``: an aiohttp ClientSession.
- ``app_client``: dtr's app in this process (``create_app`` with its ``cleanup_ctx`` run) on a
  fresh database and data dir, for fast service-level tests: ``app`` is the application (its
  services: ``app[REGISTRY]``, ...), ``app_client`` an aiohttp ``TestClient`` and ``app_base`` its
  URL (``tests.oci`` helpers take ``app_client.session, app_base``). The config is the one a
  ``dtr`` process gets, plus ``app_extra`` (override that fixture to change it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dtr.app import create_app
from dtr.config import load_config
from tests.servers import DtrProcess, create_database, start_postgres


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    DtrProcess.started_in_test.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report carries the recent log lines (access lines left out) of the dtr
    processes it started: what the server said is usually what explains the failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed:
        for proc in DtrProcess.started_in_test:
            report.sections.append((f"dtr log {proc.url}", proc.log_tail(60, access=False)))


@pytest.fixture(scope="session")
def pg_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # One directory for every xdist worker of this run: the server is started once and shared.
    shared = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else \
        tmp_path_factory.getbasetemp()
    server = start_postgres(shared / "postgres")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def database_url(pg_uri: str) -> str:
    return create_database(pg_uri, migrated=True)


@pytest.fixture
def empty_database_url(pg_uri: str) -> str:
    return create_database(pg_uri)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``database_url`` (service-level tests)."""
    from dtr.db.engine import asyncpg_url

    engine = create_async_engine(asyncpg_url(database_url))
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def dtr(pg_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DtrProcess]:
    proc = DtrProcess(tmp_path_factory.mktemp("dtr"), create_database(pg_uri, migrated=True))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def dtr_factory(pg_uri: str, tmp_path: Path) -> Iterator[Callable[..., DtrProcess]]:
    started: list[DtrProcess] = []

    def make(extra: dict[str, Any] | None = None, start: bool = True, *, migrated: bool = True) -> DtrProcess:
        proc = DtrProcess(tmp_path / f"dtr{len(started)}", create_database(pg_uri, migrated=migrated), extra)
        started.append(proc)
        return proc.start() if start else proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
def repo_name() -> str:
    return f"test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


@pytest.fixture
def app_extra() -> dict[str, Any]:
    """Config sections for ``app_client`` on top of a ``dtr`` process's (as ``dtr_factory`` takes them)."""
    return {}


@pytest.fixture
async def app_client(database_url: str, tmp_path: Path, app_extra: dict[str, Any]
                     ) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    # The config file a DtrProcess would run with, loaded and validated as `dtr serve` does.
    config = load_config(DtrProcess(tmp_path / "app", database_url, app_extra).config_path, environ={})
    server = TestServer(create_app(config), host=config.http.host, port=config.http.port)
    async with TestClient(server, auto_decompress=False) as client:
        yield client


@pytest.fixture
def app(app_client: TestClient[web.Request, web.Application]) -> web.Application:
    return app_client.app


@pytest.fixture
def app_base(app_client: TestClient[web.Request, web.Application]) -> str:
    return str(app_client.make_url("/")).rstrip("/")

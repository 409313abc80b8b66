"""Promotion tests' helpers on the in-process app (``app_client``, fast jobs): the /api/v0 calls,
the tags of a repository, and waiting until every event is handled and every job has ended."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.keys import DATABASE
from tests.oci import push_blob
from tests.scanning.service_data import FAST_JOBS

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def app_extra() -> dict[str, Any]:
    return {"jobs": FAST_JOBS}


@pytest.fixture
def engine_(app: web.Application) -> AsyncEngine:
    return app[DATABASE].engine


async def api(client: Client, method: str, path: str, body: Any = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, JSON answer or None) of an /api/v0 call."""
    async with client.request(method, f"/api/v0{path}", json=body, headers=headers) as r:
        raw = await r.read()
        return r.status, json.loads(raw) if raw else None


def error_code(answer: Any) -> str:
    return str(answer["errors"][0]["code"])


async def new_repo(client: Client, base: str, name: str | None = None) -> str:
    """A repository made by a push of a blob (auth off: a push creates it)."""
    repo = name or f"ns/r{uuid.uuid4().hex[:10]}"
    await push_blob(client.session, base, repo, uuid.uuid4().hex.encode())
    return repo


async def create_policy(client: Client, source: str, target: str, rules: list[dict[str, Any]],
                        template: str = "%n", **extra: Any) -> dict[str, Any]:
    status, body = await api(client, "POST", f"/repositories/{source}/promotionPolicies",
                             {"rules": rules, "targetRepository": target, "tagTemplate": template, **extra})
    assert status == 201, body
    return dict(body)


def rule(field: str, operator: str, *values: str) -> dict[str, Any]:
    return {"field": field, "operator": operator, "values": list(values)}


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def tags(engine: AsyncEngine, repo: str) -> dict[str, str]:
    """Tag -> manifest digest of ``repo``."""
    return {r.name: r.digest for r in await rows(engine, """
        SELECT t.name, m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
        JOIN repositories r ON r.id = t.repository_id WHERE r.name = :n""", n=repo)}


_BUSY = """
SELECT (SELECT coalesce(max(id), 0) FROM registry_events)
         > coalesce((SELECT min(position) FROM event_cursors WHERE subscriber IN ('promote', 'scan-on-push')), 0)
    OR EXISTS (SELECT 1 FROM jobs WHERE status IN ('waiting', 'running', 'cancel_request')
               AND action IN ('promote', 'scan')) AS busy
"""


async def settle(engine: AsyncEngine, within: int = 600) -> None:
    """Wait until the promotion subscriber has handled every event and no promote or scan job is
    waiting or running (twice in a row: a job ending records events)."""
    quiet = 0
    for _ in range(within):
        (r,) = await rows(engine, _BUSY)
        quiet = 0 if r.busy else quiet + 1
        if quiet == 2:
            return
        await asyncio.sleep(0.1)
    cursors = await rows(engine, "SELECT subscriber, position FROM event_cursors")
    top = await rows(engine, "SELECT max(id) AS top FROM registry_events")
    jobs = await rows(engine, "SELECT action, status, parameters, error FROM jobs ORDER BY created_at")
    raise AssertionError(f"promotions never settled: events up to {top[0].top}, cursors {cursors}, jobs {jobs}")

"""``/health``: dtr's version and each component's state, for operators and monitoring.

200 when every component is ok, else 503. Components: ``database`` (latency or the error),
``storage`` (listing its root, as ``/_ping`` does), ``jobs`` (workers heartbeating within
``jobs.worker_timeout``), ``outbox`` (events the slowest subscriber has still to handle, and how
long the oldest of them has waited: not ok past ``OUTBOX_MAX_WAIT``), ``embedded_postgres`` (its
process, when dtr runs one). The answer holds states, numbers and error texts, never config values;
``dtr.ops.metrics`` routes it behind ``metrics.token`` when one is set.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import os
import time
from typing import Any

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.keys import CONFIG, DATABASE, STORAGE
from dtr.ops.views import DRAIN

#: Seconds each check may take before it counts as failed.
CHECK_TIMEOUT = 5.0
#: The outbox is unhealthy once an event has waited this long for a subscriber (seconds).
OUTBOX_MAX_WAIT = 300.0

_WORKERS = text("SELECT id, extract(epoch FROM now() - heartbeat_at) AS age FROM job_workers "
                "WHERE status = 'running' ORDER BY id")
# The slowest cursor against the newest event id; the oldest event it has not handled, and its wait.
_OUTBOX = text("""
SELECT coalesce((SELECT max(id) FROM registry_events) - min(c.position), 0) AS lag,
       coalesce(extract(epoch FROM now() - (SELECT e.at FROM registry_events e
                                            WHERE e.id > min(c.position) ORDER BY e.id LIMIT 1)), 0) AS wait
FROM event_cursors c
""")


@functools.cache
def version() -> str:
    """dtr's installed version (read once: every heartbeat names it)."""
    try:
        return importlib.metadata.version("dtr")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


async def worker_heartbeats(conn: AsyncConnection) -> list[tuple[str, float]]:
    """Each running job worker's id and seconds since its last heartbeat."""
    return [(r.id, float(r.age)) for r in await conn.execute(_WORKERS)]


async def outbox_lag(conn: AsyncConnection) -> tuple[int, float]:
    """Events the slowest outbox subscriber has still to handle, and seconds the oldest has waited."""
    row = (await conn.execute(_OUTBOX)).one()
    return int(row.lag), float(row.wait)


def _error(e: BaseException) -> dict[str, Any]:
    message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return {"status": "error", "error": message[:500]}


async def _database(request: web.Request) -> dict[str, dict[str, Any]]:
    """The database's state and what is read from it (jobs, outbox)."""
    worker_timeout = request.app[CONFIG].jobs.worker_timeout
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), request.app[DATABASE].engine.connect() as conn:
            start = time.perf_counter()
            await conn.execute(text("SELECT 1"))
            latency = time.perf_counter() - start
            beats = await worker_heartbeats(conn)
            lag, wait = await outbox_lag(conn)
    except Exception as e:
        unknown = {"status": "error", "error": "the database is unavailable"}
        return {"database": _error(e), "jobs": unknown, "outbox": unknown}
    alive = sum(age < worker_timeout for _, age in beats)
    jobs: dict[str, Any] = {"status": "ok" if alive else "error", "workers_alive": alive}
    if not alive:
        jobs["error"] = "no job worker is heartbeating"
    outbox: dict[str, Any] = {"status": "ok", "lag": lag, "oldest_wait_seconds": round(wait, 3)}
    if wait > OUTBOX_MAX_WAIT:
        outbox.update(status="error", error=f"an event has waited over {OUTBOX_MAX_WAIT:g}s for a subscriber")
    return {"database": {"status": "ok", "latency_ms": round(latency * 1000, 3)}, "jobs": jobs, "outbox": outbox}


async def _storage(request: web.Request) -> dict[str, Any]:
    try:
        start = time.perf_counter()
        await asyncio.wait_for(request.app[STORAGE].list("/"), CHECK_TIMEOUT)
    except Exception as e:
        return _error(e)
    return {"status": "ok", "latency_ms": round((time.perf_counter() - start) * 1000, 3)}


async def health(request: web.Request) -> web.Response:
    """The version and every component's state; 200 when all are ok, else 503 (and 503 ``draining``
    once dtr is stopping)."""
    if DRAIN.started:
        return DRAIN.answer()
    found, storage = await asyncio.gather(_database(request), _storage(request))
    components = {"database": found["database"], "storage": storage, "jobs": found["jobs"], "outbox": found["outbox"]}
    embedded = request.app[DATABASE].embedded_pid()
    if embedded is not None:
        components["embedded_postgres"] = (
            {"status": "ok"} if _alive(embedded) else {"status": "error", "error": "its process is gone"})
    ok = all(c["status"] == "ok" for c in components.values())
    return web.json_response({"status": "ok" if ok else "unavailable", "version": version(),
                              "components": components}, status=200 if ok else 503)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process (the embedded server runs as its own user under root)
        return True
    return True

"""Operations endpoints: health (``/_ping``), Prometheus ``/metrics``, and request bookkeeping."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import text

from dtr.keys import DATABASE, STORAGE

REQUESTS = Counter("dtr_http_requests_total", "HTTP requests", ["method", "area", "status"])
LATENCY = Histogram(
    "dtr_http_request_seconds", "HTTP request latency", ["method", "area"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30),
)
PING_TIMEOUT = 5.0


class InFlight:
    """Counts requests being handled, so shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no request is in flight."""
        await self._idle.wait()


IN_FLIGHT = InFlight()


def _area(path: str) -> str:
    if not path.startswith("/v2/"):
        return path.split("/")[1] if "/" in path else path
    for part in ("/manifests/", "/blobs/uploads", "/blobs/", "/tags/", "/referrers/"):
        if part in path:
            return part.strip("/").replace("/", "_")
    return "catalog" if path.endswith("_catalog") else "base"


#: Request ids: a per-process random prefix and a counter (cheaper than uuid4, unique enough to grep).
_RID_PREFIX = os.urandom(4).hex()
_rid_counter = itertools.count(1)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: (method, area, status) -> the metric children, so a request does not pay for labels().
_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def _observe(method: str, path: str, status: int, seconds: float) -> None:
    key = (method if method in _METHODS else "OTHER", _area(path), str(status))
    pair = _children.get(key)
    if pair is None:
        pair = _children[key] = (REQUESTS.labels(*key), LATENCY.labels(key[0], key[1]))
    pair[0].inc()
    pair[1].observe(seconds)


@web.middleware
async def request_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Give each request an id (``X-Request-Id``) and count it."""
    rid = request.headers.get("X-Request-Id", "")[:64] or f"{_RID_PREFIX}{next(_rid_counter):08x}"
    request["request_id"] = rid
    start = time.perf_counter()
    status = 500
    IN_FLIGHT.enter()
    try:
        resp = await handler(request)
        status = resp.status
        resp.headers["X-Request-Id"] = rid
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        IN_FLIGHT.leave()
        _observe(request.method, request.path, status, time.perf_counter() - start)


async def ping(request: web.Request) -> web.Response:
    """200 when the database and storage answer, else 503 with the reason."""
    problems: dict[str, str] = {}

    async def check_db() -> None:
        async with request.app[DATABASE].engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def check_storage() -> None:
        await request.app[STORAGE].list("/")

    for name, check in (("database", check_db), ("storage", check_storage)):
        try:
            await asyncio.wait_for(check(), PING_TIMEOUT)
        except Exception as e:
            problems[name] = f"{type(e).__name__}: {e}"[:500]
    if problems:
        return web.json_response({"status": "unavailable", "errors": problems}, status=503)
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp

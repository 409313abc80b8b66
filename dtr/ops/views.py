"""Operations endpoints: health (``/_ping``) and request bookkeeping (``/metrics``: ``dtr.ops.metrics``)."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

from dtr.db.errors import RETRY_AFTER, DatabaseUnavailable
from dtr.keys import AREA, DATABASE, REQUEST_ID, STORAGE, USER

PING_TIMEOUT = 5.0


class RequestMetrics(Collector):
    """``dtr_http_requests_total`` and ``dtr_http_request_seconds``, counted in plain Python.

    Every request is observed on the event loop (one thread, so no locks); the Prometheus
    families are built only when ``/metrics`` is read. prometheus_client's own Counter and
    Histogram, with a lock per increment, cost ~5% of a manifest GET."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0)
    _LE = (*map(repr, BUCKETS), "+Inf")

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        #: (method, area) -> counts per bucket (not cumulative; the last is +Inf), then the sum
        self._latency: dict[tuple[str, str], list[float]] = {}

    def observe(self, method: str, area: str, status: str, seconds: float) -> None:
        key = (method, area, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        h = self._latency.get((method, area))
        if h is None:
            h = self._latency[(method, area)] = [0.0] * (len(self.BUCKETS) + 2)
        h[bisect.bisect_left(self.BUCKETS, seconds)] += 1
        h[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("dtr_http_requests", "HTTP requests", labels=["method", "area", "status"])
        for key, n in self._counts.items():
            requests.add_metric(list(key), n)
        yield requests
        latency = HistogramMetricFamily("dtr_http_request_seconds", "HTTP request latency", labels=["method", "area"])
        for (method, area), h in self._latency.items():
            buckets, total = [], 0
            for le, count in zip(self._LE, h[:-1], strict=True):
                total += int(count)
                buckets.append((le, total))
            latency.add_metric([method, area], buckets, sum_value=h[-1])
        yield latency


REQUEST_METRICS = RequestMetrics()
REGISTRY.register(REQUEST_METRICS)


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


class Drain:
    """Whether dtr is draining before it stops: from then on ``/_ping`` and ``/health`` answer 503
    (``answer()``) so load balancers take this replica out of rotation, while every other request
    is still served."""

    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        self.started = True

    @staticmethod
    def answer() -> web.Response:
        """The 503 health checks get while draining."""
        return web.json_response({"status": "draining", "errors": {"dtr": "draining: this replica is stopping"}},
                                 status=503, headers={"Retry-After": str(RETRY_AFTER)})


DRAIN = Drain()


def _area(request: web.Request) -> str:
    """The area /v2 dispatch put on the request (its route table entry's), else the path's
    first segment (``v2`` for a /v2 path in no entry)."""
    try:
        return request[AREA]
    except KeyError:
        pass
    path = request.path
    return path.split("/")[1] if "/" in path else path


#: Request ids: a per-process random prefix and a counter (cheaper than uuid4, unique enough to grep).
_RID_PREFIX = os.urandom(4).hex()
_rid_counter = itertools.count(1)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_observe_request = REQUEST_METRICS.observe


@web.middleware
async def request_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Give each request an id (``X-Request-Id``) and count it."""
    rid = request.headers.get("X-Request-Id", "")[:64] or f"{_RID_PREFIX}{next(_rid_counter):08x}"
    request[REQUEST_ID] = rid
    request[USER] = ""  # set by auth when it learns who; present, so reading it raises no KeyError
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
        method = request.method
        _observe_request(method if method in _METHODS else "OTHER", _area(request), str(status),
                         time.perf_counter() - start)


async def ping(request: web.Request) -> web.Response:
    """200 when the database and storage answer, else 503 (``Retry-After``) with the reasons, as a
    person reads them ("database unavailable: connection refused, ..."); 503 ``draining`` once dtr
    is stopping (``DRAIN``)."""
    if DRAIN.started:
        return DRAIN.answer()
    problems: dict[str, str] = {}

    async def check_db() -> None:
        async with request.app[DATABASE].engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def check_storage() -> None:
        await request.app[STORAGE].list("/")

    for name, check in (("database", check_db), ("storage", check_storage)):
        try:
            await asyncio.wait_for(check(), PING_TIMEOUT)
        except DatabaseUnavailable as e:
            problems[name] = e.message
        except Exception as e:
            problems[name] = f"{type(e).__name__}: {e}"[:500]
    if problems:
        return web.json_response({"status": "unavailable", "errors": problems}, status=503,
                                 headers={"Retry-After": str(RETRY_AFTER)})
    return web.json_response({"status": "ok"})

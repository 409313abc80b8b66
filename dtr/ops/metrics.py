"""Prometheus ``/metrics``: counters bumped as things happen, figures read when scraped.

- Event counters (pushes, pulls, blob bytes, uploads in progress, logins, jobs, the manifest
  cache) count this process, in plain Python on the event loop (no lock per increment: several
  sit on the manifest GET path), in prometheus_client's default registry beside the request
  metrics (``dtr.ops.views``) and storage metrics (``dtr.storage.wrapper``).
- Scrape-time figures belong to one app (its database): stored bytes and blobs (what the usage
  job last counted), the job queue, workers' heartbeats, the outbox lag, read with cheap queries
  at most every ``SCRAPE_TTL`` seconds; the database pool, read on every scrape.

Labels are route areas, actions, statuses and outcomes only, never a repository or user name.
``setup_metrics`` routes /metrics and /health, behind ``metrics.token`` when set, on the main
address or on ``metrics.listen``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import text

from dtr.config import Config, ConfigError
from dtr.keys import CONFIG, DATABASE
from dtr.ops.health import health, outbox_lag, worker_heartbeats
from dtr.ops.views import ping, request_middleware

log = logging.getLogger("dtr.metrics")

#: Seconds the scrape-time query results are reused (scrapes stay cheap however many scrapers).
SCRAPE_TTL = 5.0
SCRAPE_TIMEOUT = 5.0


class Counter:
    """A counter family with fixed label names, counted in a dict; exported when scraped."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self._values: dict[tuple[str, ...], float] = {}
        REGISTRY.register(self)

    def inc(self, *labels: str, n: float = 1) -> None:
        self._values[labels] = self._values.get(labels, 0) + n

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in self._values.items():
            family.add_metric(labels, value)
        yield family


class Gauge(Counter):
    """A gauge with no labels that goes up and down (``inc`` and ``dec``)."""

    def dec(self) -> None:
        self.inc(n=-1)

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation, value=self._values.get((), 0))


PUSHES = Counter("dtr_registry_pushes", "Manifests stored (PUT), by reference kind (tag or digest)", ("reference",))
PULLS = Counter("dtr_registry_pulls", "Manifests served (GET), by reference kind (tag or digest)", ("reference",))
BLOB_BYTES_RECEIVED = Counter("dtr_registry_blob_bytes_received", "Blob bytes received in upload requests")
BLOB_BYTES_SENT = Counter("dtr_registry_blob_bytes_sent", "Blob bytes served by GET (redirected GETs not counted)")
UPLOADS_IN_PROGRESS = Gauge("dtr_registry_uploads_in_progress", "Upload requests receiving their body now")
MANIFEST_CACHE = Counter("dtr_manifest_cache_lookups", "Manifest cache lookups while the cache is on, by result",
                         ("result",))
TRUST_CACHE = Counter("dtr_trust_cache_lookups", "Trust file cache lookups while the cache is on, by result",
                      ("result",))
LOGIN_FAILURES = Counter("dtr_auth_login_failures", "Logins refused for bad credentials or an inactive account")
LOCKOUTS = Counter("dtr_auth_lockouts", "Logins refused unchecked: too many recent failures (429)")
JOB_FAILURES = Counter("dtr_job_failures", "Job attempts that failed (an error or a passed deadline), by action",
                       ("action",))
JOB_SECONDS = Histogram("dtr_job_duration_seconds", "Job attempts run on this process, by action", ["action"],
                        buckets=(0.1, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600))


def pulled(reference_is_digest: bool) -> None:
    PULLS.inc("digest" if reference_is_digest else "tag")


def pushed(reference_is_digest: bool) -> None:
    PUSHES.inc("digest" if reference_is_digest else "tag")


def blob_sent(request: web.Request, size: int) -> None:
    """Count a blob GET's bytes: the blob's size, or the span its Range asks for (0 if none is valid)."""
    if not request.headers.get("Range"):
        BLOB_BYTES_SENT.inc(n=size)
        return
    try:
        rng = request.http_range
    except ValueError:
        return
    start = rng.start or 0
    start = max(size + start, 0) if start < 0 else start
    stop = size if rng.stop is None else min(rng.stop, size)
    BLOB_BYTES_SENT.inc(n=max(stop - start, 0))


async def receiving(body: Awaitable[int]) -> int:
    """Await an upload request's body being stored (an upload in progress meanwhile); count its bytes."""
    UPLOADS_IN_PROGRESS.inc()
    try:
        received = await body
    finally:
        UPLOADS_IN_PROGRESS.dec()
    BLOB_BYTES_RECEIVED.inc(n=received)
    return received


def job_ended(action: str, seconds: float, failed: bool) -> None:
    """An attempt of an ``action`` job ended on this worker after ``seconds``."""
    JOB_SECONDS.labels(action).observe(seconds)
    if failed:
        JOB_FAILURES.inc(action)


# -- read when scraped ----------------------------------------------------------------------

# Sums over namespaces: a blob shared by two namespaces counts in each (as each namespace's usage does).
_USAGE = text("""
SELECT coalesce(sum(bytes) FILTER (WHERE scope = 'namespace'), 0) AS bytes,
       coalesce(sum(blobs) FILTER (WHERE scope = 'namespace'), 0) AS blobs,
       coalesce(sum(manifests) FILTER (WHERE scope = 'namespace'), 0) AS manifests,
       count(*) FILTER (WHERE scope = 'repository') AS repositories,
       coalesce(extract(epoch FROM max(updated_at)), 0) AS updated
FROM storage_usage
""")
# Jobs that will still run (or are running): worker_dead ones only while attempts remain.
_QUEUE = text("""
SELECT status, action, count(*) AS n FROM jobs
WHERE status IN ('waiting', 'running', 'cancel_request') OR (status = 'worker_dead' AND attempt < max_attempts)
GROUP BY status, action
""")


class Scrape:
    """One app's scrape-time figures, exported through its own registry (``registry``)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._families: list[Metric] = []
        self._read_at = -SCRAPE_TTL
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Re-read the database figures unless read within ``SCRAPE_TTL`` seconds."""
        async with self._lock:
            if time.monotonic() - self._read_at < SCRAPE_TTL:
                return
            try:
                async with asyncio.timeout(SCRAPE_TIMEOUT):
                    self._families = await self._read()
            except Exception as e:
                log.warning("metrics: cannot read figures from the database: %s", e)
                self._families = [GaugeMetricFamily("dtr_metrics_database_ok", "Scrape-time queries answered",
                                                    value=0)]
            self._read_at = time.monotonic()

    async def _read(self) -> list[Metric]:
        async with self.app[DATABASE].engine.connect() as conn:
            usage = (await conn.execute(_USAGE)).one()
            queue = (await conn.execute(_QUEUE)).all()
            beats = await worker_heartbeats(conn)
            lag, wait = await outbox_lag(conn)
        out: list[Metric] = [GaugeMetricFamily("dtr_metrics_database_ok", "Scrape-time queries answered", value=1)]
        for name, doc, value in (
            ("dtr_storage_bytes", "Bytes stored, summed over namespaces (usage job)", usage.bytes),
            ("dtr_storage_blobs", "Blobs stored, summed over namespaces (usage job)", usage.blobs),
            ("dtr_storage_manifests", "Manifests stored (usage job)", usage.manifests),
            ("dtr_storage_repositories", "Repositories (usage job)", usage.repositories),
            ("dtr_storage_usage_updated_timestamp_seconds", "When the usage job last counted", usage.updated),
            ("dtr_outbox_lag_events", "Registry events the slowest subscriber has still to handle", lag),
            ("dtr_outbox_oldest_wait_seconds", "Seconds the oldest unhandled registry event has waited", wait),
            ("dtr_job_workers_running", "Job workers registered as running", len(beats)),
        ):
            out.append(GaugeMetricFamily(name, doc, value=float(value)))
        depth = GaugeMetricFamily("dtr_jobs_queued", "Jobs waiting or running, by status and action",
                                  labels=["status", "action"])
        for row in queue:
            depth.add_metric([row.status, row.action], row.n)
        age = GaugeMetricFamily("dtr_job_worker_heartbeat_age_seconds", "Seconds since each running worker's "
                                "last heartbeat", labels=["worker"])
        for worker, seconds in beats:
            age.add_metric([worker], seconds)
        return [*out, depth, age]

    def collect(self) -> Iterator[Metric]:
        yield from self._families
        in_use, idle, waiting = self.app[DATABASE].pool_status()
        yield GaugeMetricFamily("dtr_db_pool_in_use", "Database connections checked out", value=in_use)
        yield GaugeMetricFamily("dtr_db_pool_idle", "Database connections idle in the pool", value=idle)
        yield GaugeMetricFamily("dtr_db_pool_waiting", "Tasks waiting for a database connection", value=waiting)


# -- serving ------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _token(cfg: Config) -> bytes | None:
    m = cfg.metrics
    if m.token_file is None:
        return None if m.token is None else m.token.strip().encode()
    try:
        token = Path(m.token_file).read_text().strip()
    except OSError as e:
        raise ConfigError(f"metrics.token_file: cannot read {m.token_file}: {e.strerror}") from None
    if not token:
        raise ConfigError(f"metrics.token_file: {m.token_file} is empty")
    return token.encode()


def _guarded(handler: Handler, token: bytes | None) -> Handler:
    """``handler`` behind ``Authorization: Bearer <token>`` (compared in constant time); as is without a token."""
    if token is None:
        return handler

    async def guarded(request: web.Request) -> web.StreamResponse:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"),
                                                                  token):
            raise web.HTTPUnauthorized(text="a bearer token is required\n",
                                       headers={"WWW-Authenticate": 'Bearer realm="dtr metrics"'})
        return await handler(request)

    return guarded


def setup_metrics(app: web.Application) -> None:
    """Route ``/metrics`` and ``/health`` (behind ``metrics.token`` when set): on the main address,
    or, with ``metrics.listen``, on a listener of their own (with ``/_ping``) started with the app."""
    cfg = app[CONFIG]
    token = _token(cfg)
    scrape = Scrape(app)

    async def metrics(request: web.Request) -> web.Response:
        await scrape.refresh()
        resp = web.Response(body=generate_latest(REGISTRY) + generate_latest(scrape.registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    routes = [web.get("/metrics", _guarded(metrics, token)), web.get("/health", _guarded(health, token))]
    if cfg.metrics.listen is None:
        app.add_routes(routes)
        return

    async def listening(app: web.Application) -> AsyncIterator[None]:
        # The listener's app sees the main app's resources (ping and health read them from request.app).
        side = web.Application(middlewares=[request_middleware])
        for key, value in app.items():
            side[key] = value
        side.add_routes([*routes, web.get("/_ping", ping)])
        runner = web.AppRunner(side, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, cfg.metrics.listen_host, cfg.metrics.listen_port).start()
            log.info("metrics listening", extra={"addr": cfg.metrics.listen})
            yield
        finally:
            await runner.cleanup()

    app.cleanup_ctx.append(listening)

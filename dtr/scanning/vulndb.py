"""The vulnerability database: its feeds, their online update, and reading it.

Feeds (``configured_feeds``): ``osv:<Ecosystem>`` (OSV's ``all.zip``), ``debian`` (the security
tracker's JSON), ``alpine:<branch>:<repo>`` (secdb ``main``/``community``), ``nvd`` (CVSS and
summaries). ``update`` fetches each with a conditional GET (ETag / Last-Modified), spools the body
to a temporary file (memory-capped) and imports it (``vulnimport``: one transaction per feed). A
304, or a body with the checksum already imported, changes only ``checked_at``; a failure changes
only ``last_error``/``last_error_at``. ``status`` and ``advisories_for`` read the database;
offline bundles are in ``bundles``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Literal

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.config.schema import ScanningConfig
from dtr.scanning.bundles import vuln_from_json, vuln_json
from dtr.scanning.feeds import FeedError, alpine, debian, nvd, osv, parse_time
from dtr.scanning.types import Advisory
from dtr.scanning.vulnimport import FeedResult, finish_feed, import_advisories, import_vulnerabilities, lock_feed

FeedKind = Literal["osv", "debian", "alpine", "nvd"]

#: Bytes of a download kept in memory before it spills to a temporary file.
SPOOL_MEMORY = 16 << 20
#: The largest download accepted (a bigger body is a failure, not a full disk).
DOWNLOAD_MAX = 4 << 30


def _quiet(_: str) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class Feed:
    """A configured feed: its name, where it is fetched from and its format."""

    name: str
    url: str
    kind: FeedKind


@dataclasses.dataclass(frozen=True)
class FeedState:
    name: str
    url: str
    version: int
    records: int
    updated_at: dt.datetime | None
    checked_at: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None

    @property
    def failed(self) -> bool:
        """Whether the feed's last attempt failed (an error after the last good check)."""
        return self.last_error_at is not None and (self.checked_at is None or self.last_error_at > self.checked_at)


@dataclasses.dataclass(frozen=True)
class DatabaseStatus:
    """The vulnerability database's state: ``version`` is the sum of the feeds' versions (it grows
    with every import that changed something), ``updated_at`` the newest import."""

    version: int
    updated_at: dt.datetime | None
    checked_at: dt.datetime | None
    #: Whether any feed's last attempt failed, and the newest such failure (feed, error, time).
    failed: bool
    failed_feed: str | None
    last_error: str | None
    last_error_at: dt.datetime | None
    feeds: list[FeedState]


def configured_feeds(cfg: ScanningConfig) -> list[Feed]:
    """The feeds ``cfg`` turns on, in update order (NVD last: its CVSS applies to the others' rows)."""
    f = cfg.feeds
    out: list[Feed] = []
    if f.osv:
        base = f.osv.rstrip("/")
        out += [Feed(f"osv:{eco}", f"{base}/{urllib.parse.quote(eco)}/all.zip", "osv") for eco in f.osv_ecosystems]
    if f.debian:
        out.append(Feed("debian", f.debian, "debian"))
    if f.alpine:
        out += [Feed(f"alpine:{branch}:{repo}", f"{f.alpine.rstrip('/')}/{branch}/{repo}.json", "alpine")
                for branch in f.alpine_branches for repo in ("main", "community")]
    if f.nvd:
        out.append(Feed("nvd", f.nvd, "nvd"))
    return out


def select_feeds(available: Sequence[Feed], names: Sequence[str] | None) -> list[Feed]:
    """The feeds ``names`` select: a feed's name, or a prefix of names ending at a ``:``
    (``osv``, ``alpine:v3.19``). ValueError for a name that selects nothing."""
    if names is None:
        return list(available)
    chosen: list[Feed] = []
    for name in names:
        hits = [f for f in available if f.name == name or f.name.startswith(name + ":")]
        if not hits:
            raise ValueError(f"no configured feed is named {name!r} (feeds: {', '.join(f.name for f in available)})")
        chosen += [f for f in hits if f not in chosen]
    return chosen


# --- downloads -------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Download:
    body: IO[bytes]
    sha256: str
    size: int
    etag: str | None
    last_modified: str | None


async def _download(session: aiohttp.ClientSession, url: str, *, etag: str | None, last_modified: str | None,
                    time_limit: float, body: IO[bytes]) -> _Download | None:
    """GET ``url`` into ``body`` (None on 304 Not Modified); FeedError for any other failure."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=time_limit)) as resp:
            if resp.status == 304:
                return None
            if resp.status != 200:
                raise FeedError(f"{url}: HTTP {resp.status} {resp.reason or ''}".rstrip())
            digest = hashlib.sha256()
            size = 0
            try:
                async for chunk in resp.content.iter_chunked(1 << 20):
                    size += len(chunk)
                    if size > DOWNLOAD_MAX:
                        raise FeedError(f"{url}: over {DOWNLOAD_MAX >> 20} MiB")
                    digest.update(chunk)
                    body.write(chunk)
            except aiohttp.ClientError as e:
                raise FeedError(f"{url}: the download broke off after {size} bytes: {e}") from None
            if resp.content_length is not None and size != resp.content_length:
                raise FeedError(f"{url}: truncated: {size} of {resp.content_length} bytes")
            body.seek(0)
            return _Download(body, digest.hexdigest(), size, resp.headers.get("ETag"),
                             resp.headers.get("Last-Modified"))
    except aiohttp.ClientError as e:
        raise FeedError(f"{url}: {e}") from None
    except TimeoutError:
        raise FeedError(f"{url}: no complete answer within {time_limit:g} s") from None


def _parser(feed: Feed, body: IO[bytes]) -> Callable[[], Iterator[Advisory]]:
    if feed.kind == "osv":
        return lambda: osv.parse_zip(body, name=feed.name)
    if feed.kind == "debian":
        return lambda: debian.parse(body, name=feed.name)
    return lambda: alpine.parse(body, name=feed.name)


async def _record_failure(engine: AsyncEngine, feed: Feed, error: str) -> FeedResult:
    async with engine.begin() as conn:
        version = (await conn.execute(text("""
            INSERT INTO vuln_feeds AS f (name, url, last_error, last_error_at) VALUES (:n, :u, :e, now())
            ON CONFLICT (name) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at
            RETURNING f.version"""), {"n": feed.name, "u": feed.url, "e": error})).scalar_one()
    return FeedResult(feed.name, "failed", version, error=error)


async def _update_download_feed(engine: AsyncEngine, session: aiohttp.ClientSession, feed: Feed, time_limit: float,
                                log: Callable[[str], None]) -> FeedResult:
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT version, etag, last_modified, checksum, records FROM vuln_feeds "
                                       "WHERE name = :n"), {"n": feed.name})).one_or_none()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as body:
        got = await _download(session, feed.url, etag=row.etag if row else None,
                              last_modified=row.last_modified if row else None, time_limit=time_limit, body=body)
        if got is None or (row is not None and got.sha256 == row.checksum):
            headers = {} if got is None else {"etag": got.etag, "last_modified": got.last_modified}
            async with engine.begin() as conn:
                await lock_feed(conn, feed.name, feed.url)
                version = await finish_feed(conn, feed.name, changed=False, records=row.records if row else 0,
                                             checksum=None, url=feed.url, headers=headers)
            log(f"{feed.name}: {'not modified' if got is None else 'same content'} (version {version})")
            return FeedResult(feed.name, "unchanged", version, row.records if row else 0)
        log(f"{feed.name}: downloaded {got.size} bytes; importing")
        result = await import_advisories(engine, feed.name, _parser(feed, body), checksum=got.sha256, url=feed.url,
                                         headers={"etag": got.etag, "last_modified": got.last_modified})
    log(f"{feed.name}: {result.status}, version {result.version}, {result.records} advisories, "
        f"{result.changed} packages changed")
    return result


async def _update_nvd(engine: AsyncEngine, session: aiohttp.ClientSession, feed: Feed, cfg: ScanningConfig,
                      page_delay: float | None, log: Callable[[str], None]) -> FeedResult:
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT version, last_modified FROM vuln_feeds WHERE name = :n"),
                                  {"n": feed.name})).one_or_none()
    since = parse_time(row.last_modified) if row is not None and row.version > 0 else None
    until = dt.datetime.now(dt.UTC)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, mode="w+t", encoding="utf-8") as spool:
        count = 0
        async for infos in nvd.fetch(session, feed.url, api_key=cfg.feeds.nvd_api_key, since=since, until=until,
                                     page_delay=page_delay, time_limit=cfg.feeds.timeout, log=log):
            for info in infos:
                spool.write(json.dumps(vuln_json(info)) + "\n")
            count += len(infos)
        log(f"nvd: {count} CVEs {'in all' if since is None else f'modified since {since.isoformat()}'}")
        spool.seek(0)
        return await import_vulnerabilities(
            engine, feed.name, lambda: (vuln_from_json(json.loads(line)) for line in spool), url=feed.url,
            headers={"last_modified": until.isoformat()})


async def update(engine: AsyncEngine, cfg: ScanningConfig, *, log: Callable[[str], None] = _quiet,
                 feeds: Sequence[str] | None = None, nvd_page_delay: float | None = None) -> list[FeedResult]:
    """Update the configured feeds (or those ``feeds`` selects, see ``select_feeds``), one after the
    other; a feed's failure is recorded and reported in its result, never raised.
    ``nvd_page_delay`` overrides the pause between NVD requests (default: per NVD's rate limits)."""
    chosen = select_feeds(configured_feeds(cfg), feeds)
    results: list[FeedResult] = []
    async with aiohttp.ClientSession(headers={"User-Agent": "dtr-vulndb"}) as session:
        for feed in chosen:
            try:
                if feed.kind == "nvd":
                    result = await _update_nvd(engine, session, feed, cfg, nvd_page_delay, log)
                else:
                    result = await _update_download_feed(engine, session, feed, cfg.feeds.timeout, log)
            except Exception as e:  # any failure of one feed is that feed's error, never the others'
                error = str(e) if isinstance(e, FeedError) else f"{type(e).__name__}: {e}"
                error = error if error.startswith(f"{feed.name}: ") else f"{feed.name}: {error}"
                log(f"{feed.name}: update failed: {error}")
                result = await _record_failure(engine, feed, error)
            results.append(result)
    return results


# --- reading ---------------------------------------------------------------------------------------

async def status(engine: AsyncEngine) -> DatabaseStatus:
    """The feeds' state, for ``GET /api/v0/imagescan/status`` and ``dtr vulndb status``."""
    async with engine.connect() as conn:
        rows = (await conn.execute(text("""SELECT name, url, version, records, updated_at, checked_at, last_error,
                                           last_error_at FROM vuln_feeds ORDER BY name"""))).all()
    states = [FeedState(r.name, r.url, r.version, r.records, r.updated_at, r.checked_at, r.last_error,
                        r.last_error_at) for r in rows]
    failing = sorted((s for s in states if s.failed), key=lambda s: s.last_error_at or dt.datetime.min)
    newest = failing[-1] if failing else None
    return DatabaseStatus(
        version=sum(s.version for s in states),
        updated_at=max((s.updated_at for s in states if s.updated_at), default=None),
        checked_at=max((s.checked_at for s in states if s.checked_at), default=None),
        failed=newest is not None, failed_feed=newest.name if newest else None,
        last_error=newest.last_error if newest else None,
        last_error_at=newest.last_error_at if newest else None, feeds=states)


async def advisories_for(conn: AsyncConnection, keys: Iterable[tuple[str, str]]
                         ) -> dict[tuple[str, str], list[Advisory]]:
    """Every feed's advisories for each (namespace, package) key; a key without any is absent. An
    advisory without its own CVSS takes its vulnerability's (NVD's), else an alias's; the summary
    and aliases come from ``vulnerabilities``."""
    wanted = list(dict.fromkeys(keys))
    out: dict[tuple[str, str], list[Advisory]] = {}
    if not wanted:
        return out
    result = await conn.execute(text("""
        SELECT a.vuln_id, a.namespace, a.package, a.state, a.introduced, a.fixed, a.last_affected, a.severity,
               coalesce(a.cvss_score, v.cvss_score, al.cvss_score) AS cvss_score,
               CASE WHEN a.cvss_score IS NOT NULL OR (a.cvss_vector <> '' AND v.cvss_score IS NULL
                                                      AND al.cvss_score IS NULL) THEN a.cvss_vector
                    WHEN v.cvss_score IS NOT NULL THEN v.cvss_vector
                    WHEN al.cvss_score IS NOT NULL THEN al.cvss_vector
                    ELSE coalesce(nullif(v.cvss_vector, ''), a.cvss_vector) END AS cvss_vector,
               coalesce(nullif(v.summary, ''), al.summary, '') AS summary,
               coalesce(v.aliases, '{}') AS aliases
        FROM unnest(CAST(:ns AS text[]), CAST(:pkg AS text[])) AS k(namespace, package)
        JOIN vuln_advisories a ON a.namespace = k.namespace AND a.package = k.package
        LEFT JOIN vulnerabilities v ON v.id = a.vuln_id
        LEFT JOIN LATERAL (
          SELECT w.cvss_score, w.cvss_vector, nullif(w.summary, '') AS summary FROM vulnerabilities w
          WHERE v.aliases <> '{}' AND w.id = ANY(v.aliases) AND (v.cvss_score IS NULL OR v.summary = '')
          ORDER BY w.cvss_score IS NULL, w.id LIMIT 1) al ON true
        ORDER BY a.namespace, a.package, a.vuln_id, a.id"""),
        {"ns": [k[0] for k in wanted], "pkg": [k[1] for k in wanted]})
    for r in result:
        out.setdefault((r.namespace, r.package), []).append(Advisory(
            vuln_id=r.vuln_id, namespace=r.namespace, package=r.package, state=r.state, introduced=r.introduced,
            fixed=r.fixed, last_affected=r.last_affected, severity=r.severity, cvss_score=r.cvss_score,
            cvss_vector=r.cvss_vector, summary=r.summary, aliases=tuple(r.aliases)))
    return out

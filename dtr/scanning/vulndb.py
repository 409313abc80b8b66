"""The vulnerability database: feeds downloaded, imported as versions, diffed, and bundled offline.

Feeds (``configured_feeds``): ``osv:<Ecosystem>`` (OSV's ``all.zip``), ``debian`` (the security
tracker's JSON), ``alpine:<branch>:<repo>`` (secdb ``main``/``community``), ``nvd`` (CVSS and
summaries). ``update`` fetches each with a conditional GET (ETag / Last-Modified), spools the body
to a temporary file (memory-capped), parses it in a worker thread and COPYs the rows into a
temporary table; then, in ONE transaction per feed, set-based SQL diffs the new rows against the
feed's current ones, replaces the rows of every changed (namespace, package), merges what the feed
says about each vulnerability into ``vulnerabilities`` and writes one ``vuln_changes`` row per
changed key (including keys whose CVSS, taken from ``vulnerabilities``, changed). A feed's
``version`` counts imports that changed something. A 304, or a body with the checksum already
imported, changes only ``checked_at``; a failure changes only ``last_error``/``last_error_at``.

Offline bundles (``export_bundle``/``import_bundle``): a tar of ``manifest.json`` (each feed's
name, version, record count and the sha256 of its gzip JSON-lines records file, plus the
``vulnerabilities`` table as one more file), the records files, and ``manifest.sig`` (Ed25519 over
``manifest.json``; key id = sha256 of the raw public key). Import verifies the signature against
the trusted keys and every checksum before changing anything, then imports feed by feed as above.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
import threading
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

import aiohttp
import asyncpg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.config.schema import ScanningConfig
from dtr.scanning.feeds import FeedError, VulnInfo, alpine, debian, nvd, osv, parse_time
from dtr.scanning.types import Advisory

T = TypeVar("T")
FeedKind = Literal["osv", "debian", "alpine", "nvd"]
Status = Literal["updated", "unchanged", "failed"]

#: Bytes of a download kept in memory before it spills to a temporary file.
SPOOL_MEMORY = 16 << 20
#: The largest download accepted (a bigger body is a failure, not a full disk).
DOWNLOAD_MAX = 4 << 30
#: Rows per batch handed from the parsing thread to COPY.
BATCH = 5000
STATES = frozenset({"fixed", "not_fixed", "will_not_fix", "not_affected"})
BUNDLE_FORMAT = "dtr-vulndb-bundle"
BUNDLE_VERSION = 1
#: The most bytes of ``manifest.json`` / ``manifest.sig`` read from a bundle.
MANIFEST_MAX = 16 << 20

_ADVISORY_COLUMNS = ("vuln_id", "namespace", "package", "state", "introduced", "fixed", "last_affected",
                     "severity", "cvss_score", "cvss_vector")
_COLS = ", ".join(_ADVISORY_COLUMNS)


def _quiet(_: str) -> None:
    pass


class BundleError(ValueError):
    """An offline bundle that cannot be imported (unsigned by a trusted key, altered, truncated)."""


@dataclasses.dataclass(frozen=True)
class Feed:
    """A configured feed: its name, where it is fetched from and its format."""

    name: str
    url: str
    kind: FeedKind


@dataclasses.dataclass(frozen=True)
class FeedResult:
    """What one feed's update (or bundle import) did. ``version`` is the feed's version after it,
    ``records`` its advisory rows (NVD: CVEs received), ``changed`` the (namespace, package) keys
    written to ``vuln_changes``."""

    name: str
    status: Status
    version: int
    records: int = 0
    changed: int = 0
    error: str = ""


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
    #: Whether any feed's last attempt failed, and the newest such failure.
    failed: bool
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


# --- parsing in a thread, rows to COPY -------------------------------------------------------------

async def _thread_batches(produce: Callable[[], Iterable[T]], batch: int = BATCH) -> AsyncGenerator[list[T]]:
    """``produce()``'s items in lists of ``batch``, produced in a worker thread (parsing is CPU-bound)
    with at most a few batches in flight; the thread's exception is raised here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[T] | BaseException | None] = asyncio.Queue(maxsize=4)
    stop = threading.Event()

    def put(item: list[T] | BaseException | None) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def run() -> None:
        try:
            buf: list[T] = []
            for item in produce():
                if stop.is_set():
                    return
                buf.append(item)
                if len(buf) >= batch:
                    put(buf)
                    buf = []
            put(buf)
            put(None)
        except BaseException as e:  # handed to the consumer, which re-raises it
            if not stop.is_set():
                put(e)

    worker = loop.run_in_executor(None, run)
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not worker.done():  # unblock a thread waiting for room in the queue
            while not queue.empty():
                queue.get_nowait()
            await asyncio.wait([worker], timeout=0.05)
        with contextlib.suppress(BaseException):
            worker.result()


def _advisory_rows(advisories: Iterable[Advisory]) -> Iterator[tuple[Any, ...]]:
    """Advisories as temp-table rows; a vulnerability's summary/aliases ride on the first row of each
    run of rows with the same vulnerability (NULL on the rest), so they are sent about once."""
    last: tuple[Any, ...] | None = None
    for a in advisories:
        if a.state not in STATES or not a.package or len(a.vuln_id) > 128 or len(a.namespace) > 64:
            continue
        info = (a.vuln_id, a.summary, a.aliases, a.cvss_score, a.cvss_vector)
        first = info != last
        last = info
        yield (a.vuln_id, a.namespace, a.package, a.state, a.introduced, a.fixed, a.last_affected, a.severity[:16],
               a.cvss_score, a.cvss_vector, a.summary if first else None, list(a.aliases) if first else None)


def _vuln_rows(infos: Iterable[VulnInfo]) -> Iterator[tuple[Any, ...]]:
    for v in infos:
        if len(v.id) <= 128:
            yield (v.id, v.summary, v.cvss_score, v.cvss_vector, list(v.aliases), v.published_at, v.modified_at)


# --- the import: one transaction per feed ------------------------------------------------------------

async def _driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under ``conn`` (for COPY), inside ``conn``'s transaction (begun on the
    server first: SQLAlchemy's asyncpg adapter starts it lazily, at its first statement)."""
    await conn.execute(text("SELECT 1"))
    raw = await conn.get_raw_connection()
    return raw.driver_connection  # type: ignore[return-value]


_CREATE_TMP_ADV = """
CREATE TEMP TABLE tmp_adv (vuln_id text, namespace text, package text, state text, introduced text,
  fixed text, last_affected text, severity text, cvss_score float8, cvss_vector text, summary text,
  aliases text[]) ON COMMIT DROP"""
_CREATE_TMP_VULN_RAW = """
CREATE TEMP TABLE tmp_vuln_raw (id text, summary text, cvss_score float8, cvss_vector text, aliases text[],
  published_at timestamptz, modified_at timestamptz) ON COMMIT DROP"""
#: Changed keys get rows; ``tmp_cvss`` lists vulnerabilities whose CVSS the merge changed.
_CREATE_TMP_KEYS = "CREATE TEMP TABLE tmp_keys (namespace text, package text) ON COMMIT DROP"

# What a feed says about vulnerabilities, merged: advisory feeds only fill gaps (a summary, a CVSS
# where there is none) and add aliases; NVD and bundles are authoritative for what they carry.
_MERGE_FILL = """
WITH todo AS (
  SELECT t.* FROM tmp_vuln t LEFT JOIN vulnerabilities v ON v.id = t.id
  WHERE v.id IS NULL OR (v.summary = '' AND t.summary <> '') OR (v.cvss_score IS NULL AND t.cvss_score IS NOT NULL)
     OR (v.cvss_vector = '' AND t.cvss_vector <> '') OR NOT v.aliases @> t.aliases
), merged AS (
  INSERT INTO vulnerabilities AS v (id, summary, cvss_score, cvss_vector, aliases)
  SELECT id, summary, cvss_score, cvss_vector, aliases FROM todo
  ON CONFLICT (id) DO UPDATE SET
    summary = CASE WHEN v.summary = '' THEN excluded.summary ELSE v.summary END,
    cvss_score = coalesce(v.cvss_score, excluded.cvss_score),
    cvss_vector = CASE WHEN v.cvss_score IS NULL AND excluded.cvss_score IS NOT NULL THEN excluded.cvss_vector
                       WHEN v.cvss_vector = '' THEN excluded.cvss_vector ELSE v.cvss_vector END,
    aliases = ARRAY(SELECT DISTINCT x FROM unnest(v.aliases || excluded.aliases) x ORDER BY x)
  RETURNING v.id
)
SELECT count(*) FROM merged"""
_MERGE_PREFER = """
WITH todo AS (
  SELECT t.* FROM tmp_vuln t LEFT JOIN vulnerabilities v ON v.id = t.id
  WHERE v.id IS NULL OR (t.summary <> '' AND t.summary <> v.summary)
     OR (t.cvss_score IS NOT NULL AND t.cvss_score IS DISTINCT FROM v.cvss_score)
     OR (t.cvss_vector <> '' AND t.cvss_vector <> v.cvss_vector) OR NOT v.aliases @> t.aliases
     OR (t.published_at IS NOT NULL AND t.published_at IS DISTINCT FROM v.published_at)
     OR (t.modified_at IS NOT NULL AND t.modified_at IS DISTINCT FROM v.modified_at)
), merged AS (
  INSERT INTO vulnerabilities AS v (id, summary, cvss_score, cvss_vector, aliases, published_at, modified_at)
  SELECT id, summary, cvss_score, cvss_vector, aliases, published_at, modified_at FROM todo
  ON CONFLICT (id) DO UPDATE SET
    summary = CASE WHEN excluded.summary <> '' THEN excluded.summary ELSE v.summary END,
    cvss_score = coalesce(excluded.cvss_score, v.cvss_score),
    cvss_vector = CASE WHEN excluded.cvss_score IS NOT NULL OR v.cvss_score IS NULL AND excluded.cvss_vector <> ''
                       THEN excluded.cvss_vector ELSE v.cvss_vector END,
    aliases = ARRAY(SELECT DISTINCT x FROM unnest(v.aliases || excluded.aliases) x ORDER BY x),
    published_at = coalesce(excluded.published_at, v.published_at),
    modified_at = coalesce(excluded.modified_at, v.modified_at)
  RETURNING v.id
)
SELECT count(*) FROM merged"""
# Before the merge: the vulnerabilities whose CVSS score the merge will change.
_CVSS_CHANGES = {
    "fill": """CREATE TEMP TABLE tmp_cvss ON COMMIT DROP AS
      SELECT t.id FROM tmp_vuln t LEFT JOIN vulnerabilities v ON v.id = t.id
      WHERE v.cvss_score IS NULL AND t.cvss_score IS NOT NULL""",
    "prefer": """CREATE TEMP TABLE tmp_cvss ON COMMIT DROP AS
      SELECT t.id FROM tmp_vuln t LEFT JOIN vulnerabilities v ON v.id = t.id
      WHERE t.cvss_score IS NOT NULL AND t.cvss_score IS DISTINCT FROM v.cvss_score""",
}
# Keys whose advisories take their CVSS from a changed vulnerability (their own, or an alias's).
_CVSS_KEYS = """
INSERT INTO tmp_keys (namespace, package)
SELECT a.namespace, a.package FROM vuln_advisories a JOIN tmp_cvss c ON c.id = a.vuln_id WHERE a.cvss_score IS NULL
UNION
SELECT a.namespace, a.package FROM vuln_advisories a JOIN vulnerabilities v ON v.id = a.vuln_id
  CROSS JOIN LATERAL unnest(v.aliases) AS al(alias) JOIN tmp_cvss c ON c.id = al.alias
  WHERE a.cvss_score IS NULL
EXCEPT
SELECT namespace, package FROM tmp_keys"""


async def _merge_vulns(apg: asyncpg.Connection, mode: Literal["fill", "prefer"]) -> int:
    """Merge ``tmp_vuln`` into ``vulnerabilities``, adding keys whose CVSS changed to ``tmp_keys``;
    the number of vulnerabilities rows written."""
    await apg.execute(_CVSS_CHANGES[mode])
    written: int = await apg.fetchval(_MERGE_FILL if mode == "fill" else _MERGE_PREFER)
    await apg.execute(_CVSS_KEYS)
    return written


async def _lock_feed(conn: AsyncConnection, name: str, url: str | None) -> tuple[int, str | None]:
    """Make sure the feed's row exists and lock it; its (version, checksum)."""
    await conn.execute(text("INSERT INTO vuln_feeds (name, url) VALUES (:n, :u) ON CONFLICT (name) DO NOTHING"),
                       {"n": name, "u": url or ""})
    row = (await conn.execute(text("SELECT version, checksum FROM vuln_feeds WHERE name = :n FOR UPDATE"),
                              {"n": name})).one()
    return row.version, row.checksum


async def _finish_feed(conn: AsyncConnection, name: str, *, changed: bool, records: int, checksum: str | None,
                       url: str | None = None, headers: dict[str, str | None] | None = None) -> int:
    """Record a good import (or check) of the feed; its version after it."""
    sets = ["checked_at = now()", "checksum = coalesce(:checksum, checksum)", "records = :records"]
    params: dict[str, Any] = {"n": name, "checksum": checksum, "records": records}
    if changed:
        sets += ["version = version + 1", "updated_at = now()"]
    if url is not None:
        sets.append("url = :url")
        params["url"] = url
    for column, value in (headers or {}).items():
        sets.append(f"{column} = :{column}")
        params[column] = value
    version: int = (await conn.execute(text(f"UPDATE vuln_feeds SET {', '.join(sets)} WHERE name = :n "
                                            "RETURNING version"), params)).scalar_one()
    return version


async def _write_changes(apg: asyncpg.Connection) -> int:
    result: str = await apg.execute("INSERT INTO vuln_changes (namespace, package) "
                                    "SELECT DISTINCT namespace, package FROM tmp_keys")
    return int(result.rsplit(" ", 1)[1])


async def import_advisories(engine: AsyncEngine, name: str, produce: Callable[[], Iterable[Advisory]], *,
                            checksum: str | None, url: str | None = None,
                            headers: dict[str, str | None] | None = None,
                            progress: Callable[[int], None] | None = None) -> FeedResult:
    """Replace feed ``name``'s advisories with ``produce()``'s (run in a worker thread), in one
    transaction: the diff against the current rows decides which (namespace, package) keys are
    rewritten and written to ``vuln_changes``. ``checksum`` equal to the stored one imports nothing.
    Errors (``FeedError`` from the parser, database errors) propagate with nothing changed."""
    async with engine.begin() as conn:
        version, stored = await _lock_feed(conn, name, url)
        if checksum is not None and checksum == stored:
            records = (await conn.execute(text("SELECT records FROM vuln_feeds WHERE name = :n"), {"n": name})
                       ).scalar_one()
            version = await _finish_feed(conn, name, changed=False, records=records, checksum=None, url=url,
                                         headers=headers)
            return FeedResult(name, "unchanged", version, records)
        apg = await _driver(conn)
        await apg.execute(_CREATE_TMP_ADV)
        await apg.execute(_CREATE_TMP_KEYS)
        sent = 0

        async def rows() -> AsyncGenerator[tuple[Any, ...]]:
            nonlocal sent
            async with contextlib.aclosing(_thread_batches(lambda: _advisory_rows(produce()))) as batches:
                async for batch in batches:
                    for row in batch:
                        yield row
                    sent += len(batch)
                    if progress is not None:
                        progress(sent)

        async with contextlib.aclosing(rows()) as records:
            await apg.copy_records_to_table("tmp_adv", records=records)
        await apg.execute(f"CREATE TEMP TABLE tmp_new ON COMMIT DROP AS SELECT DISTINCT {_COLS} FROM tmp_adv")
        records = await apg.fetchval("SELECT count(*) FROM tmp_new")
        await apg.execute(f"""
            INSERT INTO tmp_keys (namespace, package)
            SELECT DISTINCT namespace, package FROM (
              (SELECT {_COLS} FROM tmp_new EXCEPT SELECT {_COLS} FROM vuln_advisories WHERE feed = $1)
              UNION ALL
              (SELECT {_COLS} FROM vuln_advisories WHERE feed = $1 EXCEPT SELECT {_COLS} FROM tmp_new)
            ) d""", name)
        await apg.execute("ANALYZE tmp_keys")
        await apg.execute("""DELETE FROM vuln_advisories a USING tmp_keys k
                             WHERE a.feed = $1 AND a.namespace = k.namespace AND a.package = k.package""", name)
        await apg.execute(f"""INSERT INTO vuln_advisories (feed, {_COLS})
                              SELECT $1, {', '.join('n.' + c for c in _ADVISORY_COLUMNS)}
                              FROM tmp_new n JOIN tmp_keys k USING (namespace, package)""", name)
        await apg.execute("""
            CREATE TEMP TABLE tmp_vuln ON COMMIT DROP AS
            SELECT t.vuln_id AS id, t.summary, t.cvss_score, t.cvss_vector,
                   coalesce(al.aliases, '{}') AS aliases
            FROM (SELECT vuln_id, coalesce(max(summary), '') AS summary, max(cvss_score) AS cvss_score,
                         coalesce((array_agg(cvss_vector ORDER BY cvss_score DESC NULLS LAST, cvss_vector)
                                   FILTER (WHERE cvss_vector <> ''))[1], '') AS cvss_vector
                  FROM tmp_adv WHERE summary IS NOT NULL GROUP BY vuln_id) t
            LEFT JOIN (SELECT vuln_id, array_agg(DISTINCT alias ORDER BY alias) AS aliases
                       FROM tmp_adv CROSS JOIN LATERAL unnest(aliases) AS alias
                       WHERE aliases IS NOT NULL GROUP BY vuln_id) al USING (vuln_id)""")
        written = await _merge_vulns(apg, "fill")
        changed = await _write_changes(apg)
        version = await _finish_feed(conn, name, changed=bool(changed or written), records=records,
                                     checksum=checksum, url=url, headers=headers)
        return FeedResult(name, "updated" if changed or written else "unchanged", version, records, changed)


async def import_vulnerabilities(engine: AsyncEngine, name: str | None, produce: Callable[[], Iterable[VulnInfo]],
                                 *, url: str | None = None, headers: dict[str, str | None] | None = None,
                                 progress: Callable[[int], None] | None = None) -> FeedResult:
    """Merge ``produce()``'s vulnerabilities (NVD's, or a bundle's table) into ``vulnerabilities`` in
    one transaction; keys whose advisories take a CVSS that changed go to ``vuln_changes``. Feed row
    ``name`` (none for a bundle's table) records the import; its ``records`` counts the
    vulnerabilities known from NVD or bundles. The result's ``records`` counts those received."""
    async with engine.begin() as conn:
        if name is not None:
            await _lock_feed(conn, name, url)
        apg = await _driver(conn)
        await apg.execute(_CREATE_TMP_VULN_RAW)
        await apg.execute(_CREATE_TMP_KEYS)
        sent = 0

        async def rows() -> AsyncGenerator[tuple[Any, ...]]:
            nonlocal sent
            async with contextlib.aclosing(_thread_batches(lambda: _vuln_rows(produce()))) as batches:
                async for batch in batches:
                    for row in batch:
                        yield row
                    sent += len(batch)
                    if progress is not None:
                        progress(sent)

        async with contextlib.aclosing(rows()) as records:
            await apg.copy_records_to_table("tmp_vuln_raw", records=records)
        await apg.execute("""CREATE TEMP TABLE tmp_vuln ON COMMIT DROP AS
                             SELECT DISTINCT ON (id) * FROM tmp_vuln_raw ORDER BY id, modified_at DESC NULLS LAST""")
        written = await _merge_vulns(apg, "prefer")
        changed = await _write_changes(apg)
        version = 0
        if name is not None:
            known = await apg.fetchval("SELECT count(*) FROM vulnerabilities WHERE modified_at IS NOT NULL")
            version = await _finish_feed(conn, name, changed=bool(written), records=known, checksum=None,
                                         url=url, headers=headers)
        return FeedResult(name or "vulnerabilities", "updated" if written else "unchanged", version, sent, changed)


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
                await _lock_feed(conn, feed.name, feed.url)
                version = await _finish_feed(conn, feed.name, changed=False, records=row.records if row else 0,
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
                spool.write(json.dumps(_vuln_json(info)) + "\n")
            count += len(infos)
        log(f"nvd: {count} CVEs {'in all' if since is None else f'modified since {since.isoformat()}'}")
        spool.seek(0)
        return await import_vulnerabilities(
            engine, feed.name, lambda: (_vuln_from_json(json.loads(line)) for line in spool), url=feed.url,
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
        failed=newest is not None, last_error=newest.last_error if newest else None,
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


# --- offline bundles ---------------------------------------------------------------------------------

def key_id(public_key: Ed25519PublicKey) -> str:
    """A public key's id: the sha256 (hex) of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_signing_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The Ed25519 key in PEM file ``path``, made (mode 0600, its directory 0700) if absent and ``create``."""
    if not path.exists() and create:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key
    return private_key_from_pem(path.read_bytes(), name=str(path))


def signing_key_path(data_dir: Path, cfg: ScanningConfig) -> Path:
    """Where ``dtr vulndb export``'s key is: ``bundle_signing_key``, else ``data_dir/scanning/bundle-signing.pem``
    (only the latter is made when missing: pass ``create=cfg.bundle_signing_key is None``)."""
    return Path(cfg.bundle_signing_key) if cfg.bundle_signing_key else data_dir / "scanning" / "bundle-signing.pem"


def trusted_keys(cfg: ScanningConfig) -> list[bytes]:
    """The PEM public keys of ``bundle_trusted_keys`` (files), for ``import_bundle``."""
    return [Path(p).read_bytes() for p in cfg.bundle_trusted_keys]


def private_key_from_pem(pem: bytes, *, name: str = "signing key") -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name}: not an unencrypted PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{name}: not an Ed25519 key")
    return key


def public_key_from_pem(pem: bytes, *, name: str = "public key") -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name}: not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{name}: not an Ed25519 public key")
    return key


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The public half of ``key`` as PEM (what importers list in ``bundle_trusted_keys``)."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _advisory_json(a: Advisory) -> dict[str, Any]:
    d: dict[str, Any] = {"id": a.vuln_id, "ns": a.namespace, "pkg": a.package, "state": a.state}
    for key, value in (("introduced", a.introduced), ("fixed", a.fixed), ("last_affected", a.last_affected),
                       ("severity", a.severity), ("cvss_score", a.cvss_score), ("cvss_vector", a.cvss_vector)):
        if value not in ("", None):
            d[key] = value
    return d


def _advisory_from_json(d: Any) -> Advisory:
    if not isinstance(d, dict):
        raise BundleError("a record that is no JSON object")
    try:
        return Advisory(vuln_id=str(d["id"]), namespace=str(d["ns"]), package=str(d["pkg"]), state=str(d["state"]),
                        introduced=str(d.get("introduced", "")), fixed=str(d.get("fixed", "")),
                        last_affected=str(d.get("last_affected", "")), severity=str(d.get("severity", "")),
                        cvss_score=None if d.get("cvss_score") is None else float(d["cvss_score"]),
                        cvss_vector=str(d.get("cvss_vector", "")))
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"a malformed advisory record: {e}") from None


def _vuln_json(v: VulnInfo) -> dict[str, Any]:
    d: dict[str, Any] = {"id": v.id}
    if v.summary:
        d["summary"] = v.summary
    if v.cvss_score is not None:
        d["cvss_score"] = v.cvss_score
    if v.cvss_vector:
        d["cvss_vector"] = v.cvss_vector
    if v.aliases:
        d["aliases"] = list(v.aliases)
    if v.published_at:
        d["published_at"] = v.published_at.isoformat()
    if v.modified_at:
        d["modified_at"] = v.modified_at.isoformat()
    return d


def _vuln_from_json(d: Any) -> VulnInfo:
    if not isinstance(d, dict):
        raise BundleError("a record that is no JSON object")
    try:
        return VulnInfo(id=str(d["id"]), summary=str(d.get("summary", "")),
                        cvss_score=None if d.get("cvss_score") is None else float(d["cvss_score"]),
                        cvss_vector=str(d.get("cvss_vector", "")),
                        aliases=tuple(str(a) for a in d.get("aliases", ())),
                        published_at=parse_time(d.get("published_at")), modified_at=parse_time(d.get("modified_at")))
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"a malformed vulnerability record: {e}") from None


class _HashingWriter(io.RawIOBase):
    """A file that hashes what is written through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.digest.update(data)
        self.size += len(data)
        self.f.write(data)
        return len(data)


async def _export_rows(conn: AsyncConnection, sql: str, params: dict[str, Any], out: IO[bytes],
                       to_json: Callable[[Any], dict[str, Any]], tick: Callable[[int], None]) -> tuple[int, str]:
    """Stream a query's rows as gzip JSON lines into ``out``; (rows, sha256 of the gzip bytes)."""
    hashing = _HashingWriter(out)
    count = 0
    with gzip.GzipFile(fileobj=hashing, mode="wb", compresslevel=6, mtime=0) as gz:
        result = await conn.stream(text(sql), params)
        async for part in result.partitions(BATCH):
            lines = "".join(json.dumps(to_json(r), separators=(",", ":")) + "\n" for r in part)
            await asyncio.to_thread(gz.write, lines.encode())
            count += len(part)
            tick(len(part))
    return count, hashing.digest.hexdigest()


def _row_advisory(r: Any) -> dict[str, Any]:
    return _advisory_json(Advisory(vuln_id=r.vuln_id, namespace=r.namespace, package=r.package, state=r.state,
                                   introduced=r.introduced, fixed=r.fixed, last_affected=r.last_affected,
                                   severity=r.severity, cvss_score=r.cvss_score, cvss_vector=r.cvss_vector))


def _row_vuln(r: Any) -> dict[str, Any]:
    return _vuln_json(VulnInfo(id=r.id, summary=r.summary, cvss_score=r.cvss_score, cvss_vector=r.cvss_vector,
                               aliases=tuple(r.aliases), published_at=r.published_at, modified_at=r.modified_at))


async def export_bundle(engine: AsyncEngine, out: Path, signing_key_pem: bytes,
                        progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write the database (every imported feed's advisories and the vulnerabilities) as a signed
    offline bundle at ``out`` (a tar, written to a temporary name and renamed); its manifest.
    ``progress(done, total)`` counts records."""
    key = private_key_from_pem(signing_key_pem)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".vulndb-export-", dir=out.parent) as tmp:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                feeds = (await conn.execute(text("SELECT name, version, records, updated_at FROM vuln_feeds "
                                                 "WHERE version > 0 ORDER BY name"))).all()
                total = (await conn.execute(text(
                    "SELECT (SELECT count(*) FROM vuln_advisories) + (SELECT count(*) FROM vulnerabilities)"))
                ).scalar_one()
                done = 0

                def tick(n: int) -> None:
                    nonlocal done
                    done += n
                    if progress is not None:
                        progress(done, total)

                files: list[tuple[str, Path]] = []
                path = Path(tmp) / "vulnerabilities.jsonl.gz"
                with path.open("wb") as f:
                    count, digest = await _export_rows(
                        conn, "SELECT id, summary, cvss_score, cvss_vector, aliases, published_at, modified_at "
                              "FROM vulnerabilities ORDER BY id", {}, f, _row_vuln, tick)
                files.append(("vulnerabilities.jsonl.gz", path))
                vulns = {"file": "vulnerabilities.jsonl.gz", "records": count, "sha256": digest}
                feed_entries = []
                for i, feed in enumerate(feeds):
                    member = f"feeds/{i:04d}.jsonl.gz"
                    path = Path(tmp) / f"feed-{i:04d}.jsonl.gz"
                    with path.open("wb") as f:
                        count, digest = await _export_rows(
                            conn, f"SELECT {_COLS} FROM vuln_advisories WHERE feed = :feed "
                                  "ORDER BY namespace, package, vuln_id, id", {"feed": feed.name}, f,
                            _row_advisory, tick)
                    files.append((member, path))
                    feed_entries.append({"name": feed.name, "version": feed.version, "records": count,
                                         "updated_at": feed.updated_at.isoformat() if feed.updated_at else None,
                                         "file": member, "sha256": digest})
        kid = key_id(key.public_key())
        manifest = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION,
                    "created": dt.datetime.now(dt.UTC).isoformat(), "key_id": kid,
                    "vulnerabilities": vulns, "feeds": feed_entries}
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
        signature = {"algorithm": "ed25519", "key_id": kid,
                     "signature": base64.b64encode(key.sign(manifest_bytes)).decode()}
        partial = out.with_name(f".{out.name}.partial")

        def write_tar() -> None:
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                for member, data in (("manifest.json", manifest_bytes),
                                     ("manifest.sig", json.dumps(signature).encode())):
                    info = tarfile.TarInfo(member)
                    info.size, info.mode, info.mtime = len(data), 0o644, int(dt.datetime.now().timestamp())
                    tar.addfile(info, io.BytesIO(data))
                for member, path in files:
                    tar.add(path, arcname=member, recursive=False)
            os.replace(partial, out)

        try:
            await asyncio.to_thread(write_tar)
        finally:
            partial.unlink(missing_ok=True)
    return manifest


def _read_member(tar: tarfile.TarFile, name: str, limit: int) -> bytes:
    try:
        info = tar.getmember(name)
    except KeyError:
        raise BundleError(f"the bundle has no {name}") from None
    if not info.isfile() or info.size > limit:
        raise BundleError(f"the bundle's {name} is not a file of at most {limit} bytes")
    f = tar.extractfile(info)
    assert f is not None
    data = f.read()
    if len(data) != info.size:
        raise BundleError(f"the bundle is truncated (in {name})")
    return data


def verify_bundle(path: Path, trusted_public_keys: Sequence[bytes]) -> dict[str, Any]:
    """Check a bundle's signature against the trusted PEM public keys and every file's sha256; its
    manifest. ``BundleError`` says what is wrong (and which key signed it, when none is trusted)."""
    trusted = {key_id(k): k for k in (public_key_from_pem(p) for p in trusted_public_keys)}
    try:
        with tarfile.open(path, "r:") as tar:
            manifest_bytes = _read_member(tar, "manifest.json", MANIFEST_MAX)
            try:
                sig = json.loads(_read_member(tar, "manifest.sig", MANIFEST_MAX))
                signature = base64.b64decode(sig["signature"], validate=True)
                signer = str(sig.get("key_id", "unknown"))
            except (ValueError, KeyError, TypeError) as e:
                raise BundleError(f"the bundle's manifest.sig is malformed: {e}") from None
            key = trusted.get(signer)
            if key is None:
                raise BundleError(f"the bundle is signed by key {signer}, which is not a trusted key "
                                  f"(trusted: {', '.join(trusted) or 'none'})")
            try:
                key.verify(signature, manifest_bytes)
            except InvalidSignature:
                raise BundleError(f"the bundle's signature by key {signer} does not verify: "
                                  "its manifest was altered") from None
            try:
                manifest = json.loads(manifest_bytes)
                entries = [manifest["vulnerabilities"], *manifest["feeds"]]
                if manifest["format"] != BUNDLE_FORMAT or manifest["format_version"] != BUNDLE_VERSION:
                    raise BundleError(f"unsupported bundle format {manifest['format']!r} "
                                      f"version {manifest['format_version']!r}")
                files = {str(e["file"]): str(e["sha256"]) for e in entries}
            except (ValueError, KeyError, TypeError) as e:
                raise BundleError(f"the bundle's manifest.json is malformed: {e}") from None
            for name, expected in files.items():
                try:
                    info = tar.getmember(name)
                except KeyError:
                    raise BundleError(f"the bundle has no {name}") from None
                f = tar.extractfile(info)
                if f is None:
                    raise BundleError(f"the bundle's {name} is not a file")
                digest = hashlib.sha256()
                size = 0
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                if size != info.size:
                    raise BundleError(f"the bundle is truncated (in {name})")
                if digest.hexdigest() != expected:
                    raise BundleError(f"the bundle's {name} does not match its checksum: it was altered")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BundleError(f"{path.name}: not a readable bundle (truncated or not a tar): {e}") from None
    return manifest  # type: ignore[no-any-return]


def _bundle_lines(path: Path, member: str) -> Iterator[Any]:
    """The JSON records of one (already verified) gzip JSON-lines member."""
    with tarfile.open(path, "r:") as tar:
        f = tar.extractfile(member)
        assert f is not None
        with gzip.GzipFile(fileobj=f) as gz:
            for line in gz:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as e:
                        raise BundleError(f"{member}: malformed JSON line: {e}") from None


def _bundle_advisories(path: Path, member: str) -> Callable[[], Iterator[Advisory]]:
    return lambda: (_advisory_from_json(d) for d in _bundle_lines(path, member))


async def import_bundle(engine: AsyncEngine, path: Path, trusted_public_keys: Sequence[bytes],
                        progress: Callable[[int, int], None] | None = None) -> list[FeedResult]:
    """Import an offline bundle: verified first (``verify_bundle``; nothing changes if it fails),
    then the vulnerabilities (result named ``vulnerabilities``) and each feed, each in its own
    transaction as an online update would. ``progress(done, total)`` counts records."""
    manifest = await asyncio.to_thread(verify_bundle, path, trusted_public_keys)
    vulns = manifest["vulnerabilities"]
    total = int(vulns["records"]) + sum(int(f["records"]) for f in manifest["feeds"])
    done = 0

    def ticker() -> Callable[[int], None]:
        base = done

        def tick(sent: int) -> None:
            if progress is not None:
                progress(base + sent, total)
        return tick

    results = [await import_vulnerabilities(
        engine, None, lambda: (_vuln_from_json(d) for d in _bundle_lines(path, str(vulns["file"]))),
        progress=ticker())]
    done += int(vulns["records"])
    for entry in manifest["feeds"]:
        results.append(await import_advisories(engine, str(entry["name"]), _bundle_advisories(path, str(entry["file"])),
                                               checksum=str(entry["sha256"]), progress=ticker()))
        done += int(entry["records"])
    if progress is not None:
        progress(total, total)
    return results

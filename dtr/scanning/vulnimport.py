"""Importing into the vulnerability database: one transaction per feed.

``import_advisories`` parses a feed in a worker thread and COPYs the rows into a temporary table;
then, in ONE transaction, set-based SQL diffs the new rows against the feed's current ones,
replaces the rows of every changed (namespace, package), merges what the feed says about each
vulnerability into ``vulnerabilities`` and writes one ``vuln_changes`` row per changed key
(including keys whose CVSS, taken from ``vulnerabilities``, changed). ``import_vulnerabilities``
merges vulnerabilities alone (NVD's, or an offline bundle's table) the same way. A feed's
``version`` counts imports that changed something; a checksum already imported changes only
``checked_at``. Used by online updates (``vulndb``) and offline bundles (``bundles``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.scanning.feeds import VulnInfo
from dtr.scanning.types import Advisory

T = TypeVar("T")
Status = Literal["updated", "unchanged", "failed"]

#: Rows per batch handed from the parsing thread to COPY.
BATCH = 5000
STATES = frozenset({"fixed", "not_fixed", "will_not_fix", "not_affected"})

#: The columns of an advisory row of ``vuln_advisories`` (besides its feed and id).
ADVISORY_COLUMNS = ("vuln_id", "namespace", "package", "state", "introduced", "fixed", "last_affected",
                    "severity", "cvss_score", "cvss_vector")
_COLS = ", ".join(ADVISORY_COLUMNS)


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


async def lock_feed(conn: AsyncConnection, name: str, url: str | None) -> tuple[int, str | None]:
    """Make sure the feed's row exists and lock it; its (version, checksum)."""
    await conn.execute(text("INSERT INTO vuln_feeds (name, url) VALUES (:n, :u) ON CONFLICT (name) DO NOTHING"),
                       {"n": name, "u": url or ""})
    row = (await conn.execute(text("SELECT version, checksum FROM vuln_feeds WHERE name = :n FOR UPDATE"),
                              {"n": name})).one()
    return row.version, row.checksum


async def finish_feed(conn: AsyncConnection, name: str, *, changed: bool, records: int, checksum: str | None,
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


async def _copy(apg: asyncpg.Connection, table: str, produce: Callable[[], Iterable[tuple[Any, ...]]],
                progress: Callable[[int], None] | None) -> int:
    """COPY the rows ``produce()`` makes (in a worker thread, in batches) into ``table``;
    ``progress(rows so far)`` after each batch; the rows sent."""
    sent = 0

    async def rows() -> AsyncGenerator[tuple[Any, ...]]:
        nonlocal sent
        async with contextlib.aclosing(_thread_batches(produce)) as batches:
            async for batch in batches:
                for row in batch:
                    yield row
                sent += len(batch)
                if progress is not None:
                    progress(sent)

    async with contextlib.aclosing(rows()) as records:
        await apg.copy_records_to_table(table, records=records)
    return sent


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
        version, stored = await lock_feed(conn, name, url)
        if checksum is not None and checksum == stored:
            records = (await conn.execute(text("SELECT records FROM vuln_feeds WHERE name = :n"), {"n": name})
                       ).scalar_one()
            version = await finish_feed(conn, name, changed=False, records=records, checksum=None, url=url,
                                         headers=headers)
            return FeedResult(name, "unchanged", version, records)
        apg = await _driver(conn)
        await apg.execute(_CREATE_TMP_ADV)
        await apg.execute(_CREATE_TMP_KEYS)
        await _copy(apg, "tmp_adv", lambda: _advisory_rows(produce()), progress)
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
                              SELECT $1, {', '.join('n.' + c for c in ADVISORY_COLUMNS)}
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
        version = await finish_feed(conn, name, changed=bool(changed or written), records=records,
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
            await lock_feed(conn, name, url)
        apg = await _driver(conn)
        await apg.execute(_CREATE_TMP_VULN_RAW)
        await apg.execute(_CREATE_TMP_KEYS)
        sent = await _copy(apg, "tmp_vuln_raw", lambda: _vuln_rows(produce()), progress)
        await apg.execute("""CREATE TEMP TABLE tmp_vuln ON COMMIT DROP AS
                             SELECT DISTINCT ON (id) * FROM tmp_vuln_raw ORDER BY id, modified_at DESC NULLS LAST""")
        written = await _merge_vulns(apg, "prefer")
        changed = await _write_changes(apg)
        version = 0
        if name is not None:
            known = await apg.fetchval("SELECT count(*) FROM vulnerabilities WHERE modified_at IS NOT NULL")
            version = await finish_feed(conn, name, changed=bool(written), records=known, checksum=None,
                                         url=url, headers=headers)
        return FeedResult(name or "vulnerabilities", "updated" if written else "unchanged", version, sent, changed)

"""The vulnerability database end to end: feeds served by a local HTTP server in their real
formats (built from this machine's Debian changelog advisories), imported into a real Postgres
with dtr's migrations; offline bundles exported, verified and imported."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import stat
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dtr.config.schema import FeedsConfig, ScanningConfig
from dtr.scanning import bundles, vulndb
from dtr.scanning.bundles import BundleError
from dtr.scanning.vulnimport import FeedResult
from tests.scanning.vulnfeeds import (
    Fact,
    FeedServer,
    alpine_secdb,
    changelog_facts,
    debian_tracker_json,
    nvd_items,
    osv_debian_records,
    osv_zip,
)
from tests.servers import create_database

OSV = "osv/Debian/all.zip"
DEBIAN = "debian/json"
MAIN = "alpine/v3.19/main.json"
COMMUNITY = "alpine/v3.19/community.json"


@pytest.fixture(scope="module")
def facts() -> list[Fact]:
    # A few hundred real advisories keep the tests fast; the parsers' tests read them all.
    return changelog_facts()[::8]


@pytest.fixture
async def server(facts: list[Fact]) -> AsyncIterator[FeedServer]:
    async with FeedServer() as s:
        s.put(OSV, osv_zip(osv_debian_records(facts)))
        s.put(DEBIAN, debian_tracker_json(facts))
        s.put(MAIN, alpine_secdb(facts[::2], "v3.19", "main"))
        s.put(COMMUNITY, alpine_secdb(facts[1::2], "v3.19", "community"))
        s.nvd = nvd_items(facts)
        yield s


def config(server: FeedServer) -> ScanningConfig:
    return ScanningConfig(feeds=FeedsConfig(osv=f"{server.url}/osv", osv_ecosystems=("Debian",),
                                            debian=f"{server.url}/debian/json", alpine=f"{server.url}/alpine",
                                            alpine_branches=("v3.19",), nvd=f"{server.url}/nvd"))


async def update(engine: AsyncEngine, server: FeedServer, **kw: Any) -> dict[str, FeedResult]:
    results = await vulndb.update(engine, config(server), nvd_page_delay=0, **kw)
    return {r.name: r for r in results}


async def changes_after(engine: AsyncEngine, after: int) -> tuple[int, list[tuple[str, str]]]:
    """(the newest vuln_changes id, the rows after ``after`` as (namespace, package))."""
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, namespace, package FROM vuln_changes WHERE id > :a ORDER BY id"),
                                   {"a": after})).all()
        last = (await conn.execute(text("SELECT coalesce(max(id), 0) FROM vuln_changes"))).scalar_one()
    return last, [(r.namespace, r.package) for r in rows]


async def snapshot(engine: AsyncEngine) -> dict[str, Any]:
    """Everything an import may change."""
    async with engine.connect() as conn:
        return {
            "advisories": sorted(tuple(r) for r in await conn.execute(text(
                "SELECT feed, vuln_id, namespace, package, state, introduced, fixed, last_affected, severity, "
                "cvss_score, cvss_vector FROM vuln_advisories"))),
            "vulnerabilities": sorted(tuple(r) for r in await conn.execute(text(
                "SELECT id, summary, cvss_score, cvss_vector, aliases FROM vulnerabilities"))),
            "feeds": sorted(tuple(r) for r in await conn.execute(text(
                "SELECT name, version, checksum, records, etag, last_modified, updated_at FROM vuln_feeds"))),
            "changes": (await conn.execute(text("SELECT count(*) FROM vuln_changes"))).scalar_one(),
        }


def _urgency(f: Fact) -> str:
    return f.urgency if f.urgency in ("low", "medium", "high") else "unknown"


async def test_update_imports_then_304s_then_diffs(engine: AsyncEngine, server: FeedServer,
                                                   facts: list[Fact]) -> None:
    logged: list[str] = []
    results = await update(engine, server, log=logged.append)
    assert {n: (r.status, r.version) for n, r in results.items()} == {
        "osv:Debian": ("updated", 1), "debian": ("updated", 1), "alpine:v3.19:main": ("updated", 1),
        "alpine:v3.19:community": ("updated", 1), "nvd": ("updated", 1)}
    cves = {f.cve for f in facts}
    assert results["osv:Debian"].records == results["debian"].records == len(facts)
    assert results["alpine:v3.19:main"].records + results["alpine:v3.19:community"].records == len(facts)
    assert results["nvd"].records == len(cves)
    assert any("nvd" in line for line in logged)
    debian_keys = {("debian:12", f.source) for f in facts}
    alpine_keys = {("alpine:3.19", f.source) for f in facts}
    assert results["debian"].changed == len(debian_keys)
    last, rows = await changes_after(engine, 0)
    assert set(rows) == debian_keys | alpine_keys

    # What the matcher gets: both Debian feeds' rows, NVD's CVSS and the changelog's text.
    f = facts[0]
    found = await _advisories(engine, [("debian:12", f.source), ("debian:12", "no-such-package")])
    assert list(found) == [("debian:12", f.source)]
    by_id = {a.vuln_id: a for a in found[("debian:12", f.source)]}
    item = next(i["cve"] for i in server.nvd if i["cve"]["id"] == f.cve)
    [metric] = next(iter(item["metrics"].values()))
    for vuln_id in (f.cve, f"DEBIAN-{f.cve}"):
        a = by_id[vuln_id]
        assert (a.state, a.fixed, a.severity) == ("fixed", f.version, _urgency(f))
        assert (a.cvss_score, a.cvss_vector) == (metric["cvssData"]["baseScore"], metric["cvssData"]["vectorString"])
        assert a.summary
    assert by_id[f"DEBIAN-{f.cve}"].aliases == (f.cve,)

    # Nothing changed upstream: conditional GETs answered 304, nothing imported.
    before = await snapshot(engine)
    results = await update(engine, server)
    assert {r.status for r in results.values()} == {"unchanged"}
    assert {r.version for r in results.values()} == {1}
    assert all(server.not_modified[p] == 1 for p in (OSV, DEBIAN, MAIN, COMMUNITY))
    assert "lastModStartDate" in server.nvd_queries[-1]
    after = await snapshot(engine)
    assert {k: v for k, v in after.items() if k != "feeds"} == {k: v for k, v in before.items() if k != "feeds"}

    # The same bytes re-published under a new ETag: downloaded, but the checksum imports nothing.
    server.reissue(DEBIAN)
    results = await update(engine, server, feeds=["debian"])
    assert (results["debian"].status, results["debian"].version) == ("unchanged", 1)
    assert server.requests[DEBIAN] == 3 and server.not_modified[DEBIAN] == 1
    assert await changes_after(engine, last) == (last, [])

    # One fix version changed, one advisory dropped, one new source package: exactly those keys.
    changed, dropped = facts[1], facts[2]
    new = Fact("dtr-test-src", "1.0-1", "CVE-2099-0001", "a new advisory", "high")
    assert changed.source != dropped.source
    edited = [dataclasses.replace(x, version=x.version + "+b1") if x == changed else x
              for x in facts if x != dropped] + [new]
    server.put(DEBIAN, debian_tracker_json(edited))
    results = await update(engine, server)
    assert (results["debian"].status, results["debian"].version) == ("updated", 2)
    assert results["debian"].records == len(facts)
    assert {r.status for n, r in results.items() if n != "debian"} == {"unchanged"}
    last2, rows = await changes_after(engine, last)
    assert sorted(rows) == sorted({("debian:12", changed.source), ("debian:12", dropped.source),
                                   ("debian:12", "dtr-test-src")})
    assert results["debian"].changed == len(rows)
    found = await _advisories(engine, [("debian:12", changed.source), ("debian:12", "dtr-test-src")])
    assert {a.fixed for a in found[("debian:12", changed.source)] if changed.cve in (a.vuln_id, *a.aliases)} == \
        {changed.version + "+b1", changed.version}  # the tracker's and OSV's
    found = await _advisories(engine, [("debian:12", dropped.source)])
    assert dropped.cve not in {a.vuln_id for a in found[("debian:12", dropped.source)]}
    assert f"DEBIAN-{dropped.cve}" in {a.vuln_id for a in found[("debian:12", dropped.source)]}

    # NVD re-scores a CVE: the packages whose advisories take that CVSS are re-matched.
    rescored = facts[3]
    item = next(i for i in server.nvd if i["cve"]["id"] == rescored.cve)
    item["cve"]["lastModified"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000")
    item["cve"]["metrics"] = {"cvssMetricV31": [{"source": "nvd@nist.gov", "type": "Primary", "cvssData": {
        "version": "3.1", "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "baseScore": 10.0}}]}
    results = await update(engine, server, feeds=["nvd"])
    assert (results["nvd"].status, results["nvd"].version, results["nvd"].records) == ("updated", 2, 1)
    _, rows = await changes_after(engine, last2)
    assert set(rows) == {("debian:12", x.source) for x in facts if x.cve == rescored.cve} | \
        {("alpine:3.19", x.source) for x in facts if x.cve == rescored.cve}
    found = await _advisories(engine, [("debian:12", rescored.source)])
    assert {a.cvss_score for a in found[("debian:12", rescored.source)] if rescored.cve in (a.vuln_id, *a.aliases)} \
        == {10.0}


async def _advisories(engine: AsyncEngine, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
    async with engine.connect() as conn:
        return await vulndb.advisories_for(conn, keys)


@pytest.mark.parametrize("how", ["500", "truncate", "malformed"])
async def test_failed_download_changes_nothing_but_the_error(engine: AsyncEngine, server: FeedServer,
                                                             facts: list[Fact], how: Any) -> None:
    await update(engine, server, feeds=["debian", "osv"])
    before = await snapshot(engine)
    server.put(DEBIAN, debian_tracker_json(facts[:10]))  # new content, so the download is not a 304
    server.put(OSV, osv_zip(osv_debian_records(facts[:10])))
    server.fail(DEBIAN, how)
    server.fail(OSV, how)
    results = await update(engine, server, feeds=["debian", "osv:Debian"])
    expected = {"500": "HTTP 500", "truncate": "broke off|truncated",
                "malformed": "malformed JSON|ends inside|not a readable zip"}[how]
    for name in ("debian", "osv:Debian"):
        assert (results[name].status, results[name].version) == ("failed", 1)
        assert re.search(expected, results[name].error), results[name].error
    assert await snapshot(engine) == before
    state = await vulndb.status(engine)
    assert state.failed and state.version == 2
    failing = {s.name: s for s in state.feeds}
    assert failing["debian"].failed and failing["debian"].last_error == results["debian"].error
    assert failing["debian"].last_error_at is not None

    # The next good update imports and clears the failed flag (the error stays for the record).
    results = await update(engine, server, feeds=["debian", "osv:Debian"])
    assert {(r.status, r.version) for r in results.values()} == {("updated", 2)}
    state = await vulndb.status(engine)
    assert not state.failed and state.version == 4 and state.updated_at is not None


async def test_failure_messages_and_first_import_failure(engine: AsyncEngine, server: FeedServer) -> None:
    server.fail(DEBIAN, "malformed")
    server.fail(MAIN, "500")
    server.fail("nvd", "500", times=3)
    results = await update(engine, server, feeds=["debian", "alpine:v3.19:main", "nvd"])
    assert "malformed JSON" in results["debian"].error or "ends inside" in results["debian"].error
    assert "HTTP 500" in results["alpine:v3.19:main"].error
    assert results["nvd"].error == "nvd: the page at startIndex 0 could not be fetched: HTTP 503"
    assert {r.version for r in results.values()} == {0}
    snap = await snapshot(engine)
    assert snap["advisories"] == [] and snap["vulnerabilities"] == [] and snap["changes"] == 0
    with pytest.raises(ValueError, match="no configured feed is named 'rhel'"):
        await update(engine, server, feeds=["rhel"])
    # Group names select several feeds.
    assert [f.name for f in vulndb.select_feeds(vulndb.configured_feeds(config(server)), ["alpine:v3.19"])] == \
        ["alpine:v3.19:main", "alpine:v3.19:community"]


async def test_nvd_pages_and_windows(engine: AsyncEngine, server: FeedServer, facts: list[Fact]) -> None:
    server.nvd_page_max = 100  # the client follows totalResults page by page
    cfg = config(server)
    cfg = dataclasses.replace(cfg, feeds=dataclasses.replace(cfg.feeds, nvd_api_key="k-123"))
    results = await vulndb.update(engine, cfg, feeds=["nvd"], nvd_page_delay=0)
    assert results[0].records == len(server.nvd)
    assert [q["startIndex"] for q in server.nvd_queries] == [str(i) for i in range(0, len(server.nvd), 100)]
    assert {q["apiKey header"] for q in server.nvd_queries} == {"k-123"}
    # An increment from 300 days ago is asked in windows of at most 120 days.
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE vuln_feeds SET last_modified = :t WHERE name = 'nvd'"),
                           {"t": (dt.datetime.now(dt.UTC) - dt.timedelta(days=300)).isoformat()})
    server.nvd_queries.clear()
    results = await vulndb.update(engine, config(server), feeds=["nvd"], nvd_page_delay=0)
    assert results[0].status == "unchanged"
    assert len(server.nvd_queries) == 3 and all("lastModEndDate" in q for q in server.nvd_queries)


# --- bundles ---------------------------------------------------------------------------------------

def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture
async def engine2(pg_uri: str) -> AsyncIterator[AsyncEngine]:
    """A second database (the air-gapped site)."""
    from dtr.db.engine import asyncpg_url
    from dtr.db.migrate import upgrade

    e = create_async_engine(asyncpg_url(create_database(pg_uri)))
    await upgrade(e)
    yield e
    await e.dispose()


async def _all_keys(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        return [(r.namespace, r.package) for r in await conn.execute(text(
            "SELECT DISTINCT namespace, package FROM vuln_advisories ORDER BY 1, 2"))]


async def test_bundle_round_trip(engine: AsyncEngine, engine2: AsyncEngine, server: FeedServer,
                                 tmp_path: Path) -> None:
    await update(engine, server)
    key_path = tmp_path / "data" / "scanning" / "bundle-signing.pem"
    key = bundles.load_signing_key(key_path)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert bundles.key_id(bundles.load_signing_key(key_path).public_key()) == bundles.key_id(key.public_key())
    public = bundles.public_key_pem(key)
    seen: list[tuple[int, int]] = []
    manifest = await bundles.export_bundle(engine, tmp_path / "db.tar", key_path.read_bytes(),
                                          progress=lambda d, t: seen.append((d, t)))
    assert manifest["key_id"] == bundles.key_id(key.public_key())
    assert [f["name"] for f in manifest["feeds"]] == ["alpine:v3.19:community", "alpine:v3.19:main", "debian",
                                                      "nvd", "osv:Debian"]
    assert seen[-1][0] == seen[-1][1] > 0

    results = await bundles.import_bundle(engine2, tmp_path / "db.tar", [public])
    assert [(r.name, r.status) for r in results] == [("vulnerabilities", "updated")] + [
        (f["name"], "unchanged" if f["name"] == "nvd" else "updated") for f in manifest["feeds"]]
    keys = await _all_keys(engine)
    assert keys == await _all_keys(engine2)
    assert await _advisories(engine, keys) == await _advisories(engine2, keys)
    _, rows = await changes_after(engine2, 0)
    assert set(rows) == set(keys)

    # The same bundle again: nothing to do.
    results = await bundles.import_bundle(engine2, tmp_path / "db.tar", [public])
    assert {r.status for r in results} == {"unchanged"}
    assert (await changes_after(engine2, 0))[1] == rows


@pytest.fixture
async def bundle(engine: AsyncEngine, server: FeedServer, tmp_path: Path) -> tuple[Path, bytes]:
    await update(engine, server, feeds=["debian", "nvd"])
    key = Ed25519PrivateKey.generate()
    await bundles.export_bundle(engine, tmp_path / "db.tar", _pem(key))
    return tmp_path / "db.tar", bundles.public_key_pem(key)


async def test_bundle_tampered_records_refused(engine2: AsyncEngine, bundle: tuple[Path, bytes]) -> None:
    path, public = bundle
    data = bytearray(path.read_bytes())
    with tarfile.open(path) as tar:
        member = tar.getmember("feeds/0000.jsonl.gz")
    data[member.offset_data + member.size // 2] ^= 0x01
    path.write_bytes(bytes(data))
    before = await snapshot(engine2)
    with pytest.raises(BundleError, match=r"feeds/0000.jsonl.gz does not match its checksum"):
        await bundles.import_bundle(engine2, path, [public])
    assert await snapshot(engine2) == before


async def test_bundle_signed_by_an_untrusted_key_refused(engine2: AsyncEngine, bundle: tuple[Path, bytes]) -> None:
    path, public = bundle
    other = bundles.public_key_pem(Ed25519PrivateKey.generate())
    signer = bundles.key_id(bundles.public_key_from_pem(public))
    with pytest.raises(BundleError, match=f"signed by key {signer}, which is not a trusted key"):
        await bundles.import_bundle(engine2, path, [other])
    # A manifest altered after signing does not verify.
    data = path.read_bytes()
    with tarfile.open(path) as tar:
        member = tar.getmember("manifest.json")
    altered = bytearray(data)
    offset = data.index(b'"records": ', member.offset_data) + len(b'"records": ')
    altered[offset] = ord("9") if altered[offset] != ord("9") else ord("8")
    path.write_bytes(bytes(altered))
    with pytest.raises(BundleError, match=f"signature by key {signer} does not verify"):
        await bundles.import_bundle(engine2, path, [public, other])
    assert (await snapshot(engine2))["feeds"] == []


async def test_bundle_truncated_refused(engine2: AsyncEngine, bundle: tuple[Path, bytes]) -> None:
    path, public = bundle
    data = path.read_bytes()
    with tarfile.open(path) as tar:
        records, vulns = tar.getmember("feeds/0000.jsonl.gz"), tar.getmember("vulnerabilities.jsonl.gz")
    for cut in (records.offset_data + records.size // 2, vulns.offset_data + 10, 100):
        path.write_bytes(data[:cut])
        with pytest.raises(BundleError, match=r"truncated|has no|not a readable bundle"):
            await bundles.import_bundle(engine2, path, [public])
    assert (await snapshot(engine2))["feeds"] == []

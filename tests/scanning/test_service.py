"""The scan service on the in-process app (real Postgres, filesystem storage, its job worker): images
pushed over /v2 with layers of this machine's real Debian files (``service_data``), scanned by
``scan`` jobs; re-match after a database change; scan on push; garbage collection of results."""

from __future__ import annotations

import os
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.jobs.service import JobService
from dtr.keys import DATABASE
from dtr.registry import events
from dtr.scanning.results import COMPLETED, FAILED, PENDING
from dtr.scanning.service import ScanTargetError, queue_scan
from tests.oci import OCI_INDEX, OCI_MANIFEST, descriptor, digest_of, dumps, get, push_blob, put_manifest
from tests.scanning.service_data import (
    DPKG_STATUS,
    FAST_JOBS,
    FIXED_BEFORE,
    OPEN,
    add_advisories,
    band,
    config,
    dpkg_layer,
    fields,
    gzipped,
    installed,
    job_log,
    os_layer,
    plain,
    push,
    rows,
    stanzas,
    wait_jobs,
)

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def app_extra() -> dict[str, Any]:
    return {"jobs": FAST_JOBS}


@pytest.fixture
def engine_(app: web.Application) -> AsyncEngine:
    return app[DATABASE].engine


@pytest.fixture
def jobs(engine_: AsyncEngine) -> JobService:
    return JobService(engine_)


@pytest.fixture(scope="module")
def status() -> bytes:
    return DPKG_STATUS.read_bytes()


def without(status: bytes, source: str) -> bytes:
    """The status with every binary package of ``source`` gone (as after ``dpkg --purge``)."""
    return b"\n".join(s for s in stanzas(status)
                      if fields(s).get("Source", fields(s)["Package"]).partition(" ")[0] != source)


def expected(status: bytes, advisories: list[Any]) -> dict[tuple[str, str], str]:
    """(binary package, vuln id) -> band of every finding the open advisories make."""
    out = {}
    for binary, (source, _) in installed(status).items():
        for a in advisories:
            if a.package == source and a.state == "not_fixed":
                out[(binary, a.vuln_id)] = band(a.cvss)
    return out


async def scan(jobs: JobService, engine: AsyncEngine, repo: str, ref: str, **kw: Any) -> list[dict[str, Any]]:
    async with engine.begin() as conn:
        queued = await queue_scan(jobs, conn, repo, ref, **kw)
    return await wait_jobs(jobs, [j["id"] for j in queued])


async def findings(engine: AsyncEngine, digest: str) -> dict[tuple[str, str], Any]:
    return {(r.name, r.vuln_id): r for r in await rows(engine, """
        SELECT p.name, v.* FROM scan_image_vulns v JOIN scan_packages p ON p.id = v.package_id
        WHERE v.image_digest = :d""", d=digest)}


async def image_row(engine: AsyncEngine, digest: str) -> Any:
    (r,) = await rows(engine, "SELECT * FROM scan_images WHERE digest = :d", d=digest)
    return r


async def test_scan_a_tag_end_to_end(app_client: Client, app_base: str, engine_: AsyncEngine, jobs: JobService,
                                     status: bytes, repo_name: str) -> None:
    await add_advisories(engine_, OPEN + FIXED_BEFORE)
    base, pkgs = os_layer(), dpkg_layer(status)
    digest = await push(app_client.session, app_base, repo_name, "v1", plain(base, pkgs))

    async with engine_.begin() as conn:
        (queued,) = await queue_scan(jobs, conn, repo_name, "v1")
    assert queued["parameters"] == {"digest": digest, "repository": repo_name}
    (job,) = await wait_jobs(jobs, [queued["id"]])
    assert job["status"] == "done", job

    want = expected(status, OPEN)
    got = await findings(engine_, digest)
    assert {k: r.band for k, r in got.items()} == want
    assert all(r.state == "not_fixed" and r.fixed_version == "" for r in got.values())
    counts = {b: sum(1 for v in want.values() if v == b) for b in ("critical", "major", "minor")}
    assert counts["critical"] and counts["major"]  # tar; coreutils and glibc
    img = await image_row(engine_, digest)
    assert (img.status, img.error, img.os, img.architecture) == (COMPLETED, None, "linux", "amd64")
    assert (img.critical, img.major, img.minor, img.hidden) == (counts["critical"], counts["major"],
                                                                counts["minor"], 0)
    assert img.layers == [digest_of(base), digest_of(pkgs)]
    assert (img.distribution["id"], img.distribution["version_id"]) == ("debian", "12")
    assert img.feed_versions == {"debian": 1} and img.check_completed_at is not None
    assert job["result"]["critical"] == counts["critical"] and job["result"]["packages"] == len(installed(status))

    packages = await rows(engine_, """SELECT p.name, p.version, ip.* FROM scan_image_packages ip
                                      JOIN scan_packages p ON p.id = ip.package_id WHERE ip.image_digest = :d""",
                          d=digest)
    truth = installed(status)
    assert {r.name for r in packages} == set(truth)
    assert all((r.namespace, r.match_name, r.match_version) == ("debian:12", *truth[r.name]) for r in packages)
    assert {(r.layer_index, r.layer_digest) for r in packages} == {(1, digest_of(pkgs))}

    (event,) = await rows(engine_, "SELECT * FROM registry_events WHERE type = :t", t=events.SCAN_COMPLETED)
    assert (event.repository, event.digest) == (repo_name, digest)
    assert event.detail["critical"] == counts["critical"]
    log = await job_log(jobs, job["id"])
    assert any(line.startswith(f"layer 2/2 {digest_of(pkgs)}: {len(truth)} packages") for line in log), log

    # an override hides coreutils' finding in this repository: counted apart, not dropped
    coreutils = sum(1 for (_, v) in want if v == "CVE-2016-2781")
    async with engine_.begin() as conn:
        await conn.execute(text("INSERT INTO scan_overrides (scope, component, vuln_id, reason, actor) "
                                "VALUES (:s, 'coreutils', 'CVE-2016-2781', 'chroot is not used', 'admin')"),
                           {"s": repo_name})
    (job,) = await scan(jobs, engine_, repo_name, digest)
    img = await image_row(engine_, digest)
    assert (img.major, img.hidden) == (counts["major"] - coreutils, coreutils)
    assert len(await findings(engine_, digest)) == len(want)
    assert "2 of 2 layers indexed already" in await job_log(jobs, job["id"])


async def test_a_shared_layer_is_indexed_once(app_client: Client, app_base: str, engine_: AsyncEngine,
                                              jobs: JobService, status: bytes, repo_name: str) -> None:
    await add_advisories(engine_, OPEN)
    base = os_layer()
    a = await push(app_client.session, app_base, repo_name, "a", plain(base, dpkg_layer(status)))
    (job_a,) = await scan(jobs, engine_, repo_name, "a")
    (before,) = await rows(engine_, "SELECT indexed_at FROM scan_layers WHERE digest = :d", d=digest_of(base))
    b = await push(app_client.session, app_base, repo_name, "b", plain(base, dpkg_layer(without(status, "tar"))))
    (job_b,) = await scan(jobs, engine_, repo_name, "b")
    assert job_a["status"] == job_b["status"] == "done"
    (after,) = await rows(engine_, "SELECT indexed_at FROM scan_layers WHERE digest = :d", d=digest_of(base))
    assert after.indexed_at == before.indexed_at
    assert "1 of 2 layers indexed already" in await job_log(jobs, job_b["id"])
    assert {k for k, _ in await findings(engine_, b)} < {k for k, _ in await findings(engine_, a)}

    # two scans at once needing the same new layer: one reads it, the other uses its rows
    shared = dpkg_layer(status, marker=os.urandom(8).hex())
    c = await push(app_client.session, app_base, repo_name, "c", plain(base, shared), config(marker="c"))
    d = await push(app_client.session, app_base, repo_name, "d", plain(base, shared), config(marker="d"))
    async with engine_.begin() as conn:
        queued = [*await queue_scan(jobs, conn, repo_name, "c"), *await queue_scan(jobs, conn, repo_name, "d")]
    done = await wait_jobs(jobs, [j["id"] for j in queued])
    assert [j["status"] for j in done] == ["done", "done"], done
    read = [j for j in done if any(line.startswith(f"layer 1/1 {digest_of(shared)}: ")
                                   and "packages" in line for line in await job_log(jobs, j["id"]))]
    assert len(read) == 1
    assert (await findings(engine_, c)).keys() == (await findings(engine_, d)).keys() != set()


async def test_a_layer_that_cannot_be_indexed_fails_the_scan(app_client: Client, app_base: str,
                                                             engine_: AsyncEngine, jobs: JobService,
                                                             repo_name: str) -> None:
    corrupt = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + os.urandom(2000)  # a gzip header, then noise
    digest = await push(app_client.session, app_base, repo_name, "bad", [*plain(os_layer()), gzipped(corrupt)])
    (job,) = await scan(jobs, engine_, repo_name, "bad")
    assert job["status"] == "error" and job["attempt"] == 1, job  # no retry: the content will not change
    assert digest_of(corrupt) in job["error"]
    img = await image_row(engine_, digest)
    assert img.status == FAILED and digest_of(corrupt) in img.error
    (layer,) = await rows(engine_, "SELECT * FROM scan_layers WHERE digest = :d", d=digest_of(corrupt))
    assert layer.status == "failed" and layer.error
    (event,) = await rows(engine_, "SELECT * FROM registry_events WHERE type = :t", t=events.SCAN_FAILED)
    assert (event.repository, event.digest) == (repo_name, digest) and digest_of(corrupt) in event.detail["error"]

    # another image with that layer fails at once, without reading it again
    await push(app_client.session, app_base, repo_name, "bad2", [gzipped(corrupt)], config(marker="2"))
    (job,) = await scan(jobs, engine_, repo_name, "bad2")
    assert job["status"] == "error" and layer.error in job["error"]
    (again,) = await rows(engine_, "SELECT indexed_at FROM scan_layers WHERE digest = :d", d=digest_of(corrupt))
    assert again.indexed_at == layer.indexed_at


async def test_rematch_touches_only_the_images_a_change_concerns(
        app_client: Client, app_base: str, engine_: AsyncEngine, jobs: JobService, status: bytes,
        repo_name: str) -> None:
    tar = next(a for a in OPEN if a.package == "tar")
    await add_advisories(engine_, [a for a in OPEN if a is not tar])
    a = await push(app_client.session, app_base, repo_name, "with-tar", plain(os_layer(), dpkg_layer(status)))
    b = await push(app_client.session, app_base, repo_name, "without-tar",
                   plain(os_layer(), dpkg_layer(without(status, "tar"))))
    await scan(jobs, engine_, repo_name, "with-tar")
    await scan(jobs, engine_, repo_name, "without-tar")
    layers_before = await rows(engine_, "SELECT digest, indexed_at FROM scan_layers ORDER BY digest")
    a_before, b_before = await image_row(engine_, a), await image_row(engine_, b)
    b_findings = await rows(engine_, "SELECT * FROM scan_image_vulns WHERE image_digest = :d ORDER BY 1, 2, 3", d=b)

    await add_advisories(engine_, [tar], changes=True)  # the feed's next version: tar's advisory, a change
    job = await jobs.queue("rematch")
    (job,) = await wait_jobs(jobs, [job["id"]])
    assert job["status"] == "done" and job["result"] == {"images": 1}, job

    tar_binaries = {p for p, (src, _) in installed(status).items() if src == "tar"}
    got = await findings(engine_, a)
    assert {k for k in got if k[1] == tar.vuln_id} == {(p, tar.vuln_id) for p in tar_binaries}
    a_after, b_after = await image_row(engine_, a), await image_row(engine_, b)
    assert a_after.critical == a_before.critical + len(tar_binaries)
    assert a_after.check_completed_at > a_before.check_completed_at
    # the other image: its findings, counts and check time untouched; known to be current
    assert await rows(engine_, "SELECT * FROM scan_image_vulns WHERE image_digest = :d ORDER BY 1, 2, 3",
                      d=b) == b_findings
    assert (b_after.critical, b_after.major, b_after.minor, b_after.check_completed_at) == \
        (b_before.critical, b_before.major, b_before.minor, b_before.check_completed_at)
    assert a_after.feed_versions == b_after.feed_versions == {"debian": 2}
    # no layer was read
    assert await rows(engine_, "SELECT digest, indexed_at FROM scan_layers ORDER BY digest") == layers_before
    # the changes handled are gone; the cursor is past them
    assert await rows(engine_, "SELECT * FROM vuln_changes") == []
    (job,) = await wait_jobs(jobs, [(await jobs.queue("rematch"))["id"]])
    assert job["result"] == {"images": 0}


async def test_scan_on_push(app_client: Client, app_base: str, engine_: AsyncEngine, jobs: JobService,
                            repo_name: str) -> None:
    on, off = f"{repo_name}-on", f"{repo_name}-off"
    await push_blob(app_client.session, app_base, on, os_layer())  # the repository, no tag yet
    async with engine_.begin() as conn:
        await conn.execute(text("INSERT INTO repository_meta (repository_id, visibility, short_description, "
                                "long_description, scan_on_push) SELECT id, 'private', '', '', true "
                                "FROM repositories WHERE name = :n"), {"n": on})
    pushed = await push(app_client.session, app_base, on, "v1", plain(os_layer()), config(marker="on"))
    other = await push(app_client.session, app_base, off, "v1", plain(os_layer()), config(marker="off"))
    await _delivered(engine_)
    queued = await rows(engine_, "SELECT id, parameters FROM jobs WHERE action = 'scan'")
    assert [r.parameters for r in queued] == [{"digest": pushed, "repository": on}]
    (job,) = await wait_jobs(jobs, [str(queued[0].id)])
    assert job["status"] == "done"
    assert (await image_row(engine_, pushed)).status == COMPLETED
    assert await rows(engine_, "SELECT * FROM scan_images WHERE digest = :d", d=other) == []


async def _delivered(engine: AsyncEngine) -> None:
    """Wait until the scan-on-push subscriber has handled every event recorded so far."""
    import asyncio

    for _ in range(300):
        (r,) = await rows(engine, "SELECT (SELECT position FROM event_cursors WHERE subscriber = 'scan-on-push') "
                                  ">= (SELECT max(id) FROM registry_events) AS done")
        if r.done:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("scan-on-push never caught up")


async def test_queue_scan_resolves_tags_digests_and_indexes(app_client: Client, app_base: str,
                                                            engine_: AsyncEngine, jobs: JobService,
                                                            repo_name: str) -> None:
    amd = await push(app_client.session, app_base, repo_name, "amd64", plain(os_layer()), config("amd64"))
    arm = await push(app_client.session, app_base, repo_name, "arm64", plain(os_layer()), config("arm64"))
    children = [descriptor(OCI_MANIFEST, (await get(app_client.session, f"{app_base}/v2/{repo_name}/manifests/{d}"))[1],
                           platform={"os": "linux", "architecture": a}) for d, a in ((amd, "amd64"), (arm, "arm64"))]
    idx = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
    assert (await put_manifest(app_client.session, app_base, repo_name, "multi", idx, OCI_INDEX))[0] == 201

    async with engine_.begin() as conn:  # the worker sees nothing of it before the commit
        both = await queue_scan(jobs, conn, repo_name, "multi")
        assert [j["parameters"]["digest"] for j in both] == [amd, arm]
        pending = (await conn.execute(text("SELECT digest, status FROM scan_images ORDER BY digest"))).all()
        assert pending == sorted([(amd, PENDING), (arm, PENDING)])
        (one,) = await queue_scan(jobs, conn, repo_name, digest_of(idx), platform=("linux", "arm64"))
        assert one["id"] == both[1]["id"]  # one waiting scan per image
        (again,) = await queue_scan(jobs, conn, repo_name, "amd64")
        assert again["id"] == both[0]["id"]
        for ref, platform, kind in (("nope", None, "tag"), ("sha256:" + "0" * 64, None, "manifest"),
                                    ("multi", ("linux", "s390x"), "platform")):
            with pytest.raises(ScanTargetError) as e:
                await queue_scan(jobs, conn, repo_name, ref, platform=platform)
            assert e.value.kind == kind, e.value
        with pytest.raises(ScanTargetError) as e:
            await queue_scan(jobs, conn, f"{repo_name}-none", "v1")
        assert e.value.kind == "repository"
    await wait_jobs(jobs, [j["id"] for j in both])
    assert {(await image_row(engine_, d)).architecture for d in (amd, arm)} == {"amd64", "arm64"}


async def test_gc_deletes_the_results_of_deleted_images(app_client: Client, app_base: str, engine_: AsyncEngine,
                                                        jobs: JobService, status: bytes, repo_name: str) -> None:
    await add_advisories(engine_, OPEN)
    base, pkgs = os_layer(), dpkg_layer(status)
    gone = await push(app_client.session, app_base, repo_name, "gone", plain(base, pkgs))
    kept = await push(app_client.session, app_base, repo_name, "kept", plain(base), config(marker="kept"))
    await scan(jobs, engine_, repo_name, "gone")
    await scan(jobs, engine_, repo_name, "kept")
    assert await rows(engine_, "SELECT 1 FROM scan_image_vulns WHERE image_digest = :d", d=gone)
    async with app_client.session.delete(f"{app_base}/v2/{repo_name}/manifests/{gone}") as r:
        assert r.status == 202

    (job,) = await wait_jobs(jobs, [(await jobs.queue("gc", {"grace_period": 0}))["id"]])
    assert job["status"] == "done" and job["result"]["scan_results"] == 1, job
    for table, column in (("scan_images", "digest"), ("scan_image_packages", "image_digest"),
                          ("scan_image_vulns", "image_digest")):
        assert await rows(engine_, f"SELECT 1 FROM {table} WHERE {column} = :d", d=gone) == [], table
    assert await rows(engine_, "SELECT 1 FROM scan_layers WHERE digest = :d", d=digest_of(pkgs)) == []
    assert await rows(engine_, "SELECT 1 FROM scan_packages WHERE layer_digest = :d", d=digest_of(pkgs)) == []
    # what the kept image needs stays
    assert (await image_row(engine_, kept)).status == COMPLETED
    assert await rows(engine_, "SELECT 1 FROM scan_layers WHERE digest = :d", d=digest_of(base))


async def test_a_change_committed_after_a_later_one_is_still_handled(
        app_client: Client, app_base: str, engine_: AsyncEngine, jobs: JobService, status: bytes,
        repo_name: str) -> None:
    """Two imports at once: the first draws the lower change id but commits last; the re-match in
    between handles the other's, and the next one the first's (the changes are a queue)."""
    coreutils, tar = (next(a for a in OPEN if a.package == p) for p in ("coreutils", "tar"))
    digest = await push(app_client.session, app_base, repo_name, "v1", plain(os_layer(), dpkg_layer(status)))
    await scan(jobs, engine_, repo_name, "v1")
    assert await findings(engine_, digest) == {}
    async with engine_.connect() as slow:
        await slow.execute(text("INSERT INTO vuln_feeds (name, version) VALUES ('slow', 1)"))
        await slow.execute(text("INSERT INTO vuln_advisories (feed, vuln_id, namespace, package, state, severity, "
                                "cvss_score) VALUES ('slow', :id, 'debian:12', 'tar', 'not_fixed', 'low', :cvss)"),
                           {"id": tar.vuln_id, "cvss": tar.cvss})
        await slow.execute(text("INSERT INTO vuln_changes (namespace, package) VALUES ('debian:12', 'tar')"))
        await add_advisories(engine_, [coreutils], changes=True)  # a later id, committed first
        (job,) = await wait_jobs(jobs, [(await jobs.queue("rematch"))["id"]])
        assert job["result"] == {"images": 1}
        assert {v for _, v in await findings(engine_, digest)} == {coreutils.vuln_id}
        await slow.commit()
    (job,) = await wait_jobs(jobs, [(await jobs.queue("rematch"))["id"]])
    assert job["result"] == {"images": 1}
    assert {v for _, v in await findings(engine_, digest)} == {coreutils.vuln_id, tar.vuln_id}


async def test_a_layer_indexed_by_an_older_indexer_is_indexed_again_when_next_needed(
        app_client: Client, app_base: str, engine_: AsyncEngine, jobs: JobService, status: bytes,
        repo_name: str) -> None:
    from dtr.scanning.indexers import INDEXER_VERSION

    base, pkgs = os_layer(), dpkg_layer(status, marker="reindex")
    await push(app_client.session, app_base, repo_name, "v1", plain(base, pkgs))
    (job,) = await scan(jobs, engine_, repo_name, "v1")
    assert job["status"] == "done", job
    before = {r.digest: r.indexed_at for r in await rows(engine_, "SELECT digest, indexed_at FROM scan_layers")}
    async with engine_.begin() as conn:  # as an older dtr's indexer left it
        await conn.execute(text("UPDATE scan_layers SET indexer_version = :v WHERE digest = :d"),
                           {"v": INDEXER_VERSION - 1, "d": digest_of(pkgs)})
    (job,) = await scan(jobs, engine_, repo_name, "v1")
    assert job["status"] == "done", job
    after = {r.digest: (r.indexed_at, r.indexer_version)
             for r in await rows(engine_, "SELECT digest, indexed_at, indexer_version FROM scan_layers")}
    assert after[digest_of(base)] == (before[digest_of(base)], INDEXER_VERSION)  # current: not read again
    assert after[digest_of(pkgs)][0] > before[digest_of(pkgs)] and after[digest_of(pkgs)][1] == INDEXER_VERSION
    log = await job_log(jobs, job["id"])
    assert any("1 of 2 layers indexed already" in line for line in log), log


async def test_the_daily_database_update_is_scheduled(app_client: Client, app_base: str) -> None:
    async with app_client.session.get(f"{app_base}/api/v0/crons/update_vuln_db") as r:
        assert r.status == 200, await r.text()
        cron = await r.json()
    assert cron["schedule"] == "0 0 3 * * *"  # DTR's 03:00 UTC, scanning.update_schedule's default

"""``dtr scan`` and ``dtr vulndb status``: the real command against a dtr process's database (its
worker scans; with none running, the command scans itself), and in process for the progress bar."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dtr.db.engine import asyncpg_url
from dtr.jobs.service import JobService
from dtr.keys import CONFIG, DATABASE
from dtr.scanning import cli
from dtr.scanning.scan import _layer_key
from tests.jobs.test_cli import dtr_cli
from tests.oci import digest_of
from tests.scanning.service_data import (
    DPKG_STATUS,
    FAST_JOBS,
    OPEN,
    add_advisories,
    band,
    config,
    dpkg_layer,
    gzipped,
    installed,
    os_layer,
    plain,
    push,
)
from tests.servers import DtrProcess

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def app_extra() -> dict[str, Any]:
    return {"jobs": FAST_JOBS}


@pytest.fixture
async def proc_engine() -> AsyncIterator[Callable[[DtrProcess], AsyncEngine]]:
    made: list[AsyncEngine] = []

    def make(proc: DtrProcess) -> AsyncEngine:
        made.append(create_async_engine(asyncpg_url(proc.config["database"]["url"])))
        return made[-1]

    yield make
    for e in made:
        await e.dispose()


def counts(status: bytes) -> dict[str, int]:
    """The counts the open advisories make in an image of ``status``."""
    out = {"critical": 0, "major": 0, "minor": 0}
    for source, _ in installed(status).values():
        for a in OPEN:
            if a.package == source:
                out[band(a.cvss)] += 1
    return out


async def test_dtr_scan_follows_the_scan_and_prints_the_counts(
        dtr_factory: Callable[..., DtrProcess], proc_engine: Callable[[DtrProcess], AsyncEngine],
        http: aiohttp.ClientSession) -> None:
    proc = dtr_factory({"jobs": FAST_JOBS})
    cfg = str(proc.config_path)
    status = DPKG_STATUS.read_bytes()
    await add_advisories(proc_engine(proc), OPEN)
    digest = await push(http, proc.url, "cli/app", "v1", plain(os_layer(), dpkg_layer(status)))
    corrupt = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"not deflate data" * 100
    bad = await push(http, proc.url, "cli/app", "bad", [gzipped(corrupt)], config(marker="bad"))

    rc, out, err = await dtr_cli(cfg, "scan", "cli/app:v1")
    assert rc == 0, (out, err)
    assert "running it here" not in err  # the server's worker scanned it
    c = counts(status)
    assert f"{digest} (linux/amd64): {c['critical']} critical, {c['major']} major, {c['minor']} minor\n" in out
    assert re.search(r"job \S+ \(scan\): done", err)

    rc, out, err = await dtr_cli(cfg, "scan", f"cli/app@{bad}")
    assert rc == 1, (out, err)
    assert f"layer {digest_of(corrupt)} cannot be indexed" in err
    assert f"{bad} (linux/amd64): not scanned: layer {digest_of(corrupt)} cannot be indexed" in out

    for args, message in ((["cli/app:nope"], "dtr: no tag nope in cli/app"),
                          (["cli/none:v1"], "dtr: no repository cli/none")):
        rc, out, err = await dtr_cli(cfg, "scan", *args)
        assert (rc, err.strip()) == (1, message), (out, err)
    for args in (["Not A Name"], ["cli/app", "--platform", "linux"]):
        rc, out, err = await dtr_cli(cfg, "scan", *args)
        assert rc == 2 and "usage:" in err, (args, out, err)

    rc, out, err = await dtr_cli(cfg, "vulndb", "status")
    assert rc == 0, (out, err)
    assert re.search(r"^debian\s+1\s+3\s", out, re.M), out
    assert "1 images scanned" in out

    proc.stop()  # no dtr running: the command scans itself
    rc, out, err = await dtr_cli(cfg, "scan", "cli/app:v1", "--platform", "linux/amd64")
    assert rc == 0, (out, err)
    assert "no running dtr process runs scan jobs: running it here" in err
    assert "1 of 2 layers indexed already" not in out and "2 of 2 layers indexed already" in out
    assert f"{digest} (linux/amd64): {c['critical']} critical" in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_dtr_scan_shows_a_progress_bar(app_client: Client, app_base: str, app: web.Application,
                                             repo_name: str) -> None:
    engine: AsyncEngine = app[DATABASE].engine
    layer = dpkg_layer(DPKG_STATUS.read_bytes())
    digest = await push(app_client.session, app_base, repo_name, "v1", plain(layer))
    out, err = io.StringIO(), _Terminal()
    async with engine.connect() as lock:  # the layer's lock, as another scan indexing it would hold it
        await lock.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _layer_key(digest_of(layer))})
        await lock.commit()
        task = asyncio.create_task(cli.scan(app[CONFIG], JobService(engine), repo_name, "v1", None, out=out, err=err))
        for _ in range(200):
            if "indexing 1 layers 0/" in err.getvalue():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no progress bar: {err.getvalue()!r}")
        assert "\r\033[K[" in err.getvalue()
        await lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _layer_key(digest_of(layer))})
        await lock.commit()
    assert await asyncio.wait_for(task, 60) == 0, (out.getvalue(), err.getvalue())
    assert "another scan is indexing it; waiting" in out.getvalue()
    assert f"{digest} (linux/amd64): 0 critical, 0 major, 0 minor\n" in out.getvalue()


#: The Debian security tracker's entries for three of this machine's source packages, as the tracker
#: publishes them for bookworm (two open "unimportant" issues, one fixed long before bookworm's zlib).
TRACKER = {
    "coreutils": {"CVE-2016-2781": {
        "description": "chroot in GNU coreutils, when used with --userspec, allows local users to escape to the "
                       "parent session via a crafted TIOCSTI ioctl call, which pushes characters to the terminal's "
                       "input buffer.",
        "scope": "local",
        "releases": {"bookworm": {"status": "open", "repositories": {"bookworm": "9.1-1"}, "urgency": "unimportant"}}}},
    "tar": {"CVE-2005-2541": {
        "description": "Tar 1.15.1 does not properly warn the user when extracting setuid or setgid files, which may "
                       "allow local users or remote attackers to gain privileges.",
        "scope": "remote",
        "releases": {"bookworm": {"status": "open", "repositories": {"bookworm": "1.34+dfsg-1.2+deb12u1"},
                                  "urgency": "unimportant"}}}},
    "zlib": {"CVE-2022-37434": {
        "description": "zlib through 1.2.12 has a heap-based buffer over-read or buffer overflow in inflate in "
                       "inflate.c via a large gzip header extra field.",
        "scope": "remote", "debianbug": 1016710,
        "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "1:1.2.13.dfsg-1"},
                                  "fixed_version": "1:1.2.11.dfsg-4.1", "urgency": "not yet assigned"}}}},
}


@pytest.fixture
async def tracker() -> AsyncIterator[dict[str, Any]]:
    """The tracker's JSON served with an ETag (``state["fail"]``: answer 500 instead)."""
    body = json.dumps(TRACKER).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
    state: dict[str, Any] = {"fail": False, "requests": 0}

    async def handle(request: web.Request) -> web.Response:
        state["requests"] += 1
        if state["fail"]:
            return web.Response(status=500, text="tracker down")
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="application/json", headers={"ETag": etag})

    app = web.Application()
    app.router.add_get("/tracker/data/json", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state["url"] = f"http://127.0.0.1:{port}/tracker/data/json"
    yield state
    await runner.cleanup()


async def test_dtr_vulndb_update_rematches_and_bundles_travel(
        dtr_factory: Callable[..., DtrProcess], proc_engine: Callable[[DtrProcess], AsyncEngine],
        http: aiohttp.ClientSession, tracker: dict[str, Any], tmp_path: Path) -> None:
    feeds = {"feeds": {"osv": "", "alpine": "", "nvd": "", "debian": tracker["url"]}}
    proc = dtr_factory({"jobs": FAST_JOBS, "scanning": feeds})
    cfg = str(proc.config_path)
    engine = proc_engine(proc)
    status = DPKG_STATUS.read_bytes()
    digest = await push(http, proc.url, "cli/app", "v1", plain(os_layer(), dpkg_layer(status)))
    assert (await dtr_cli(cfg, "scan", "cli/app:v1"))[0] == 0
    assert await _findings(engine, digest) == set()  # no database yet

    rc, out, err = await dtr_cli(cfg, "vulndb", "update")
    assert rc == 0, (out, err)
    assert "feed debian: updated to version 1: 3 records, 3 packages changed" in out
    assert "re-matched 1 images" in out  # the rematch the update queued, followed
    truth = installed(status)
    assert await _findings(engine, digest) == {(p, v) for p, (src, _) in truth.items()
                                               for v, s in (("CVE-2016-2781", "coreutils"), ("CVE-2005-2541", "tar"))
                                               if src == s}
    rc, out, err = await dtr_cli(cfg, "vulndb", "update", "--feed", "debian")
    assert rc == 0 and "feed debian: unchanged (version 1, 3 records)" in out, (out, err)
    tracker["fail"] = True
    rc, out, err = await dtr_cli(cfg, "vulndb", "update")
    assert rc == 1 and "every feed failed: debian: " in err and "HTTP 500" in err, (out, err)
    rc, out, err = await dtr_cli(cfg, "vulndb", "update", "--feed", "osv")
    assert rc == 1 and "no configured feed is named 'osv'" in err, (out, err)

    bundle = tmp_path / "vulndb.tar"
    rc, out, err = await dtr_cli(cfg, "vulndb", "export", str(bundle))
    assert rc == 0, (out, err)
    assert "made the bundle signing key" in err and (proc.data_dir / "scanning" / "bundle-signing.pem").exists()
    signer = tmp_path / "signer.pem"
    signer.write_text(out)
    assert out.startswith("-----BEGIN PUBLIC KEY-----")

    offline = dtr_factory({"jobs": FAST_JOBS, "scanning": {"feeds": {"osv": "", "alpine": "", "nvd": "",
                                                                     "debian": ""}}}, start=False)
    ocfg = str(offline.config_path)
    tampered = tmp_path / "tampered.tar"
    data = bytearray(bundle.read_bytes())
    data[-4096] ^= 0xFF  # inside the last records file
    tampered.write_bytes(bytes(data))
    other = tmp_path / "other.pem"
    other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    for path, key in ((tampered, signer), (bundle, other)):
        rc, out, err = await dtr_cli(ocfg, "vulndb", "import", str(path), "--trust-key", str(key))
        lines = [line for line in err.splitlines() if line.startswith("dtr: ")]
        assert rc == 1 and len(lines) == 1 and "bundle refused" in lines[0], (out, err)
    rc, out, err = await dtr_cli(ocfg, "vulndb", "import", str(bundle))
    assert rc == 1 and "no trusted bundle signer" in err
    rc, out, err = await dtr_cli(ocfg, "vulndb", "import", str(bundle), "--trust-key", str(signer))
    assert rc == 0, (out, err)
    assert "debian: updated to version 1: 3 records, 3 packages changed" in err
    assert "no running dtr process runs rematch jobs: running it here" in err
    rc, out, err = await dtr_cli(ocfg, "vulndb", "status")
    assert rc == 0 and re.search(r"^debian\s+1\s+3\s", out, re.M), out


async def _findings(engine: AsyncEngine, digest: str) -> set[tuple[str, str]]:
    async with engine.connect() as conn:
        return {(r.name, r.vuln_id) for r in await conn.execute(text(
            "SELECT p.name, v.vuln_id FROM scan_image_vulns v JOIN scan_packages p ON p.id = v.package_id "
            "WHERE v.image_digest = :d"), {"d": digest})}

"""Operations: embedded Postgres by default, TLS from the internal CA, JSON access logs, SIGTERM drain."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.servers import ROOT, DtrProcess, free_port

pytestmark = pytest.mark.asyncio


def _dtr(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtr", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


async def test_embedded_postgres_and_tls_auto(tmp_path: Path) -> None:
    """No database URL: dtr runs its own Postgres under data_dir; tls: auto serves a cert from its CA."""
    port = free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"),
                                   "http": {"addr": f"127.0.0.1:{port}", "tls": "auto"}}))
    exported = _dtr("ca", "export", config=cfg)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("-----BEGIN CERTIFICATE-----")
    upgraded = _dtr("db", "upgrade", config=cfg)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()

    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "dtr", "serve", "--config", str(cfg),
                                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ctx = ssl.create_default_context(cadata=exported.stdout)
        async with aiohttp.ClientSession() as http:
            for _ in range(600):  # the embedded PostgreSQL's start waits for any other on the machine
                with contextlib.suppress(aiohttp.ClientConnectorError):
                    async with http.get(f"https://127.0.0.1:{port}/_ping", ssl=ctx) as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("dtr serve did not answer /_ping over TLS within 60 s")
            async with http.get(f"https://127.0.0.1:{port}/v2/", ssl=ctx) as r:
                # Auth is on by default: the registry asks for a token, over TLS.
                assert r.status == 401
                assert r.headers["WWW-Authenticate"].startswith("Bearer realm=\"https://")
            # Without the CA the certificate is not trusted.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with http.get(f"https://127.0.0.1:{port}/v2/"):
                    pass
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_access_log_is_one_json_line_per_request(dtr: DtrProcess, http: aiohttp.ClientSession,
                                                       repo_name: str) -> None:
    async with http.get(f"{dtr.url}/v2/{repo_name}/tags/list", headers={"X-Request-Id": "req-123"}) as r:
        assert r.status == 404
        assert r.headers["X-Request-Id"] == "req-123"
    for _ in range(50):
        lines = [json.loads(line) for line in dtr.log_path.read_text().splitlines() if line.startswith("{")]
        hits = [entry for entry in lines if entry.get("request_id") == "req-123"]
        if hits:
            break
        await asyncio.sleep(0.1)
    assert hits, "no access line for the request"
    entry = hits[0]
    assert entry["method"] == "GET"
    assert entry["repository"] == repo_name
    assert entry["status"] == 404
    assert {"bytes", "duration_ms", "time", "level"} <= set(entry)


async def test_sigterm_lets_an_upload_in_flight_finish(dtr_factory, http: aiohttp.ClientSession) -> None:  # type: ignore[no-untyped-def]
    server: DtrProcess = dtr_factory()
    data = b"d" * (4 << 20)
    sent = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield data[: 1 << 20]
        sent.set()
        await asyncio.sleep(1.0)
        for i in range(1, 4):
            yield data[i << 20 : (i + 1) << 20]

    async with http.post(f"{server.url}/v2/drain/test/blobs/uploads/") as r:
        location = r.headers["Location"]
    patch = asyncio.ensure_future(http.patch(f"{server.url}{location}", data=body()))
    await sent.wait()
    await asyncio.sleep(0.2)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    resp = await patch
    assert resp.status == 202
    assert resp.headers["Range"] == f"0-{len(data) - 1}"
    resp.release()
    assert server.proc.wait(30) == 0

    # After a restart the upload is still there and completes.
    server.start()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    async with http.put(f"{server.url}{location}?digest={digest}") as r:
        assert r.status == 201, await r.text()


async def test_ping_says_503_and_why_when_storage_fails(dtr_factory, http: aiohttp.ClientSession) -> None:  # type: ignore[no-untyped-def]
    server: DtrProcess = dtr_factory()
    async with http.get(f"{server.url}/_ping") as r:
        assert r.status == 200
    root = Path(server.config["storage"]["filesystem"]["rootdirectory"])

    def break_storage() -> None:
        shutil.rmtree(root)
        root.write_text("not a directory any more")

    await asyncio.to_thread(break_storage)
    async with http.get(f"{server.url}/_ping") as r:
        assert r.status == 503
        body = await r.json()
    assert body["status"] == "unavailable"
    assert "storage" in body["errors"] and "database" not in body["errors"]


async def test_access_lines_carry_hostile_ids_and_paths_as_valid_json(dtr: DtrProcess, http: aiohttp.ClientSession,
                                                                      repo_name: str) -> None:
    """What a client sends (its request id, a path with quotes and backslashes) comes out of the
    real server's hand-assembled access line as valid JSON with the same values."""
    rid = 'hostile "id" \\ ünï'
    async with http.get(f"{dtr.url}/v2/{repo_name}/manifests/a%22b%5Cc", headers={"X-Request-Id": rid}) as r:
        assert r.status == 404  # no tag can be named so: MANIFEST_UNKNOWN
    for _ in range(50):
        lines = [json.loads(line) for line in dtr.log_path.read_text().splitlines() if line.startswith("{")]
        hits = [entry for entry in lines if entry.get("request_id") == rid]
        if hits:
            break
        await asyncio.sleep(0.1)
    assert hits, "no access line for the request"
    assert hits[0]["path"] == f'/v2/{repo_name}/manifests/a"b\\c' and hits[0]["status"] == 404


@pytest.mark.parametrize("value", ["/v2/a/b/manifests/latest", 'quo"te\\back', "ünï/cödé", "\x01\x1f\x7f\n",
                                   "\ud800", "", None])
async def test_access_lines_are_the_json_of_their_fields(value: str | None) -> None:
    """The access line is assembled by hand for speed: it must be exactly ``json.dumps`` of its
    fields, whatever a client puts in the path or the request id."""
    import logging

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from dtr.keys import REPOSITORY, REQUEST_ID, USER
    from dtr.ops import logs

    assert logs._json_str(value) == json.dumps(value)
    req = make_mocked_request("GET", "/v2/a/b/tags/list")
    req[REQUEST_ID] = value  # type: ignore[assignment]  # hostile values, None included
    req[REPOSITORY] = "a/b"
    if value is not None:
        req[USER] = value
    logs.AccessLogger(logging.getLogger("test.access"), "").log(req, web.Response(body=b"12345"), 0.012345)
    line = logs.ACCESS_LINES._lines.pop()
    entry = json.loads(line)
    assert line == json.dumps(entry)
    assert (entry["request_id"], entry["path"], entry["repository"], entry["status"], entry["bytes"],
            entry["bytes_in"], entry["duration_ms"]) == (value, "/v2/a/b/tags/list", "a/b", 200, 0, 0, 12.35)
    assert entry["user"] == (value or None)

"""Abandoned uploads: rows and storage deleted past the age; fresh uploads untouched."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp

from tests.jobs.conftest import api, wait_job
from tests.oci import digest_of


async def _start(http: aiohttp.ClientSession, base: str, repo: str, data: bytes) -> str:
    async with http.post(f"{base}/v2/{repo}/blobs/uploads/") as r:
        assert r.status == 202
        location = r.headers["Location"]
    async with http.patch(f"{base}{location}", data=data,
                          headers={"Content-Type": "application/octet-stream"}) as r:
        assert r.status == 202
    return str(location)


async def test_abandoned_uploads_are_deleted(cluster, http: aiohttp.ClientSession) -> None:
    (a,) = cluster(1)
    root = Path(a.config["storage"]["filesystem"]["rootdirectory"])
    old = await _start(http, a.url, "clean/up", os.urandom(5000))
    old_id = old.rsplit("/", 1)[1]
    assert (root / "uploads" / old_id).is_dir()
    # an upload directory nobody recorded (a crash between creating and recording it)
    stray = root / "uploads" / "0b5e3c2e-6a43-4c36-9c1e-5f1e1d1e1e1e"
    stray.mkdir(parents=True)
    (stray / "data").write_bytes(b"x" * 10)
    os.utime(stray / "data", (1, 1))

    job = await api(http, "POST", f"{a.url}/api/v0/jobs", {"action": "upload_cleanup",
                                                           "parameters": {"max_age": "0s"}})
    done = await wait_job(http, a.url, job["id"])
    assert done["status"] == "done", done
    assert done["result"]["uploads"] >= 1 and done["result"]["bytes"] >= 5000
    assert done["result"]["orphan_dirs"] == 1
    assert not (root / "uploads" / old_id).exists() and not stray.exists()
    async with http.get(f"{a.url}{old}") as r:
        assert r.status == 404 and (await r.json())["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"

    # with the default age (a day) a fresh upload stays and finishes normally
    fresh_data = os.urandom(100)
    fresh = await _start(http, a.url, "clean/up", fresh_data)
    job = await api(http, "POST", f"{a.url}/api/v0/jobs", {"action": "upload_cleanup"})
    assert (await wait_job(http, a.url, job["id"]))["result"]["uploads"] == 0
    async with http.put(f"{a.url}{fresh}?digest={digest_of(fresh_data)}") as r:
        assert r.status == 201, await r.text()

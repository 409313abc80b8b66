"""end-2 and end-10: blob GET (with Range), HEAD and DELETE; blobs are per repository."""

from __future__ import annotations

import os

from tests.api.helpers import Registry, error_codes
from tests.oci import digest_of


async def test_get_and_head_blob(reg: Registry, repo_name: str) -> None:
    data = os.urandom(3000)
    digest = await reg.push_blob(repo_name, data)
    async with reg.http.get(reg.url(f"/v2/{repo_name}/blobs/{digest}")) as r:
        assert r.status == 200
        assert await r.read() == data
        assert r.headers["Docker-Content-Digest"] == digest
    async with reg.http.head(reg.url(f"/v2/{repo_name}/blobs/{digest}")) as r:
        assert r.status == 200
        assert r.headers["Docker-Content-Digest"] == digest
        assert int(r.headers["Content-Length"]) == len(data)
        assert await r.read() == b""


async def test_missing_blob_is_404(reg: Registry, repo_name: str) -> None:
    await reg.push_blob(repo_name)
    missing = digest_of(b"never pushed")
    async with reg.http.get(reg.url(f"/v2/{repo_name}/blobs/{missing}")) as r:
        assert r.status == 404
        assert await error_codes(r) == ["BLOB_UNKNOWN"]
    async with reg.http.head(reg.url(f"/v2/{repo_name}/blobs/{missing}")) as r:
        assert r.status == 404
        assert await r.read() == b""


async def test_range_requests(reg: Registry, repo_name: str) -> None:
    data = os.urandom(1000)
    digest = await reg.push_blob(repo_name, data)
    url = reg.url(f"/v2/{repo_name}/blobs/{digest}")
    async with reg.http.get(url, headers={"Range": "bytes=10-19"}) as r:
        assert r.status == 206
        assert await r.read() == data[10:20]
        assert r.headers["Content-Range"] == "bytes 10-19/1000"
    async with reg.http.get(url, headers={"Range": "bytes=990-"}) as r:
        assert r.status == 206
        assert await r.read() == data[990:]
    async with reg.http.get(url, headers={"Range": "bytes=-5"}) as r:
        assert r.status == 206
        assert await r.read() == data[-5:]
    async with reg.http.get(url, headers={"Range": "bytes=995-5000"}) as r:
        assert r.status == 206
        assert await r.read() == data[995:]
    async with reg.http.get(url, headers={"Range": "bytes=1000-1010"}) as r:
        assert r.status == 416
        assert r.headers["Content-Range"] == "bytes */1000"


async def test_sha512_blob(reg: Registry, repo_name: str) -> None:
    data = os.urandom(500)
    digest = await reg.push_blob(repo_name, data, algorithm="sha512")
    assert digest.startswith("sha512:") and len(digest) == 7 + 128
    async with reg.http.get(reg.url(f"/v2/{repo_name}/blobs/{digest}")) as r:
        assert r.status == 200
        assert await r.read() == data
        assert r.headers["Docker-Content-Digest"] == digest


async def test_blob_needs_a_push_or_mount_into_the_repository(reg: Registry, repo_name: str) -> None:
    data = os.urandom(100)
    digest = await reg.push_blob(repo_name, data)
    other = repo_name + "-b"
    await reg.push_blob(other)  # other exists, but has not got this blob
    async with reg.http.get(reg.url(f"/v2/{other}/blobs/{digest}")) as r:
        assert r.status == 404
        assert await error_codes(r) == ["BLOB_UNKNOWN"]
    async with reg.http.head(reg.url(f"/v2/{other}/blobs/{digest}")) as r:
        assert r.status == 404
    await reg.push_blob(other, data)
    async with reg.http.get(reg.url(f"/v2/{other}/blobs/{digest}")) as r:
        assert r.status == 200
        assert await r.read() == data


async def test_delete_blob(reg: Registry, repo_name: str) -> None:
    digest = await reg.push_blob(repo_name)
    other = repo_name + "-keep"
    await reg.push_blob(other, None)
    async with reg.http.delete(reg.url(f"/v2/{repo_name}/blobs/{digest}")) as r:
        assert r.status == 202
    async with reg.http.head(reg.url(f"/v2/{repo_name}/blobs/{digest}")) as r:
        assert r.status == 404
    async with reg.http.delete(reg.url(f"/v2/{repo_name}/blobs/{digest}")) as r:
        assert r.status == 404
        assert await error_codes(r) == ["BLOB_UNKNOWN"]


async def test_delete_blob_unlinks_only_that_repository(reg: Registry, repo_name: str) -> None:
    data = os.urandom(77)
    digest = await reg.push_blob(repo_name, data)
    other = repo_name + "-other"
    await reg.push_blob(other, data)
    async with reg.http.delete(reg.url(f"/v2/{repo_name}/blobs/{digest}")) as r:
        assert r.status == 202
    async with reg.http.get(reg.url(f"/v2/{other}/blobs/{digest}")) as r:
        assert r.status == 200
        assert await r.read() == data


async def test_blob_in_unknown_repository(reg: Registry, repo_name: str) -> None:
    digest = digest_of(b"x")
    async with reg.http.get(reg.url(f"/v2/{repo_name}/blobs/{digest}")) as r:
        assert r.status == 404
    async with reg.http.delete(reg.url(f"/v2/{repo_name}/blobs/{digest}")) as r:
        assert r.status == 404
        assert (await error_codes(r))[0] in ("NAME_UNKNOWN", "BLOB_UNKNOWN")


async def test_invalid_blob_digest_is_400(reg: Registry, repo_name: str) -> None:
    await reg.push_blob(repo_name)
    for bad in ("sha256:abc", "sha256:" + "G" * 64, "md5:" + "a" * 32, "nocolon", "sha256:" + "A" * 64):
        async with reg.http.get(reg.url(f"/v2/{repo_name}/blobs/{bad}")) as r:
            assert r.status in (400, 404), bad
            if r.status == 400:
                assert await error_codes(r) == ["DIGEST_INVALID"]

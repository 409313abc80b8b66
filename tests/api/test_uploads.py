"""end-4a/4b/5/6/11/13 and DELETE of an upload: every way to push a blob, and their failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.api.helpers import Registry, error_codes
from tests.oci import digest_of
from tests.servers import DtrProcess

OCTET = {"Content-Type": "application/octet-stream"}


def upload_dirs(dtr: DtrProcess) -> set[str]:
    root = Path(dtr.config["storage"]["filesystem"]["rootdirectory"]) / "uploads"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def blob_file(dtr: DtrProcess, digest: str) -> Path:
    algo, _, hexpart = digest.partition(":")
    return Path(dtr.config["storage"]["filesystem"]["rootdirectory"]) / "blobs" / algo / hexpart[:2] / hexpart


async def start(reg: Registry, name: str) -> str:
    async with reg.http.post(reg.url(f"/v2/{name}/blobs/uploads/"), headers={"Content-Length": "0"}) as r:
        assert r.status == 202, await r.text()
        location = r.headers["Location"]
        assert r.headers["Docker-Upload-UUID"] in location
        assert r.headers["Range"] == "0-0"
        return location


async def fetch(reg: Registry, name: str, digest: str) -> bytes | None:
    async with reg.http.get(reg.url(f"/v2/{name}/blobs/{digest}")) as r:
        return await r.read() if r.status == 200 else None


async def test_post_then_put_monolithic(reg: Registry, repo_name: str) -> None:
    data = os.urandom(2048)
    digest = digest_of(data)
    location = await start(reg, repo_name)
    async with reg.http.put(reg.url(location), params={"digest": digest}, data=data, headers=OCTET) as r:
        assert r.status == 201
        assert r.headers["Location"] == f"/v2/{repo_name}/blobs/{digest}"
        assert r.headers["Docker-Content-Digest"] == digest
    assert await fetch(reg, repo_name, digest) == data


async def test_single_post_monolithic(reg: Registry, repo_name: str) -> None:
    data = os.urandom(100)
    digest = digest_of(data)
    async with reg.http.post(reg.url(f"/v2/{repo_name}/blobs/uploads/"), params={"digest": digest},
                             data=data, headers=OCTET) as r:
        assert r.status == 201
        assert r.headers["Location"] == f"/v2/{repo_name}/blobs/{digest}"
    assert await fetch(reg, repo_name, digest) == data


async def test_empty_blob(reg: Registry, repo_name: str) -> None:
    digest = digest_of(b"")
    location = await start(reg, repo_name)
    async with reg.http.put(reg.url(location), params={"digest": digest}) as r:
        assert r.status == 201
    assert await fetch(reg, repo_name, digest) == b""


async def test_chunked_upload_with_content_range_then_put_without_body(reg: Registry, repo_name: str) -> None:
    data = os.urandom(3000)
    digest = digest_of(data)
    location = await start(reg, repo_name)
    for start_, end in ((0, 999), (1000, 1999), (2000, 2999)):
        async with reg.http.patch(reg.url(location), data=data[start_:end + 1],
                                  headers={**OCTET, "Content-Range": f"{start_}-{end}"}) as r:
            assert r.status == 202, await r.text()
            assert r.headers["Range"] == f"0-{end}"
            location = r.headers["Location"]
    async with reg.http.put(reg.url(location), params={"digest": digest}) as r:
        assert r.status == 201
    assert await fetch(reg, repo_name, digest) == data


async def test_chunked_upload_with_last_chunk_in_put(reg: Registry, repo_name: str) -> None:
    data = os.urandom(2500)
    digest = digest_of(data)
    location = await start(reg, repo_name)
    async with reg.http.patch(reg.url(location), data=data[:2000],
                              headers={**OCTET, "Content-Range": "0-1999"}) as r:
        assert r.status == 202
        location = r.headers["Location"]
    async with reg.http.put(reg.url(location), params={"digest": digest}, data=data[2000:],
                            headers={**OCTET, "Content-Range": "2000-2499"}) as r:
        assert r.status == 201, await r.text()
    assert await fetch(reg, repo_name, digest) == data


async def test_streamed_patch_without_content_range(reg: Registry, repo_name: str) -> None:
    """Docker's streamed upload: PATCH bodies without Content-Range append in order."""
    data = os.urandom(5000)
    digest = digest_of(data)
    location = await start(reg, repo_name)

    async def gen():  # chunked transfer encoding, no Content-Length
        for i in range(0, 3000, 700):
            yield data[i:min(i + 700, 3000)]

    async with reg.http.patch(reg.url(location), data=gen()) as r:
        assert r.status == 202
        assert r.headers["Range"] == "0-2999"
        location = r.headers["Location"]
    async with reg.http.patch(reg.url(location), data=data[3000:]) as r:
        assert r.status == 202
        assert r.headers["Range"] == "0-4999"
    async with reg.http.put(reg.url(location), params={"digest": digest}) as r:
        assert r.status == 201
    assert await fetch(reg, repo_name, digest) == data


async def test_out_of_order_and_overlapping_chunks_are_416(reg: Registry, repo_name: str) -> None:
    data = os.urandom(200)
    location = await start(reg, repo_name)
    async with reg.http.patch(reg.url(location), data=data[:100], headers={"Content-Range": "0-99"}) as r:
        assert r.status == 202
    for rng, chunk in (("150-199", data[150:]), ("50-149", data[50:150]), ("0-99", data[:100])):
        async with reg.http.patch(reg.url(location), data=chunk, headers={"Content-Range": rng}) as r:
            assert r.status == 416, rng
            assert await error_codes(r) == ["BLOB_UPLOAD_INVALID"]
            assert r.headers["Range"] == "0-99"
            assert "Location" in r.headers
    # the upload is intact and continues where it was
    async with reg.http.get(reg.url(location)) as r:
        assert r.status == 204
        assert r.headers["Range"] == "0-99"
    async with reg.http.patch(reg.url(location), data=data[100:], headers={"Content-Range": "100-199"}) as r:
        assert r.status == 202
    async with reg.http.put(reg.url(location), params={"digest": digest_of(data)}) as r:
        assert r.status == 201
    assert await fetch(reg, repo_name, digest_of(data)) == data


async def test_first_chunk_must_start_at_zero(reg: Registry, repo_name: str) -> None:
    location = await start(reg, repo_name)
    async with reg.http.patch(reg.url(location), data=b"abc", headers={"Content-Range": "5-7"}) as r:
        assert r.status == 416


async def test_content_range_must_match_length(reg: Registry, repo_name: str) -> None:
    location = await start(reg, repo_name)
    async with reg.http.patch(reg.url(location), data=b"abcd", headers={"Content-Range": "0-9"}) as r:
        assert r.status in (400, 416)
        await error_codes(r)
    async with reg.http.get(reg.url(location)) as r:
        assert r.status == 204
        assert r.headers["Range"] == "0-0"


@pytest.mark.parametrize("bad", ["garbage", "bytes=a-b", "-5", "5-", "10-2", "0-99999999999999999999999", " "])
async def test_garbage_content_range_is_a_client_error(reg: Registry, repo_name: str, bad: str) -> None:
    location = await start(reg, repo_name)
    async with reg.http.patch(reg.url(location), data=b"abc", headers={"Content-Range": bad}) as r:
        assert r.status in (400, 416), (bad, r.status)
        await error_codes(r)


async def test_upload_status(reg: Registry, repo_name: str) -> None:
    location = await start(reg, repo_name)
    upload_id = location.rsplit("/", 1)[1]
    async with reg.http.get(reg.url(location)) as r:
        assert r.status == 204
        assert r.headers["Range"] == "0-0"
        assert r.headers["Docker-Upload-UUID"] == upload_id
        assert r.headers["Location"] == location
    async with reg.http.patch(reg.url(location), data=b"x" * 10, headers={"Content-Range": "0-9"}) as r:
        assert r.status == 202
    async with reg.http.get(reg.url(location)) as r:
        assert r.status == 204
        assert r.headers["Range"] == "0-9"
        assert r.headers["Docker-Upload-UUID"] == upload_id


async def test_cancel_upload(reg: Registry, repo_name: str, dtr: DtrProcess) -> None:
    location = await start(reg, repo_name)
    upload_id = location.rsplit("/", 1)[1]
    async with reg.http.patch(reg.url(location), data=b"partial") as r:
        assert r.status == 202
    assert upload_id in upload_dirs(dtr)
    async with reg.http.delete(reg.url(location)) as r:
        assert r.status == 204
    assert upload_id not in upload_dirs(dtr)
    async with reg.http.get(reg.url(location)) as r:
        assert r.status == 404
        assert await error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]
    async with reg.http.patch(reg.url(location), data=b"more") as r:
        assert r.status == 404
    async with reg.http.put(reg.url(location), params={"digest": digest_of(b"partial")}) as r:
        assert r.status == 404
    async with reg.http.delete(reg.url(location)) as r:
        assert r.status == 404


async def test_unknown_or_malformed_upload_id(reg: Registry, repo_name: str) -> None:
    await start(reg, repo_name)
    for upload_id in ("0b9d7f8e-6a4c-4b83-9d4c-9a8b7c6d5e4f", "not-a-uuid"):
        async with reg.http.get(reg.url(f"/v2/{repo_name}/blobs/uploads/{upload_id}")) as r:
            assert r.status == 404
            assert await error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]


async def test_upload_belongs_to_its_repository(reg: Registry, repo_name: str) -> None:
    location = await start(reg, repo_name)
    upload_id = location.rsplit("/", 1)[1]
    other = repo_name + "-other"
    await start(reg, other)
    async with reg.http.get(reg.url(f"/v2/{other}/blobs/uploads/{upload_id}")) as r:
        assert r.status == 404
        assert await error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]


async def test_wrong_digest_leaves_nothing_behind(reg: Registry, repo_name: str, dtr: DtrProcess) -> None:
    data = os.urandom(300)
    claimed = digest_of(b"something else")
    before = upload_dirs(dtr)
    # single POST
    async with reg.http.post(reg.url(f"/v2/{repo_name}/blobs/uploads/"), params={"digest": claimed},
                             data=data, headers=OCTET) as r:
        assert r.status == 400
        assert await error_codes(r) == ["DIGEST_INVALID"]
    # POST then PUT
    location = await start(reg, repo_name)
    async with reg.http.put(reg.url(location), params={"digest": claimed}, data=data, headers=OCTET) as r:
        assert r.status == 400
        assert await error_codes(r) == ["DIGEST_INVALID"]
    assert upload_dirs(dtr) == before
    async with reg.http.get(reg.url(location)) as r:
        assert r.status == 404
    for digest in (claimed, digest_of(data)):
        assert await fetch(reg, repo_name, digest) is None
        assert not blob_file(dtr, digest).exists()


async def test_put_without_digest_is_400(reg: Registry, repo_name: str) -> None:
    location = await start(reg, repo_name)
    async with reg.http.put(reg.url(location), data=b"abc") as r:
        assert r.status == 400
        assert await error_codes(r) == ["DIGEST_INVALID"]
    async with reg.http.put(reg.url(location), params={"digest": "sha256:nothex"}, data=b"abc") as r:
        assert r.status == 400
        assert await error_codes(r) == ["DIGEST_INVALID"]


async def test_sha512_upload_chunked(reg: Registry, repo_name: str) -> None:
    data = os.urandom(4000)
    digest = digest_of(data, "sha512")
    location = await start(reg, repo_name)
    async with reg.http.patch(reg.url(location), data=data[:1500], headers={"Content-Range": "0-1499"}) as r:
        assert r.status == 202
    async with reg.http.put(reg.url(location), params={"digest": digest}, data=data[1500:]) as r:
        assert r.status == 201
        assert r.headers["Docker-Content-Digest"] == digest
    assert await fetch(reg, repo_name, digest) == data


async def test_mount_from_another_repository(reg: Registry, repo_name: str) -> None:
    data = os.urandom(64)
    digest = await reg.push_blob(repo_name, data)
    target = repo_name + "-mounted"
    async with reg.http.post(reg.url(f"/v2/{target}/blobs/uploads/"),
                             params={"mount": digest, "from": repo_name}) as r:
        assert r.status == 201
        assert r.headers["Location"] == f"/v2/{target}/blobs/{digest}"
        assert r.headers["Docker-Content-Digest"] == digest
    assert await fetch(reg, target, digest) == data


async def test_mount_without_from(reg: Registry, repo_name: str) -> None:
    """1.1: the registry MAY treat ``from`` as optional and mount the blob if it can be found."""
    data = os.urandom(64)
    digest = await reg.push_blob(repo_name, data)
    target = repo_name + "-auto"
    async with reg.http.post(reg.url(f"/v2/{target}/blobs/uploads/"), params={"mount": digest}) as r:
        assert r.status == 201
        assert r.headers["Location"] == f"/v2/{target}/blobs/{digest}"
    assert await fetch(reg, target, digest) == data


@pytest.mark.parametrize("case", ["not-in-source", "unknown-source", "unknown-digest", "bad-digest", "bad-from"])
async def test_failed_mount_falls_back_to_an_upload_session(reg: Registry, repo_name: str, case: str) -> None:
    data = os.urandom(64)
    digest = await reg.push_blob(repo_name, data)
    source = repo_name + "-src"
    await reg.push_blob(source)
    params = {
        "not-in-source": {"mount": digest, "from": source},
        "unknown-source": {"mount": digest, "from": repo_name + "-nowhere"},
        "unknown-digest": {"mount": digest_of(b"nobody has me"), "from": repo_name},
        "bad-digest": {"mount": "sha256:zz", "from": repo_name},
        "bad-from": {"mount": digest, "from": "../Bad"},
    }[case]
    target = repo_name + "-t"
    async with reg.http.post(reg.url(f"/v2/{target}/blobs/uploads/"), params=params) as r:
        assert r.status == 202, await r.text()
        location = r.headers["Location"]
    if case == "not-in-source":
        assert await fetch(reg, target, digest) is None
    async with reg.http.put(reg.url(location), params={"digest": digest}, data=data) as r:
        assert r.status == 201
    assert await fetch(reg, target, digest) == data


async def test_push_same_blob_twice_and_concurrently(reg: Registry, repo_name: str) -> None:
    import asyncio

    data = os.urandom(10000)
    results = await asyncio.gather(*(reg.push_blob(repo_name, data) for _ in range(4)))
    assert len(set(results)) == 1
    assert await fetch(reg, repo_name, results[0]) == data

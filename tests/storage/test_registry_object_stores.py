"""Chunked uploads on the object-store drivers (s3, cleversafe, swift) through a real dtr process.

An upload's PATCH requests cross part/segment boundaries at odd offsets, and dtr is killed
(SIGKILL) and restarted between them: the upload resumes from what the backend holds. A
cancelled upload leaves no multipart upload, segment or writer state behind.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
import boto3
import pytest

from tests.servers import DtrProcess
from tests.storage.sections import BUCKET, s3_server, storage_section
from tests.storage.servers import SwiftAIO

MiB = 1 << 20


def _leftovers(backend: str, request: pytest.FixtureRequest, root: str) -> list[str]:
    """Keys under ``root`` (and, for S3, multipart uploads in progress there)."""
    server = s3_server(backend, request)
    s3 = boto3.client("s3", endpoint_url=server.url, aws_access_key_id=server.access_key,
                      aws_secret_access_key=server.secret_key, region_name=server.region)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=root).get("Contents", [])]
    keys += [f"upload:{u['Key']}" for u in s3.list_multipart_uploads(Bucket=BUCKET, Prefix=root).get("Uploads", [])]
    return keys


@pytest.mark.parametrize("backend", ["s3-swift", "s3-moto", "cleversafe", "swift"])
async def test_chunked_upload_survives_restart(backend: str, request: pytest.FixtureRequest,
                                               dtr_factory: Callable[..., DtrProcess]) -> None:
    root = f"r{uuid.uuid4().hex[:10]}"
    dtr = dtr_factory({"storage": storage_section(backend, request, root)})
    data = os.urandom(13 * MiB + 4321)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    cuts = [0, 1234, 5 * MiB + 1, 5 * MiB + 2, 11 * MiB, len(data)]
    repo = f"chunked/{backend}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{dtr.url}/v2/{repo}/blobs/uploads/") as r:
            assert r.status == 202, await r.text()
            location = dtr.url + r.headers["Location"] if r.headers["Location"].startswith("/") else \
                r.headers["Location"]
        for i, (start, end) in enumerate(itertools.pairwise(cuts)):
            if i == 2:
                dtr.kill()  # a crash between two PATCHes: nothing of the upload lives in memory
                dtr.start()
            async with http.get(location) as r:
                assert r.status == 204
                assert r.headers["Range"] == f"0-{start - 1}" if start else r.headers.get("Range", "0-0") == "0-0"
            async with http.patch(location, data=data[start:end], headers={
                    "Content-Type": "application/octet-stream", "Content-Range": f"{start}-{end - 1}"}) as r:
                assert r.status == 202, await r.text()
                assert r.headers["Range"] == f"0-{end - 1}"
        async with http.put(f"{location}{'&' if '?' in location else '?'}digest={digest}") as r:
            assert r.status == 201, await r.text()
        async with http.get(f"{dtr.url}/v2/{repo}/blobs/{digest}") as r:
            assert r.status == 200
            assert await r.read() == data

        # a cancelled upload leaves nothing behind in the bucket
        async with http.post(f"{dtr.url}/v2/{repo}/blobs/uploads/") as r:
            cancel = dtr.url + r.headers["Location"]
        async with http.patch(cancel, data=data[: 6 * MiB], headers={"Content-Type": "application/octet-stream"}) as r:
            assert r.status == 202
        async with http.delete(cancel) as r:
            assert r.status == 204
    if backend != "swift":
        left = [k for k in _leftovers(backend, request, root) if "/blobs/" not in k]
        assert left == [], left


def test_swift_cancel_leaves_no_segments(request: pytest.FixtureRequest, dtr_factory: Callable[..., DtrProcess],
                                         tmp_path: Path) -> None:
    """Swift: after a cancelled upload only the blobs' own objects and segments remain."""
    import asyncio

    import swiftclient

    root = f"r{uuid.uuid4().hex[:10]}"
    dtr = dtr_factory({"storage": storage_section("swift", request, root)})
    swift: SwiftAIO = request.getfixturevalue("swift_server")

    async def run() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{dtr.url}/v2/cancel/swift/blobs/uploads/") as r:
                loc = dtr.url + r.headers["Location"]
            async with http.patch(loc, data=os.urandom(11 * MiB),
                                  headers={"Content-Type": "application/octet-stream"}) as r:
                assert r.status == 202
            async with http.delete(loc) as r:
                assert r.status == 204

    asyncio.run(run())
    conn = swiftclient.Connection(authurl=swift.auth_url, user=swift.user, key=swift.key)
    _, items = conn.get_container(BUCKET, prefix=f"{root}/", full_listing=True)
    assert [i["name"] for i in items] == []

"""``kill -9`` of dtr in the middle of pushes, then a restart on the same database and storage.

After the restart: no partial blob or manifest is visible, an interrupted upload either resumes
from the ``Range`` the registry reports or is cleanly cancelled and pushed again, and everything
committed before the kill is intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from tests.oci import OCI_MANIFEST, digest_of, image, push_blob, push_image
from tests.servers import DtrProcess

MIB = 1 << 20


async def push_seeded_image(http: aiohttp.ClientSession, url: str, repo: str, tag: str, seed: str
                            ) -> tuple[bytes, list[bytes]]:
    """A small image pushed over HTTP; returns (manifest bytes, its blobs)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layers = [os.urandom(300_000), os.urandom(1000)]
    return await push_image(http, url, repo, tag, config, layers), [config, *layers]


async def check_image(http: aiohttp.ClientSession, url: str, repo: str, tag: str, manifest: bytes,
                      blobs: list[bytes]) -> None:
    """The image is pullable and whole: manifest by tag and digest, every blob byte-equal."""
    for ref in (tag, digest_of(manifest)):
        async with http.get(f"{url}/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST}) as r:
            assert r.status == 200, await r.text()
            assert await r.read() == manifest
            assert r.headers["Docker-Content-Digest"] == digest_of(manifest)
    for blob in blobs:
        async with http.get(f"{url}/v2/{repo}/blobs/{digest_of(blob)}") as r:
            assert r.status == 200
            assert await r.read() == blob


async def head_status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.head(url) as r:
        return r.status


async def upload_range(http: aiohttp.ClientSession, url: str, location: str) -> int:
    """Bytes a non-empty upload holds, from GET upload status (``Range: 0-<last>``)."""
    async with http.get(f"{url}{location}") as r:
        assert r.status == 204, await r.text()
        return int(r.headers["Range"].split("-")[1]) + 1


async def resume_and_finish(http: aiohttp.ClientSession, url: str, repo: str, location: str, data: bytes,
                            have: int) -> None:
    """Send ``data[have:]`` with a Content-Range, close with the digest, read the blob back."""
    async with http.patch(f"{url}{location}", data=data[have:], headers={
            "Content-Range": f"{have}-{len(data) - 1}", "Content-Type": "application/octet-stream"}) as r:
        assert r.status == 202, await r.text()
        assert r.headers["Range"] == f"0-{len(data) - 1}"
        location = r.headers["Location"]
    async with http.put(f"{url}{location}", params={"digest": digest_of(data)}) as r:
        assert r.status == 201, await r.text()
    async with http.get(f"{url}/v2/{repo}/blobs/{digest_of(data)}") as r:
        assert r.status == 200
        assert await r.read() == data


async def wait_for_size(http: aiohttp.ClientSession, url: str, location: str, at_least: int) -> int:
    """Poll GET upload status until the registry holds ``at_least`` bytes."""
    for _ in range(600):
        async with http.get(f"{url}{location}") as r:
            size = int(r.headers["Range"].split("-")[1]) + 1
        if size >= at_least:
            return size
        await asyncio.sleep(0.05)
    raise AssertionError(f"upload never reached {at_least} bytes")


class Gate:
    """A request body that sends ``data`` up to ``stop_at`` and then hangs until the server dies."""

    def __init__(self, data: bytes, stop_at: int) -> None:
        self.data, self.stop_at = data, stop_at
        self.release = asyncio.Event()

    async def body(self) -> AsyncIterator[bytes]:
        for off in range(0, self.stop_at, MIB):
            yield self.data[off:min(off + MIB, self.stop_at)]
        await self.release.wait()
        yield self.data[self.stop_at:]


async def interrupted(request: Any) -> None:
    """Await a request that the server's death cuts off."""
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
        async with request as r:
            pytest.fail(f"the request finished with {r.status} although the server was killed")


async def outcome(request: Any) -> int | None:
    """The status of a request the server may or may not have answered before it died."""
    try:
        async with request as r:
            return int(r.status)
    except (TimeoutError, aiohttp.ClientError):
        return None


@pytest.fixture
async def crashy(dtr_factory: Callable[..., DtrProcess], http: aiohttp.ClientSession
                 ) -> tuple[DtrProcess, bytes, list[bytes]]:
    """A fresh dtr with an image ``base/image:v1`` committed before anything is killed."""
    proc = await asyncio.to_thread(dtr_factory)
    manifest, blobs = await push_seeded_image(http, proc.url, "base/image", "v1", "before the crash")
    return proc, manifest, blobs


async def restart(proc: DtrProcess) -> None:
    await asyncio.to_thread(proc.start)


async def test_kill_between_patches_then_resume(crashy: tuple[DtrProcess, bytes, list[bytes]],
                                                http: aiohttp.ClientSession) -> None:
    proc, manifest, blobs = crashy
    repo = "crash/between-patches"
    data = os.urandom(5 * MIB + 123)
    async with http.post(f"{proc.url}/v2/{repo}/blobs/uploads/") as r:
        location = r.headers["Location"]
    for i in range(3):
        async with http.patch(f"{proc.url}{location}", data=data[i * MIB:(i + 1) * MIB], headers={
                "Content-Range": f"{i * MIB}-{(i + 1) * MIB - 1}", "Content-Type": "application/octet-stream"}) as r:
            assert r.status == 202
            location = r.headers["Location"]

    proc.kill()
    await restart(proc)

    assert await head_status(http, f"{proc.url}/v2/{repo}/blobs/{digest_of(data)}") == 404
    assert await upload_range(http, proc.url, location) == 3 * MIB
    await resume_and_finish(http, proc.url, repo, location, data, 3 * MIB)
    await check_image(http, proc.url, "base/image", "v1", manifest, blobs)


async def test_kill_during_streaming_patch_then_resume(crashy: tuple[DtrProcess, bytes, list[bytes]],
                                                       http: aiohttp.ClientSession) -> None:
    proc, manifest, blobs = crashy
    repo = "crash/streaming-patch"
    data = os.urandom(24 * MIB)
    async with http.post(f"{proc.url}/v2/{repo}/blobs/uploads/") as r:
        location = r.headers["Location"]
    gate = Gate(data, 12 * MIB)
    patch = asyncio.ensure_future(interrupted(http.patch(
        f"{proc.url}{location}", data=gate.body(), headers={"Content-Type": "application/octet-stream"})))
    await wait_for_size(http, proc.url, location, 4 * MIB)

    proc.kill()
    gate.release.set()
    await patch
    await restart(proc)

    assert await head_status(http, f"{proc.url}/v2/{repo}/blobs/{digest_of(data)}") == 404
    have = await upload_range(http, proc.url, location)
    assert 4 * MIB <= have <= 12 * MIB
    # What the registry kept is exactly the prefix that was sent: the digest check at PUT proves it.
    await resume_and_finish(http, proc.url, repo, location, data, have)
    await check_image(http, proc.url, "base/image", "v1", manifest, blobs)


async def test_kill_during_streaming_put_then_restart_upload(crashy: tuple[DtrProcess, bytes, list[bytes]],
                                                             http: aiohttp.ClientSession) -> None:
    """A monolithic PUT cut off: the blob stays invisible; cancelling and pushing again works."""
    proc, manifest, blobs = crashy
    repo = "crash/streaming-put"
    data = os.urandom(16 * MIB)
    digest = digest_of(data)
    async with http.post(f"{proc.url}/v2/{repo}/blobs/uploads/") as r:
        location = r.headers["Location"]
    gate = Gate(data, 8 * MIB)
    put = asyncio.ensure_future(interrupted(http.put(
        f"{proc.url}{location}", params={"digest": digest}, data=gate.body(),
        headers={"Content-Type": "application/octet-stream"})))
    await wait_for_size(http, proc.url, location, 2 * MIB)

    proc.kill()
    gate.release.set()
    await put
    await restart(proc)

    assert await head_status(http, f"{proc.url}/v2/{repo}/blobs/{digest}") == 404
    async with http.delete(f"{proc.url}{location}") as r:
        assert r.status == 204
    async with http.get(f"{proc.url}{location}") as r:
        assert r.status == 404
    assert await push_blob(http, proc.url, repo, data) == digest
    async with http.get(f"{proc.url}/v2/{repo}/blobs/{digest}") as r:
        assert await r.read() == data
    await check_image(http, proc.url, "base/image", "v1", manifest, blobs)


async def test_kill_during_manifest_push(crashy: tuple[DtrProcess, bytes, list[bytes]],
                                         http: aiohttp.ClientSession) -> None:
    """Killed while a manifest body is half sent: no tag, no manifest; pushing it again works."""
    proc, manifest, blobs = crashy
    repo = "crash/manifest"
    config = b'{"architecture": "amd64", "os": "linux"}'
    layer = os.urandom(50_000)
    for blob in (config, layer):
        await push_blob(http, proc.url, repo, blob)
    new = image(config, [layer])
    # The tag "v1" already points at an older manifest; the interrupted push must not move it.
    old, old_blobs = await push_seeded_image(http, proc.url, repo, "v1", "older")

    _, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    writer.write((f"PUT /v2/{repo}/manifests/v1 HTTP/1.1\r\nHost: {proc.host}\r\n"
                  f"Content-Type: {OCI_MANIFEST}\r\nContent-Length: {len(new)}\r\n\r\n").encode()
                 + new[:len(new) // 2])
    await writer.drain()
    # The server is up, with the half-sent request in flight.
    assert await head_status(http, f"{proc.url}/v2/{repo}/manifests/v1") == 200
    proc.kill()
    writer.close()
    await restart(proc)

    assert await head_status(http, f"{proc.url}/v2/{repo}/manifests/{digest_of(new)}") == 404
    await check_image(http, proc.url, repo, "v1", old, old_blobs)
    async with http.put(f"{proc.url}/v2/{repo}/manifests/v1", data=new, headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 201, await r.text()
    await check_image(http, proc.url, repo, "v1", new, [config, layer])
    await check_image(http, proc.url, "base/image", "v1", manifest, blobs)


async def test_kill_during_commit_is_all_or_nothing(crashy: tuple[DtrProcess, bytes, list[bytes]],
                                                    http: aiohttp.ClientSession) -> None:
    """Killed while PUT ?digest= verifies and commits: the blob is either whole or not there."""
    proc, manifest, blobs = crashy
    repo = "crash/commit"
    data = os.urandom(64 * MIB)
    digest = digest_of(data)
    async with http.post(f"{proc.url}/v2/{repo}/blobs/uploads/") as r:
        location = r.headers["Location"]
    async with http.patch(f"{proc.url}{location}", data=data,
                          headers={"Content-Type": "application/octet-stream"}) as r:
        location = r.headers["Location"]
    proc.kill()  # a restart drops the in-memory hash: the PUT below rehashes 64 MiB
    await restart(proc)

    put = asyncio.ensure_future(outcome(http.put(f"{proc.url}{location}", params={"digest": digest})))
    await asyncio.sleep(0.05)
    proc.kill()
    assert await put in (None, 201)
    await restart(proc)

    if await head_status(http, f"{proc.url}/v2/{repo}/blobs/{digest}") == 200:
        async with http.get(f"{proc.url}/v2/{repo}/blobs/{digest}") as r:
            assert await r.read() == data
    else:
        async with http.get(f"{proc.url}{location}") as r:
            status = r.status
        if status == 204:
            async with http.put(f"{proc.url}{location}", params={"digest": digest}) as r:
                assert r.status == 201, await r.text()
        else:
            assert status == 404
            await push_blob(http, proc.url, repo, data)
        async with http.get(f"{proc.url}/v2/{repo}/blobs/{digest}") as r:
            assert await r.read() == data
    await check_image(http, proc.url, "base/image", "v1", manifest, blobs)

"""Two replicas on one Postgres and one storage: what one writes, the other serves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.oci import OCI_MANIFEST, digest_of, push_image
from tests.servers import DtrProcess, create_database

pytestmark = pytest.mark.asyncio


@pytest.fixture
def replicas(pg_uri: str, tmp_path: Path) -> Iterator[tuple[DtrProcess, DtrProcess]]:
    url = create_database(pg_uri)
    storage = {"storage": {"filesystem": {"rootdirectory": str(tmp_path / "shared-storage")}}}
    a = DtrProcess(tmp_path / "a", url, storage).start()
    b = DtrProcess(tmp_path / "b", url, storage).start()
    yield a, b
    a.stop()
    b.stop()


async def _push_image(http: aiohttp.ClientSession, base: str, repo: str, tag: str, content: bytes) -> str:
    config = json.dumps({"architecture": "amd64", "os": "linux", "note": content.decode()}).encode()
    return digest_of(await push_image(http, base, repo, tag, config, [content]))


async def _digest_of(http: aiohttp.ClientSession, base: str, repo: str, tag: str) -> str | None:
    async with http.head(f"{base}/v2/{repo}/manifests/{tag}",
                         headers={"Accept": OCI_MANIFEST}) as r:
        return r.headers.get("Docker-Content-Digest") if r.status == 200 else None


async def _eventually(http: aiohttp.ClientSession, base: str, repo: str, tag: str, want: str | None) -> None:
    """Replicas converge as soon as the change notification arrives (bounded wait, not a timing check)."""
    for _ in range(100):
        if await _digest_of(http, base, repo, tag) == want:
            return
        await asyncio.sleep(0.05)
    assert await _digest_of(http, base, repo, tag) == want


async def test_tag_moves_and_deletes_reach_the_other_replica(
    replicas: tuple[DtrProcess, DtrProcess], http: aiohttp.ClientSession
) -> None:
    a, b = replicas
    repo = "ha/app"
    first = await _push_image(http, a.url, repo, "latest", b"one")
    assert await _digest_of(http, a.url, repo, "latest") == first
    # B serves it (and caches it), and A's own read after its write is never stale.
    await _eventually(http, b.url, repo, "latest", first)
    assert await _digest_of(http, b.url, repo, "latest") == first

    second = await _push_image(http, a.url, repo, "latest", b"two")
    assert await _digest_of(http, a.url, repo, "latest") == second
    await _eventually(http, b.url, repo, "latest", second)

    async with http.delete(f"{b.url}/v2/{repo}/manifests/latest") as r:
        assert r.status == 202
    assert await _digest_of(http, b.url, repo, "latest") is None
    await _eventually(http, a.url, repo, "latest", None)


async def test_blob_pushed_to_one_replica_is_pulled_from_the_other(
    replicas: tuple[DtrProcess, DtrProcess], http: aiohttp.ClientSession
) -> None:
    a, b = replicas
    data = b"x" * 300_000
    digest = digest_of(data)
    async with http.post(f"{a.url}/v2/ha/blob/blobs/uploads/") as r:
        location = r.headers["Location"]
    # Continue the upload on the other replica: uploads are shared state, not process state.
    async with http.patch(f"{b.url}{location}", data=data[:100_000]) as r:
        assert r.status == 202
    async with http.patch(f"{a.url}{location}", data=data[100_000:]) as r:
        assert r.status == 202
    async with http.put(f"{b.url}{location}?digest={digest}") as r:
        assert r.status == 201, await r.text()
    async with http.get(f"{a.url}/v2/ha/blob/blobs/{digest}") as r:
        assert r.status == 200
        assert await r.read() == data

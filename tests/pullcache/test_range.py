"""A ``Range`` request for a blob the cache has not stored yet, from an aiohttp client, against a
cache namespace of Go's reference registry: 206 with the range's bytes, the whole blob stored
(then served by dtr itself once the upstream is gone); 416 for a range past its end."""

from __future__ import annotations

import os
from collections.abc import Callable

import aiohttp

from tests.clients.engines import ReferenceRegistry
from tests.oci import digest_of
from tests.pullcache.conftest import Caches
from tests.pullcache.test_upstream import _headers


async def _upload(http: aiohttp.ClientSession, base: str, repo: str, blob: bytes) -> str:
    """Push ``blob`` to Go's registry (POST, then PUT ?digest=); its digest."""
    async with http.post(f"{base}/v2/{repo}/blobs/uploads/") as r:
        assert r.status == 202, await r.text()
        location = r.headers["Location"]
    sep = "&" if "?" in location else "?"
    url = location if "://" in location else base + location
    async with http.put(f"{url}{sep}digest={digest_of(blob)}", data=blob,
                        headers={"Content-Type": "application/octet-stream"}) as r:
        assert r.status == 201, await r.text()
    return digest_of(blob)


async def test_a_range_of_an_uncached_blob_is_answered_206_and_the_blob_cached_whole(
        caches: Caches, upstreams: Callable[..., ReferenceRegistry], http: aiohttp.ClientSession) -> None:
    upstream = upstreams()
    org = caches.make(upstream.url)
    repo = f"{org}/app"
    blob, other = os.urandom(3 << 20), os.urandom(5000)  # several of dtr's 1 MiB chunks
    digest, other_digest = await _upload(http, upstream.url, "app", blob), await _upload(http, upstream.url, "app",
                                                                                          other)
    base = f"{caches.proc.url}/v2/{repo}/blobs"
    h = _headers(caches, repo)
    start, end = (1 << 20) - 10, (2 << 20) + 20  # across chunk boundaries
    async with http.get(f"{base}/{digest}", headers={**h, "Range": f"bytes={start}-{end}"}) as r:
        assert r.status == 206, r.headers
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(blob)}"
        assert await r.read() == blob[start:end + 1]
    async with http.get(f"{base}/{other_digest}", headers={**h, "Range": f"bytes={len(other)}-"}) as r:
        assert r.status == 416
        assert r.headers["Content-Range"] == f"bytes */{len(other)}"
    async with http.get(f"{base}/{other_digest}", headers={**h, "Range": "bytes=-100"}) as r:
        assert r.status == 206 and await r.read() == other[-100:]

    upstream.stop()  # what follows is dtr's own
    async with http.get(f"{base}/{digest}", headers=h) as r:
        assert r.status == 200 and await r.read() == blob
    async with http.get(f"{base}/{other_digest}", headers={**h, "Range": "bytes=10-"}) as r:
        assert r.status == 206 and await r.read() == other[10:]

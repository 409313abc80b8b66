"""An upstream written here in aiohttp (Docker token auth: a Bearer challenge, a token for basic
credentials) that sends a tampered blob, or a slow one: a blob whose digest does not match is
never served whole nor stored; a client leaving mid-stream leaves nothing stored."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.auth.constants import ADMIN_AUTH
from tests.oci import ALL_MANIFEST_TYPES, OCI_MANIFEST, digest_of, image
from tests.pullcache.conftest import Caches
from tests.servers import free_port

SLOW_SIZE = 8 << 20


class FakeUpstream:
    """Serves one image ``app:1`` (config, ``layer``, ``slow``) behind token auth; the layer's
    bytes are tampered, the slow blob trickles; ``aborted`` is set when a reader of it goes away."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        self.layer = os.urandom(4096)
        self.slow = os.urandom(SLOW_SIZE)
        self.manifest = image(self.config, [self.layer, self.slow])
        self.blobs = {digest_of(self.config): self.config, digest_of(self.layer): b"X" + self.layer[1:],
                      digest_of(self.slow): self.slow}
        self.aborted = asyncio.Event()
        self.tokens_issued = 0

    async def token(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Basic " + base64.b64encode(b"mirror:secret").decode():
            return web.Response(status=401)
        self.tokens_issued += 1
        return web.json_response({"token": "t0k", "expires_in": 300})

    async def v2(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer t0k":
            return web.Response(status=401, headers={"WWW-Authenticate": f'Bearer realm="{self.url}/token",'
                                                                         'service="fake",scope="repository:app:pull"'})
        tail = request.match_info["tail"]
        if tail == "app/manifests/1" or tail == f"app/manifests/{digest_of(self.manifest)}":
            return web.Response(body=self.manifest if request.method == "GET" else None, headers={
                "Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest_of(self.manifest),
                "Content-Length": str(len(self.manifest))})
        digest = tail.removeprefix("app/blobs/")
        if digest not in self.blobs:
            return web.Response(status=404)
        data = self.blobs[digest]
        if data is not self.slow or request.method == "HEAD":
            return web.Response(body=data if request.method == "GET" else None,
                                headers={"Content-Length": str(len(data))})
        resp = web.StreamResponse()
        resp.content_length = len(data)
        await resp.prepare(request)
        try:
            for i in range(0, len(data), 1 << 16):
                await resp.write(data[i:i + (1 << 16)])
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            self.aborted.set()
            raise
        return resp

    async def __aenter__(self) -> FakeUpstream:
        app = web.Application()
        app.router.add_get("/token", self.token)
        app.router.add_route("*", "/v2/{tail:.*}", self.v2)
        self.runner = web.AppRunner(app, handler_cancellation=True)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as upstream:
        yield upstream


def _headers(caches: Caches, repo: str) -> dict[str, str]:
    token = caches.client.bearer([f"repository:{repo}:pull"], ADMIN_AUTH)
    return {"Authorization": f"Bearer {token}", "Accept": ALL_MANIFEST_TYPES}


async def test_a_tampered_blob_is_refused_and_nothing_stored(caches: Caches, fake: FakeUpstream,
                                                             http: aiohttp.ClientSession) -> None:
    org = caches.make(fake.url, username="mirror", password="secret")
    repo = f"{org}/app"
    base = f"{caches.proc.url}/v2/{repo}"
    h = _headers(caches, repo)
    async with http.get(f"{base}/manifests/1", headers=h) as r:
        assert r.status == 200
        assert await r.read() == fake.manifest
        assert r.headers["Docker-Content-Digest"] == digest_of(fake.manifest)
    assert fake.tokens_issued >= 1
    async with http.get(f"{base}/blobs/{digest_of(fake.config)}", headers=h) as r:
        assert r.status == 200 and await r.read() == fake.config
    with pytest.raises(aiohttp.ClientError):
        async with http.get(f"{base}/blobs/{digest_of(fake.layer)}", headers=h) as r:
            await r.read()  # cut before its last bytes: never the whole wrong body
    await fake.__aexit__()
    async with http.head(f"{base}/blobs/{digest_of(fake.config)}", headers=h) as r:
        assert r.status == 200  # stored
    for path in (f"blobs/{digest_of(fake.layer)}", "manifests/1"):
        async with http.get(f"{base}/{path}", headers=h) as r:
            assert r.status == 503, path  # not stored: only the (gone) upstream could answer
            assert (await r.json())["errors"][0]["code"] == "UNAVAILABLE"
    assert "digest does not match" in caches.proc.log_path.read_text()


async def test_a_client_leaving_mid_stream_leaves_nothing(caches: Caches, fake: FakeUpstream,
                                                          http: aiohttp.ClientSession) -> None:
    org = caches.make(fake.url, username="mirror", password="secret")
    repo = f"{org}/app"
    url = f"{caches.proc.url}/v2/{repo}/blobs/{digest_of(fake.slow)}"
    h = _headers(caches, repo)
    r = await http.get(url, headers=h)
    assert r.status == 200 and r.content_length == SLOW_SIZE
    assert len(await r.content.readexactly(1 << 16)) == 1 << 16
    r.close()
    await asyncio.wait_for(fake.aborted.wait(), 60)  # dtr stopped reading the upstream
    await fake.__aexit__()
    async with http.head(url, headers=h) as r:
        assert r.status == 503

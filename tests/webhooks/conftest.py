"""Webhook tests' world: the in-process app (auth on, a fast job worker, short delivery timeout
and backoff), an organisation ``acme`` with ``acme/app`` (``alice`` its admin through a team,
``bob`` read-write), and real receivers on 127.0.0.1 (``Receivers``): ``/ok`` answers 200,
``/flaky`` 500 then 200, ``/hang`` never answers; ``closer`` accepts and closes the connection;
``dead`` is a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.auth.client import basic
from tests.auth.constants import ADMIN_AUTH, PASSWORD, auth_config
from tests.scanning.api_world import token
from tests.servers import free_port
from tests.trust.notary_tools import TestCA

Client = TestClient[web.Request, web.Application]
#: How long a test waits for something the job does (a bound, not a timing assertion).
WAIT = 60.0


@dataclasses.dataclass
class Got:
    path: str
    headers: dict[str, str]
    body: bytes


class Receivers:
    """HTTP receivers recording what they got."""

    def __init__(self) -> None:
        self.got: list[Got] = []
        self.calls: dict[str, int] = {}
        self.base = ""
        self.closer = ""
        self.dead = f"http://127.0.0.1:{free_port()}/hook"
        self._arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["name"]
        self.calls[path] = n = self.calls.get(path, 0) + 1
        self.got.append(Got(path, dict(request.headers), await request.read()))
        self._arrived.set()
        if path.startswith("hang"):
            await asyncio.sleep(3600)
        if path.startswith("flaky") and n == 1:
            return web.Response(status=500, text="not yet")
        if path.startswith("fail"):
            return web.Response(status=500, text="never")
        return web.Response(text="thanks")

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def of(self, name: str) -> list[Got]:
        return [g for g in self.got if g.path == name]

    async def wait_for(self, name: str, n: int = 1) -> list[Got]:
        """The first ``n`` requests ``name`` got, once it got them."""
        async with asyncio.timeout(WAIT):
            while len(self.of(name)) < n:
                self._arrived.clear()
                await self._arrived.wait()
        return self.of(name)


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    r = Receivers()
    app = web.Application()
    app.router.add_post("/{name}", r.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    r.base = f"http://127.0.0.1:{runner.addresses[0][1]}"

    def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    closer = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    r.closer = f"http://127.0.0.1:{closer.sockets[0].getsockname()[1]}/hook"
    try:
        yield r
    finally:
        closer.close()
        with contextlib.suppress(Exception):
            await runner.cleanup()


@pytest.fixture
async def tls_receiver(receivers: Receivers, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """An https receiver (the ``receivers``' handler) with a certificate of a test CA: (its base URL, the CA's PEM)."""
    ca = TestCA(tmp_path / "ca")
    chain, key = ca.server_cert("receiver")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key)
    app = web.Application()
    app.router.add_post("/{name}", receivers.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}", ca.pem
    finally:
        await runner.cleanup()


@pytest.fixture
def app_extra() -> dict[str, Any]:
    return {**auth_config(), "jobs": {"poll_interval": 0.2},
            "webhooks": {"timeout": 3, "retry_backoff": 0.2, "retry_backoff_max": 1, "max_attempts": 3}}


@dataclasses.dataclass
class World:
    client: Client
    base: str

    async def call(self, method: str, path: str, who: str | None = "admin", body: Any = None,
                   expect: int | tuple[int, ...] | None = 200) -> Any:
        headers = {} if who is None else {"Authorization": basic(*_creds(who))}
        async with self.client.request(method, f"/api/v0{path}", json=body, headers=headers) as r:
            raw = await r.read()
            if expect is not None:
                allowed = expect if isinstance(expect, tuple) else (expect,)
                assert r.status in allowed, f"{method} {path} as {who}: {r.status} {raw[:500]!r}"
            return json.loads(raw) if raw else None

    async def hook(self, type_: str, key: str, endpoint: str, who: str = "admin", **extra: Any) -> dict[str, Any]:
        return dict(await self.call("POST", "/webhooks", who, {"type": type_, "key": key, "endpoint": endpoint,
                                                               **extra}, expect=201))

    async def deliveries(self, hook: dict[str, Any]) -> list[dict[str, Any]]:
        return list((await self.call("GET", f"/webhooks/{hook['id']}/deliveries"))["deliveries"])

    async def settled(self, hook: dict[str, Any], n: int = 1) -> list[dict[str, Any]]:
        """The hook's deliveries once ``n`` exist and none is pending."""
        async with asyncio.timeout(WAIT):
            while True:
                found = await self.deliveries(hook)
                if len(found) >= n and all(d["status"] != "pending" for d in found):
                    return found
                await asyncio.sleep(0.1)

    async def bearer(self, repo: str) -> dict[str, str]:
        return await token(self.client, self.base, repo)


def _creds(who: str) -> tuple[str, str]:
    return ADMIN_AUTH if who == "admin" else (who, PASSWORD)


@pytest.fixture
async def world(app_client: Client, app_base: str) -> World:
    w = World(app_client, app_base)
    for name in ("alice", "bob"):
        await w.call("POST", "/accounts", body={"name": name, "password": PASSWORD}, expect=201)
    await w.call("POST", "/accounts", body={"name": "acme", "isOrg": True}, expect=201)
    await w.call("POST", "/repositories/acme", body={"name": "app", "visibility": "private"}, expect=201)
    for team, member, level in (("admins", "alice", "admin"), ("writers", "bob", "read-write")):
        await w.call("POST", "/accounts/acme/teams", body={"name": team}, expect=201)
        await w.call("PUT", f"/accounts/acme/teams/{team}/members/{member}", body={}, expect=(200, 204))
        await w.call("PUT", f"/repositories/acme/app/teamAccess/{team}", body={"accessLevel": level},
                     expect=(200, 201))
    return w

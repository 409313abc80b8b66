"""``dtr.keys.ACTOR``: every /v2 request that passes the token check carries who acts (the token's
subject, "" for anonymous or with auth off, and the client address).

The handlers that change something pass it to the registry (the outbox tests see it in the
events); here the real application runs in-process (its own database, a real socket) with one
more middleware that notes what each request carried, refused ones included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dtr.app import create_app
from dtr.config import load_config
from dtr.keys import ACTOR
from dtr.registry.changes import Actor
from tests.auth.constants import ADMIN, ADMIN_PASSWORD, auth_config
from tests.servers import DtrProcess, create_database

Seen = dict[str, Actor | None]


async def _serve(workdir: Path, pg_uri: str, extra: dict[str, Any] | None) -> AsyncIterator[tuple[str, Seen]]:
    proc = DtrProcess(workdir, create_database(pg_uri), extra)  # its config file; never started
    app = create_app(load_config(proc.config_path, environ={}))
    seen: Seen = {}

    @web.middleware
    async def note(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        resp = await handler(request)
        if request.path.startswith("/v2/"):
            seen[f"{request.method} {request.path}"] = request.get(ACTOR)
        return resp

    app.middlewares.append(note)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", proc.port).start()
    try:
        yield proc.url, seen
    finally:
        await runner.cleanup()


@pytest.fixture
async def auth_off(tmp_path: Path, pg_uri: str) -> AsyncIterator[tuple[str, Seen]]:
    async for served in _serve(tmp_path, pg_uri, None):
        yield served


@pytest.fixture
async def auth_on(tmp_path: Path, pg_uri: str) -> AsyncIterator[tuple[str, Seen]]:
    async for served in _serve(tmp_path, pg_uri, auth_config()):
        yield served


async def test_the_actor_with_auth_off(auth_off: tuple[str, Seen], http: aiohttp.ClientSession) -> None:
    url, seen = auth_off
    async with http.get(f"{url}/v2/actor/x/tags/list") as r:
        assert r.status == 404  # NAME_UNKNOWN from the handler: it ran
    async with http.get(f"{url}/v2/actor/x/nonsense") as r:
        assert r.status == 404  # in no route table entry: no token check, no actor
    assert seen == {"GET /v2/actor/x/tags/list": Actor("", "127.0.0.1"), "GET /v2/actor/x/nonsense": None}


async def test_the_actor_with_auth_on(auth_on: tuple[str, Seen], http: aiohttp.ClientSession) -> None:
    url, seen = auth_on
    service = url.split("//", 1)[1]

    async def v2(path: str, who: tuple[str, str] | None) -> int:
        headers = {"Authorization": aiohttp.encode_basic_auth(*who)} if who else {}
        async with http.get(f"{url}/auth/token", params={"service": service, "scope": "repository:admin/app:pull"},
                            headers=headers) as r:
            assert r.status == 200, await r.text()
            token = (await r.json())["token"]
        async with http.get(f"{url}/v2/{path}", headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status

    assert await v2("admin/app/tags/list", (ADMIN, ADMIN_PASSWORD)) == 404  # the handler ran: no such repository
    assert seen.pop("GET /v2/admin/app/tags/list") == Actor(ADMIN, "127.0.0.1")
    assert await v2("", None) == 200
    assert seen.pop("GET /v2/") == Actor("", "127.0.0.1")
    assert await v2("admin/app/tags/list", None) == 401  # not covered: refused, no actor
    assert seen == {"GET /v2/admin/app/tags/list": None}

"""A tiny aiohttp reverse proxy that injects faults between a storage driver and its server.

    proxy = await FaultProxy("http://127.0.0.1:9000").start()
    proxy.add(Fault("status", method="PUT", times=1, status=503))   # one 503 before forwarding
    proxy.add(Fault("reset", path=r"/bucket/", when="after"))       # backend did it, reply lost
    proxy.clear(); await proxy.stop()

Kinds: ``status`` (answer ``status`` instead of the backend), ``reset`` (abort the TCP connection),
``delay`` (sleep ``seconds``, then forward), ``truncate`` (send part of the response body, then
abort). ``when="before"`` fails the request without the backend seeing it; ``when="after"``
forwards it first, so the backend has done the work but the client never learns so. A fault
matches on method, a regex over the path + query, and applies ``times`` times (-1: always)
after letting ``skip`` matching requests through. ``hits`` counts the faults injected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Literal

import aiohttp
from aiohttp import web

from tests.servers import free_port

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
        "proxy-authenticate", "content-length"}


@dataclasses.dataclass
class Fault:
    kind: Literal["status", "reset", "delay", "truncate"]
    method: str | None = None
    path: str | None = None
    times: int = 1
    skip: int = 0
    when: Literal["before", "after"] = "before"
    status: int = 500
    seconds: float = 30.0
    hits: int = 0

    def matches(self, request: web.Request) -> bool:
        if self.times == 0:
            return False
        if self.method and request.method != self.method.upper():
            return False
        if self.path and not re.search(self.path, request.path_qs):
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.times > 0:
            self.times -= 1
        self.hits += 1
        return True


class FaultProxy:
    """Forwards every request to ``upstream`` (scheme://host:port) unless a fault says otherwise."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self.faults: list[Fault] = []
        #: (method, path_qs) of every request seen, for assertions on what a driver sent.
        self.requests: list[tuple[str, str]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()
        self.requests.clear()

    async def start(self) -> FaultProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=1 << 40)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _fault(self, request: web.Request, when: str) -> Fault | None:
        for f in self.faults:
            if f.when == when and f.matches(request):
                return f
        return None

    async def _inject(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault.kind == "status":
            return web.Response(status=fault.status, text=f"injected fault {fault.status}\n")
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            return web.Response(status=503, text="injected delay\n")
        _abort(request)
        raise asyncio.CancelledError  # the handler ends with the connection

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        self.requests.append((request.method, request.path_qs))
        fault = self._fault(request, "before")
        if fault is not None and fault.kind != "delay" and fault.kind != "truncate":
            await request.read()
            return await self._inject(request, fault)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        # The Host header is kept as the client sent it: it is part of signed requests (SigV4, ...).
        body = await request.read() if request.body_exists else None
        if body is not None and "Content-Length" in request.headers:
            headers["Content-Length"] = str(len(body))
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=body, allow_redirects=False) as up:
            after = self._fault(request, "after")
            if after is not None and after.kind != "truncate":
                await up.read()
                return await self._inject(request, after)
            truncate = fault if fault is not None and fault.kind == "truncate" else after
            resp = web.StreamResponse(status=up.status, reason=up.reason)
            for k, v in up.headers.items():
                if k.lower() not in _HOP or k.lower() == "content-length":
                    resp.headers.add(k, v)
            await resp.prepare(request)
            sent = 0
            cut = min(1 << 16, max((up.content_length or 2) // 2, 1))
            async for chunk in up.content.iter_chunked(1 << 16):
                if truncate is not None and sent + len(chunk) > cut:
                    await resp.write(chunk[: max(cut - sent, 0)])
                    await asyncio.sleep(0.05)
                    _abort(request)
                    raise asyncio.CancelledError
                await resp.write(chunk)
                sent += len(chunk)
            await resp.write_eof()
            return resp


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()

"""The server starts, answers /v2/ and its health and metrics endpoints."""

from __future__ import annotations

import aiohttp

from tests.servers import DtrProcess


async def test_base_endpoint(dtr: DtrProcess, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{dtr.url}/v2/") as r:
        assert r.status == 200
        assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert await r.json() == {}


async def test_ping_and_metrics(dtr: DtrProcess, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{dtr.url}/_ping") as r:
        assert r.status == 200
        assert (await r.json())["status"] == "ok"
    async with http.get(f"{dtr.url}/metrics") as r:
        assert r.status == 200
        assert "dtr_http_requests_total" in await r.text()

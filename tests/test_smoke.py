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


async def test_request_metrics_count_every_request(dtr: DtrProcess, http: aiohttp.ClientSession) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    async def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async with http.get(f"{dtr.url}/metrics") as r:
            text = await r.text()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}

    before = await samples()
    for _ in range(7):
        async with http.get(f"{dtr.url}/v2/smoke/metrics/tags/list") as r:
            assert r.status == 404
    after = await samples()
    key = ("dtr_http_requests_total", (("area", "tags"), ("method", "GET"), ("status", "404")))
    assert after[key] - before.get(key, 0) == 7
    count = ("dtr_http_request_seconds_count", (("area", "tags"), ("method", "GET")))
    inf = ("dtr_http_request_seconds_bucket", (("area", "tags"), ("le", "+Inf"), ("method", "GET")))
    assert after[count] == after[inf] >= 7
    assert after[("dtr_http_request_seconds_sum", (("area", "tags"), ("method", "GET")))] > 0

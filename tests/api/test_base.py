"""end-1 (GET /v2/), the error body, statuses and the API version header on every answer."""

from __future__ import annotations

from tests.api.helpers import Registry, error_codes

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")


async def test_base_is_200_with_api_version(reg: Registry) -> None:
    for method in ("GET", "HEAD"):
        async with reg.http.request(method, reg.url("/v2/")) as r:
            assert r.status == 200
            assert r.headers[API_VERSION[0]] == API_VERSION[1]


async def test_v2_without_slash_redirects_to_base(reg: Registry) -> None:
    async with reg.http.get(reg.url("/v2"), allow_redirects=False) as r:
        assert r.status == 301
        assert r.headers["Location"] == "/v2/"


async def test_base_refuses_other_methods(reg: Registry) -> None:
    async with reg.http.post(reg.url("/v2/")) as r:
        assert r.status == 405
        assert await error_codes(r) == ["UNSUPPORTED"]


async def test_error_body_shape_and_header(reg: Registry, repo_name: str) -> None:
    """A 4XX with a JSON body has {"errors": [{code, message, detail}]}, codes from the spec's table."""
    async with reg.http.get(reg.url(f"/v2/{repo_name}/manifests/latest")) as r:
        assert r.status == 404
        assert r.headers[API_VERSION[0]] == API_VERSION[1]
        assert await error_codes(r) == ["NAME_UNKNOWN"]
        body = await r.json()
        assert isinstance(body["errors"][0]["message"], str)


async def test_unknown_endpoint_is_404_json(reg: Registry) -> None:
    async with reg.http.get(reg.url("/v2/foo/bar/nothing-here")) as r:
        assert r.status == 404
        assert r.headers[API_VERSION[0]] == API_VERSION[1]
        await error_codes(r)


async def test_wrong_method_is_405_with_allow(reg: Registry, repo_name: str) -> None:
    async with reg.http.post(reg.url(f"/v2/{repo_name}/manifests/latest")) as r:
        assert r.status == 405
        assert await error_codes(r) == ["UNSUPPORTED"]
        assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}
    async with reg.http.put(reg.url(f"/v2/{repo_name}/tags/list")) as r:
        assert r.status == 405
    async with reg.http.patch(reg.url("/v2/_catalog")) as r:
        assert r.status == 405
        assert r.headers[API_VERSION[0]] == API_VERSION[1]

"""/api/v0 as a whole, through a real server: aiohttp's own errors answered with declared codes,
and the OpenAPI document listing each endpoint's error codes."""

from __future__ import annotations

from typing import Any

import pytest

from dtr.api.errors import ALL
from tests.auth.client import Client
from tests.servers import DtrProcess


@pytest.fixture(scope="module")
def api(dtr: DtrProcess) -> Client:
    return Client(dtr.url)


def test_unknown_endpoint_method_and_large_body_get_declared_codes(api: Client) -> None:
    r = api.api("GET", "/no/such/endpoint")
    assert (r.status, r.error_code) == (404, "NOT_FOUND")
    r = api.api("PUT", "/accounts")
    assert (r.status, r.error_code) == (405, "METHOD_NOT_ALLOWED")
    assert set(r.headers["Allow"].split(",")) >= {"GET", "POST"}
    r = api.request("POST", "/api/v0/accounts", data=b'{"name": "' + b"x" * (2 << 20) + b'"}',
                    headers={"Content-Type": "application/json"})
    assert (r.status, r.error_code) == (413, "PAYLOAD_TOO_LARGE")
    r = api.request("POST", "/api/v0/accounts", data=b"{not json", headers={"Content-Type": "application/json"})
    assert (r.status, r.error_code) == (400, "INVALID_JSON")
    r = api.api("GET", "/accounts/nobody-at-all")
    assert (r.status, r.error_code) == (404, "NO_SUCH_ACCOUNT")
    r = api.api("GET", "/repositories/nobody-at-all/app")
    assert (r.status, r.error_code) == (404, "NO_SUCH_REPOSITORY")


def _codes(op: dict[str, Any]) -> dict[str, set[str]]:
    return {status: set(resp["content"]["application/json"]["examples"])
            for status, resp in op["responses"].items() if not status.startswith("2")}


def test_openapi_lists_each_endpoints_error_codes(api: Client) -> None:
    doc = api.api("GET", "/docs.json", expect=200).json()
    assert "Errors" in doc["components"]["schemas"]
    create = _codes(doc["paths"]["/api/v0/accounts"]["post"])
    assert create["400"] >= {"INVALID_JSON", "INVALID_NAME", "INVALID_PASSWORD"}
    assert create["403"] == {"FORBIDDEN"} and create["409"] == {"CONFLICT"} and create["401"] == {"UNAUTHORIZED"}
    grant = _codes(doc["paths"]["/api/v0/repositories/{namespace}/{repo}/teamAccess/{team}"]["delete"])
    assert grant["404"] == {"NO_SUCH_REPOSITORY", "NO_SUCH_TEAM", "NO_SUCH_GRANT"}
    assert _codes(doc["paths"]["/api/v0/jobs/{id}"]["get"])["404"] == {"NO_SUCH_JOB"}
    post = doc["paths"]["/api/v0/accounts"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NewAccount"}
    assert post["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Account"}
    assert {"additionalProperties": False}.items() <= doc["components"]["schemas"]["NewAccount"].items()
    jobs = doc["paths"]["/api/v0/jobs"]["get"]
    assert {p["name"] for p in jobs["parameters"]} >= {"pageStart", "pageSize", "action", "status"}
    assert "X-Next-Page-Start" in jobs["responses"]["200"]["headers"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            found = _codes(op)
            assert {"401", "429", "500"} <= set(found), (method, path)
            if path.startswith(("/api/v0/jobs", "/api/v0/crons", "/api/v0/workers", "/api/v0/usage")) \
                    or "pruning" in path:  # site admins only
                assert found["403"] == {"FORBIDDEN"}, (method, path)
            for status, names in found.items():
                assert all(ALL[n].status == int(status) for n in names), (method, path, status)


def test_every_405_names_the_allowed_methods(api: Client) -> None:
    doc = api.api("GET", "/docs.json", expect=200).json()
    def matches(template: str, path: str) -> bool:
        t, p = template.split("/"), path.split("/")
        return len(t) == len(p) and all(a == b or a.startswith("{") for a, b in zip(t, p, strict=True))

    for template in doc["paths"]:
        path = template.replace("{", "").replace("}", "")
        documented = {m.upper() for t, ops in doc["paths"].items() if matches(t, path) for m in ops}
        other = next(m for m in ("PUT", "DELETE", "PATCH", "POST", "GET") if m not in documented)
        r = api.request(other, path)
        assert (r.status, r.error_code) == (405, "METHOD_NOT_ALLOWED"), (other, path)
        assert set(r.headers["Allow"].split(",")) - {"HEAD"} == documented, (other, path)

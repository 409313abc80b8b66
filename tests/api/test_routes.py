"""The /v2 route table (``dtr.registry.views.ROUTES``): every endpoint of the OCI spec is in it with
the access it needs and its metrics area, nothing else is, and no path reaches a handler under
another access rule than the one its match derives.
"""

from __future__ import annotations

import uuid

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from dtr.registry.routes import resource
from dtr.registry.views import ROUTES
from tests.api.helpers import Registry, error_codes

DIGEST = "sha256:" + "0" * 64
UPLOAD = str(uuid.UUID(int=0))
PULL, PUSH, DELETE = "pull", "push", "delete"

#: The spec's endpoints (end-1 ... end-13, the catalog, upload cancel): kind -> (path after
#: /v2/ for repository "a/b", metrics area, method -> action, None for "any valid token").
SPEC: dict[str, tuple[str, str, dict[str, str | None]]] = {
    "base": ("", "base", {"GET": None, "HEAD": None}),
    "catalog": ("_catalog", "catalog", {"GET": "*"}),
    "tags": ("a/b/tags/list", "tags", {"GET": PULL}),
    "manifests": ("a/b/manifests/v1", "manifests", {"GET": PULL, "HEAD": PULL, "PUT": PUSH, "DELETE": DELETE}),
    "blobs": (f"a/b/blobs/{DIGEST}", "blobs", {"GET": PULL, "HEAD": PULL, "DELETE": DELETE}),
    "start": ("a/b/blobs/uploads/", "blobs_uploads", {"POST": PUSH}),
    "upload": (f"a/b/blobs/uploads/{UPLOAD}", "blobs_uploads",
               {"GET": PULL, "PATCH": PUSH, "PUT": PUSH, "DELETE": PUSH}),
    "referrers": (f"a/b/referrers/{DIGEST}", "referrers", {"GET": PULL}),
}
METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"]


def _expected(kind: str, name: str, action: str | None) -> tuple[str, str, str] | None:
    if action is None:
        return None
    return ("registry", "catalog", "*") if kind == "catalog" else ("repository", name, action)


def _required(tail: str, method: str) -> tuple[str, str, str] | None:
    found = ROUTES.match(tail)
    assert found is not None, tail
    route, m = found
    access = route.methods[method]
    return None if access is None else (access.type, resource(access, m), access.action)


def test_every_spec_endpoint_is_in_the_table_and_nothing_else() -> None:
    covered: set[tuple[str, str]] = set()
    for kind, (tail, area, methods) in SPEC.items():
        found = ROUTES.match(tail)
        assert found is not None, kind
        route, _ = found
        assert route.area == area, kind
        assert set(route.methods) == set(methods), kind
        for method, action in methods.items():
            assert _required(tail, method) == _expected(kind, "a/b", action), (kind, method)
            covered.add((route.path, method))
    assert covered == {(r.path, method) for r in ROUTES for method in r.methods}


def _oracle(tail: str) -> tuple[str, str] | None:
    """(kind, repository name) of a /v2 tail, from the spec's URL shapes, independently of ROUTES."""
    if tail == "":
        return "base", ""
    if tail == "_catalog":
        return "catalog", ""
    for suffix in ("/blobs/uploads", "/blobs/uploads/"):
        if tail.endswith(suffix) and len(tail) > len(suffix):
            return "start", tail[:-len(suffix)]
    segs = tail.split("/")
    if len(segs) >= 4 and segs[-3:-1] == ["blobs", "uploads"] and segs[-1] and "/".join(segs[:-3]):
        return "upload", "/".join(segs[:-3])
    if len(segs) < 3 or not segs[-1] or not "/".join(segs[:-2]):
        return None
    name = "/".join(segs[:-2])
    kind = {"manifests": "manifests", "blobs": "blobs", "referrers": "referrers", "tags": "tags"}.get(segs[-2])
    if kind is None or (kind == "tags" and segs[-1] != "list"):
        return None
    return kind, name


SEGMENTS = st.one_of(st.sampled_from(["a", "b", "manifests", "blobs", "uploads", "tags", "list", "referrers",
                                      "_catalog", "", "..", DIGEST, "x\n", "%2f", "."]),
                     st.text(alphabet="ab/.:_-\n", max_size=4))


@settings(max_examples=3000, deadline=None)
@given(st.lists(SEGMENTS, max_size=7).map("/".join), st.sampled_from(METHODS))
def test_no_path_reaches_a_handler_under_another_access_rule(tail: str, method: str) -> None:
    """For any path and method: no entry matches exactly when the spec has no such endpoint;
    otherwise the access the token check derives names the very repository the handler is
    given (both from the one match), with the spec's action, and only the base is open to any
    token."""
    expected = _oracle(tail)
    found = ROUTES.match(tail)
    if expected is None:
        assert found is None, tail
        return
    assert found is not None, tail
    route, m = found
    kind, name = expected
    _, area, methods = SPEC[kind]
    assert route.area == area
    if route.repository:
        assert m.group(1) == name  # what dispatch hands the handler
    if method not in methods:
        assert method not in route.methods  # 405: no handler
        return
    assert _required(tail, method) == _expected(kind, name, methods[method])


async def test_the_server_routes_every_spec_endpoint_and_counts_it_in_its_area(reg: Registry) -> None:
    """Each endpoint and method of the table reaches its handler on a real server (no 404 "no
    such endpoint", no 405); other methods are 405 with ``Allow``; /metrics counts each area."""
    name = f"routes/{uuid.uuid4().hex[:8]}"
    for _kind, (tail, _area, methods) in SPEC.items():
        path = "/v2/" + tail.replace("a/b", name, 1)
        for method in METHODS:
            async with reg.http.request(method, reg.url(path)) as r:
                if method in methods:
                    assert r.status != 405, (method, path)
                    if r.status == 404 and method != "HEAD":
                        body = await r.json()
                        assert body["errors"][0]["message"] != "no such endpoint", (method, path)
                else:
                    assert r.status == 405, (method, path, r.status)
                    if method != "HEAD":
                        assert await error_codes(r) == ["UNSUPPORTED"]
                    assert set(r.headers["Allow"].split(", ")) == set(methods)
    async with reg.http.get(reg.url(f"/v2/{name}/nonsense/x")) as r:
        assert r.status == 404
    async with reg.http.get(reg.url("/metrics")) as r:
        text = await r.text()
    seen = {(s.labels["area"], s.labels["method"]) for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "dtr_http_requests_total"}
    for _tail, area, _methods in SPEC.values():
        assert {(area, m) for m in METHODS} <= seen, area
    assert ("v2", "GET") in seen, sorted(seen)
    assert ("_ping", "GET") in seen


async def test_bad_grammar_tag_is_manifest_unknown_for_get_and_head(reg: Registry, repo_name: str,
                                                                    http: aiohttp.ClientSession) -> None:
    await reg.image(repo_name, "ok")
    for method in ("GET", "HEAD"):
        async with http.request(method, reg.url(f"/v2/{repo_name}/manifests/.INVALID_NAME")) as r:
            assert r.status == 404
            if method == "GET":
                assert await error_codes(r) == ["MANIFEST_UNKNOWN"]

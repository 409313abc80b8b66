"""Repository names per the spec's grammar, and malformed input: always a 4XX, never a 500."""

from __future__ import annotations

import base64
import json
import os
import uuid
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from dtr.errors import ErrorCode
from dtr.registry.errors import codes
from tests.api.helpers import AUTH_MODES, Client, Registry, app_seed, app_token, error_codes
from tests.oci import OCI_MANIFEST, digest_of, dumps


@pytest.mark.parametrize("suffix", ["", "/a/b/c/d", "/a.b_c__d--e", "/x-y---z", "/0/1/2"])
async def test_valid_names(reg: Registry, repo_name: str, suffix: str) -> None:
    name = repo_name + suffix
    _digest, body = await reg.image(name, "t")
    async with reg.http.get(reg.url(f"/v2/{name}/manifests/t")) as r:
        assert r.status == 200 and await r.read() == body


async def test_name_of_255_characters(reg: Registry, repo_name: str) -> None:
    name = repo_name + "/" + "a" * (255 - len(repo_name) - 1)
    assert len(name) == 255
    await reg.push_blob(name)
    too_long = name + "b"
    async with reg.http.post(reg.url(f"/v2/{too_long}/blobs/uploads/")) as r:
        assert r.status == 400
        assert await error_codes(r) == ["NAME_INVALID"]


@pytest.mark.parametrize("name", ["UPPER/case", "a//b", "a/", "-a", "a-", "a..b", "a___b", "a/.b", "a/_b",
                                  "a b", "ä"])
async def test_invalid_names(reg: Registry, name: str) -> None:
    async with reg.http.post(reg.url(f"/v2/{name}/blobs/uploads/")) as r:
        assert 400 <= r.status < 500, (name, r.status)
        assert r.status != 405


TRAVERSALS = [
    "/v2/../../etc/passwd/manifests/latest",
    "/v2/%2e%2e/%2e%2e/etc/manifests/latest",
    "/v2/a/%2e%2e/b/manifests/latest",
    "/v2/a/manifests/..%2f..%2fx",
    "/v2/a/manifests/%2e%2e",
    "/v2/a/blobs/sha256:..%2F..%2F..%2Fetc%2Fpasswd",
    "/v2/a/blobs/sha256%3a..%2f..",
    "/v2/a/blobs/..",
    "/v2/a/blobs/uploads/..%2f..%2fblobs",
    "/v2/a/blobs/uploads/%2e%2e",
    "/v2/a/referrers/..%2f..",
    "/v2/a%00b/tags/list",
    "/v2/a/tags/list%00",
    "/v2/a/manifests/x%00y",
    "/v2/" + "a/" * 300 + "tags/list",
    "/v2/a%0A/blobs/uploads/",
    "/v2/a%0A/manifests/latest",
    "/v2/a/manifests/latest%0A",
    "/v2/a/blobs/sha256:" + "0" * 64 + "%0A",
    "/v2/a/tags/list%0A",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_path_tricks_are_client_errors(reg: Registry, path: str) -> None:
    for method in ("GET", "HEAD", "PUT", "DELETE", "PATCH", "POST"):
        async with reg.http.request(method, URL(reg.base + path, encoded=True), data=b"{}") as r:
            assert 300 <= r.status < 500, (method, path, r.status)


async def test_trailing_newlines_are_not_part_of_any_grammar(reg: Registry, repo_name: str) -> None:
    """``$`` in a regular expression matches before a final newline: names, tags and digests must not."""
    _, body = await reg.image(repo_name, "t")
    async with reg.http.post(URL(reg.url(f"/v2/{repo_name}%0A/blobs/uploads/"), encoded=True)) as r:
        assert r.status == 400 and await error_codes(r) == ["NAME_INVALID"]
    async with reg.http.put(URL(reg.url(f"/v2/{repo_name}/manifests/t%0A"), encoded=True), data=body,
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 400
    async with reg.http.get(reg.url(f"/v2/{repo_name}/tags/list")) as r:
        assert (await r.json())["tags"] == ["t"]
    async with reg.http.get(reg.url("/v2/_catalog")) as r:
        assert not [n for n in (await r.json())["repositories"] if "\n" in n]


async def test_malformed_manifest_bodies(reg: Registry, repo_name: str) -> None:
    await reg.image(repo_name, "seed")
    bodies = [
        b"", b"{", b"null", b"\xff\xfe", b"[" * 100000 + b"]" * 100000, b'{"schemaVersion": 2}',
        b'{"schemaVersion": 2, "mediaType": ' + b'"' + b"a" * 10000 + b'"}',
        dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": None, "layers": None}),
        dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"a\u0000": "b"},
               "config": {"mediaType": "a/b", "digest": digest_of(b"x"), "size": 1}, "layers": []}),
        dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"a": "b\u0000"},
               "config": {"mediaType": "a/b", "digest": digest_of(b"x"), "size": 1}, "layers": []}),
        dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "a/" + "b" * 300,
               "config": {"mediaType": "a/b", "digest": digest_of(b"x"), "size": 1}, "layers": []}),
        dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": "a/b", "digest": digest_of(b"x"), "size": 2 ** 70}, "layers": []}),
        dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": "a/b", "digest": digest_of(b"x"), "size": True}, "layers": []}),
        dumps({"schemaVersion": "2", "mediaType": OCI_MANIFEST}),
        b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": NaN}',
        os.urandom(1000),
    ]
    for body in bodies:
        async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/fuzz"), data=body,
                                headers={"Content-Type": OCI_MANIFEST}) as r:
            assert r.status == 400, (body[:80], r.status, await r.text())
            assert (await error_codes(r))[0] in ("MANIFEST_INVALID", "MANIFEST_BLOB_UNKNOWN")


async def test_malformed_headers_and_queries(reg: Registry, repo_name: str) -> None:
    await reg.image(repo_name, "seed")
    base = f"/v2/{repo_name}"
    requests = [
        ("GET", f"{base}/tags/list?n=1&n=2", {}),
        ("GET", f"{base}/referrers/{digest_of(b'x')}?artifactType=%00", {}),
        ("GET", f"{base}/referrers/{digest_of(b'x')}?artifactType=" + "a" * 5000, {}),
        ("GET", f"{base}/manifests/seed", {"Accept": ";;;,,,*/*;q=abc"}),
        ("POST", f"{base}/blobs/uploads/?digest=sha256:nothex", {}),
        ("POST", f"{base}/blobs/uploads/?digest=", {}),
        ("POST", f"{base}/blobs/uploads/?mount=&from=", {}),
        ("POST", f"{base}/blobs/uploads/?mount=sha256:" + "0" * 64 + "&from=" + "x" * 1000, {}),
        ("GET", f"{base}/blobs/{digest_of(b'x')}", {"Range": "bytes=garbage"}),
        ("GET", f"{base}/blobs/{digest_of(b'x')}", {"Range": "bytes=5-1"}),
    ]
    for method, path, headers in requests:
        async with reg.http.request(method, reg.url(path), headers=headers) as r:
            assert r.status < 500, (method, path, r.status, await r.text())


async def test_range_garbage_on_an_existing_blob(reg: Registry, repo_name: str) -> None:
    data = os.urandom(100)
    digest = await reg.push_blob(repo_name, data)
    for rng in ("bytes=garbage", "bytes=5-1", "bytes=0-1,5-6", "items=0-5", "bytes=-0", "bytes=99999999999999999999-"):
        async with reg.http.get(reg.url(f"/v2/{repo_name}/blobs/{digest}"), headers={"Range": rng}) as r:
            assert r.status in (200, 206, 416), (rng, r.status)
            body = await r.read()
            if r.status == 200:
                assert body == data


# -- a property-based fuzz of /v2 on the in-process app, auth off and on ---------------------

#: Every code /v2 may answer (dtr.registry.errors declares them once).
DECLARED = {c.code for c in vars(codes).values() if isinstance(c, ErrorCode)}
JUNK = ["", "%00", "a%00b", "%ED%A0%80", "%FF", "%C0%80", "%0A", "%2F", "%2e%2e", "..", "A", "x" * 300, "%C3%A4",
        "%09", "%25", "+", ";", "sha256:", "sha256:" + "0" * 64, "sha512:zz", "-1", "99999999999999999999999"]
#: Path segments: real ones (the seeded repository ``acme/app``, its tag, digests, upload ids), junk,
#: and any text (percent-encoded).
SEGMENT = st.one_of(
    st.sampled_from(["acme", "app", "App", "manifests", "blobs", "uploads", "tags", "list", "referrers", "_catalog",
                     "v1", str(uuid.UUID(int=0)), str(uuid.uuid4()), *JUNK]),
    st.text(max_size=8).map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")))
PATH = st.one_of(
    st.lists(SEGMENT, max_size=7).map(lambda segs: "/v2/" + "/".join(segs)),
    st.tuples(st.sampled_from(["acme/app", "acme/a%00pp", "acme/App", "acme//x", "acme/app/"]),
              st.sampled_from(["manifests/v1", "manifests/", "blobs/uploads/", "tags/list", "blobs/", "referrers/"]),
              SEGMENT).map(lambda t: f"/v2/{t[0]}/{t[1]}{t[2]}"))
QUERY = st.lists(st.tuples(st.sampled_from(["n", "last", "digest", "mount", "from", "cursor", "artifactType", "%00",
                                            "x"]),
                           st.one_of(st.sampled_from(JUNK), st.text(max_size=8).map(
                               lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")))),
                 max_size=4).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv))
HEADERS = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from([OCI_MANIFEST, "application/vnd.oci.image.index.v1+json", "application/json",
                                     "a/b;;;", "", "application/octet-stream", "x/y; charset=\xff"]),
    "Content-Range": st.sampled_from(["0-0", "0-99", "5-1", "bytes=0-1", "garbage", "-", "0-99999999999999999999",
                                      "0-10/*", ""]),
    "Range": st.sampled_from(["bytes=0-1", "bytes=garbage", "bytes=-5", "bytes=5-1", "items=0-5", "bytes=0-1,3-4"]),
    "Accept": st.sampled_from(["*/*", ";;;,,,", OCI_MANIFEST + ";q=0", "text/html", "a/*;q=abc"]),
    "Authorization": st.sampled_from(["Basic !!!", "Basic " + base64.b64encode(b"\x00:\xff").decode(), "Bearer ",
                                      "Bearer a.b.c", "Bearer " + "x" * 2000, "Negotiate x", "basic", "TOKEN"]),
    "Content-Encoding": st.sampled_from(["gzip", "identity", "br", "x"]),
})
BODY = st.one_of(st.binary(max_size=256), st.sampled_from([
    b"{}", b"null", b'{"schemaVersion": 2, "x": NaN}', b"[" * 100 + b"]" * 100, dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": "a/b", "digest": digest_of(b"x"),
                                                                  "size": 1}, "layers": [],
        "annotations": {"a": "b\u0000"}})]))


@AUTH_MODES
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"]), path=PATH,
       query=QUERY, headers=HEADERS, body=BODY, token=st.booleans())
async def test_fuzz_never_a_5xx_and_every_error_is_the_spec_s_json(
        app_client: Client, app_base: str, seeded: dict[str, str], method: str, path: str, query: str,
        headers: dict[str, str], body: bytes, token: bool) -> None:
    """Any /v2 path, query, headers and body, with or without a token: no 5xx, and every 4xx from
    /v2 is ``{"errors": [{"code", "message", ...}]}`` with a declared code."""
    if token and seeded:
        headers = {**headers, **seeded}
    url = URL(f"{app_base}{path}" + (f"?{query}" if query else ""), encoded=True)
    async with app_client.session.request(method, url, headers=headers, data=body or None,
                                          allow_redirects=False) as r:
        payload = await r.read()
        assert r.status < 500, (method, str(url), headers, r.status, payload[:500])
        if r.status >= 400 and method != "HEAD" and "Docker-Distribution-API-Version" in r.headers:
            errors = json.loads(payload)["errors"]
            assert errors and all(set(e) <= {"code", "message", "detail"} and e["code"] in DECLARED
                                  and isinstance(e["message"], str) for e in errors), payload[:500]


@pytest.fixture
async def seeded(app_client: Client, app_base: str) -> dict[str, str]:
    """``acme/app:v1`` pushed; a token's headers covering it and the catalog ({} with auth off)."""
    await app_seed(app_client, app_base)
    return await app_token(app_client, app_base, "repository:acme/app:pull,push,delete registry:catalog:*")

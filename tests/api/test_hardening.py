"""Bad input on /v2 and /auth/token, on the in-process app with auth off and on: always a 4xx in
the spec's error shape with the right code, decided before the token check, never a 500."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from typing import Any

import aiohttp
import pytest
from yarl import URL

from dtr.registry.errors import RegistryError
from dtr.registry.inputs import check_path
from dtr.registry.views import ROUTES
from tests.api.helpers import AUTH_MODES, Client, app_seed, app_token, error_codes, image_of
from tests.auth.client import basic
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.oci import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, descriptor, digest_of, dumps
from tests.servers import DtrProcess

DIGEST = digest_of(b"x")
UPLOAD = "00000000-0000-4000-8000-000000000000"


async def _expect(r: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    assert r.status == status, (r.url, r.status, await r.text())
    assert await error_codes(r) == [code] or (await error_codes(r))[0] == code, await r.text()
    return dict((await r.json())["errors"][0])


#: (method, path and query as sent, the code): NUL (%00) anywhere in a path or query.
NUL_REQUESTS = [
    ("GET", "/v2/acme/a%00pp/manifests/1", "NAME_INVALID"),
    ("HEAD", "/v2/acme/a%00pp/manifests/1", None),
    ("PUT", "/v2/acme/a%00pp/manifests/1", "NAME_INVALID"),
    ("GET", "/v2/acme/app/manifests/%00", "TAG_INVALID"),
    ("GET", "/v2/acme/app/manifests/v%001", "TAG_INVALID"),
    ("DELETE", "/v2/acme/app/manifests/sha256:%00", "DIGEST_INVALID"),
    ("GET", "/v2/acme/app/blobs/sha256:%00", "DIGEST_INVALID"),
    ("GET", f"/v2/acme/app/referrers/{DIGEST}%00", "DIGEST_INVALID"),
    ("PATCH", "/v2/acme/app/blobs/uploads/%00", "BLOB_UPLOAD_INVALID"),
    ("GET", "/v2/_catalog?last=%00", "NAME_INVALID"),
    ("GET", "/v2/_catalog?n=%00", "PAGINATION_NUMBER_INVALID"),
    ("GET", "/v2/acme/app/tags/list?last=%00", "TAG_INVALID"),
    ("GET", "/v2/acme/app/tags/list?last=a%00b&n=2", "TAG_INVALID"),
    ("GET", "/v2/acme/app/tags/list?n=%00", "PAGINATION_NUMBER_INVALID"),
    ("POST", "/v2/acme/app/blobs/uploads/?digest=%00", "DIGEST_INVALID"),
    ("POST", "/v2/acme/app/blobs/uploads/?mount=%00&from=acme/app", "DIGEST_INVALID"),
    ("POST", f"/v2/acme/app/blobs/uploads/?mount={DIGEST}&from=acme/a%00", "NAME_INVALID"),
    ("PUT", f"/v2/acme/app/blobs/uploads/{UPLOAD}?digest=sha256:%00", "DIGEST_INVALID"),
    ("GET", f"/v2/acme/app/referrers/{DIGEST}?artifactType=a/b%00", "UNSUPPORTED"),
    ("GET", "/v2/acme/app/tags/list?%00=1", "UNSUPPORTED"),
    ("GET", "/v2/%00", "NAME_INVALID"),
    # invalid UTF-8 escapes stay percent-encoded in a path, so the grammars refuse them
    ("GET", "/v2/acme/a%ED%A0%80/manifests/1", "NAME_INVALID"),
    ("GET", "/v2/acme/app/tags/list?last=%ED%A0%80", None),
]


@AUTH_MODES
async def test_nul_in_a_path_or_query_is_a_400_with_the_part_s_code(app_client: Client, app_base: str) -> None:
    """Checked where the request is parsed, before the token check: the same answer with or
    without a token, auth on or off (before, several ended in Postgres refusing the NUL: a 500)."""
    headers, _, _ = await app_seed(app_client, app_base)
    for token in ({}, headers):
        for method, path, code in NUL_REQUESTS:
            async with app_client.session.request(method, URL(app_base + path, encoded=True), headers=token) as r:
                if code is None:
                    assert 400 <= r.status < 500 or r.status == 200, (method, path, r.status)
                    continue
                error = await _expect(r, 400, code)
                assert "NUL" in error["message"] or "name" in error["message"], error


def test_unpaired_surrogates_in_a_path_are_refused_by_part() -> None:
    """The pure-Python HTTP parser decodes raw bytes with surrogateescape (the C one refuses them):
    a lone surrogate is refused like a NUL, by the part it is in."""
    for tail, code in (("acme/a\udced/manifests/1", "NAME_INVALID"), ("acme/app/manifests/v\udcff", "TAG_INVALID"),
                       ("acme/app/blobs/sha256:\udcff", "DIGEST_INVALID"), ("\udcff", "NAME_INVALID")):
        with pytest.raises(RegistryError) as caught:
            check_path(tail, ROUTES.match(tail))
        assert caught.value.code.code == code, tail
        assert "surrogate" in str(caught.value)
    check_path("acme/app/manifests/v1", ROUTES.match("acme/app/manifests/v1"))
    check_path("acme/ä/manifests/v1", ROUTES.match("acme/ä/manifests/v1"))


async def _raw(url: str, target: bytes) -> tuple[int, bytes]:
    """Send ``target`` as the request line's path, bytes as they are."""
    u = URL(url)
    reader, writer = await asyncio.open_connection(u.host, u.port)
    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_raw_non_utf8_bytes_with_the_pure_python_parser(dtr_factory: Any, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setenv("AIOHTTP_NO_EXTENSIONS", "1")
    proc: DtrProcess = dtr_factory()
    for target, code in ((b"/v2/acme/a\xed\xa0\x80/manifests/1", "NAME_INVALID"),
                         (b"/v2/acme/app/manifests/\xff", "TAG_INVALID"),
                         (b"/v2/_catalog?last=\xff", "NAME_INVALID"),
                         (b"/v2/acme/app/tags/list?n=\xed\xa0\x80", "PAGINATION_NUMBER_INVALID")):
        status, body = await _raw(proc.url, target)
        assert (status, json.loads(body)["errors"][0]["code"]) == (400, code), (target, body)


@pytest.mark.parametrize("app_extra", [auth_config()])
async def test_token_endpoint_refuses_nul_in_its_query(app_client: Client, app_base: str) -> None:
    for query in ("scope=repository:acme/a%00pp:pull", "service=%00", "account=ad%00min",
                  "scope=repository:acme/app:pull&scope=%ED%A0%80", "offline_token=%00"):
        for auth in ({}, {"Authorization": basic(*ADMIN_AUTH)}):
            async with app_client.session.get(URL(f"{app_base}/auth/token?{query}", encoded=True),
                                              headers=auth) as r:
                if "%ED" in query:  # decoded to U+FFFD: a scope naming no repository
                    assert r.status == 200
                    continue
                assert r.status == 400, (query, await r.text())
                body = await r.json()
                assert body["errors"][0]["code"] == "INVALID_PARAMETER" and "NUL" in body["errors"][0]["message"]
                assert body["error"] == "invalid_request"
    async with app_client.session.get(f"{app_base}/auth/token",
                                      headers={"Authorization": basic("ad\x00min", "x")}) as r:
        assert r.status == 400 and "username" in (await r.json())["errors"][0]["message"]
    async with app_client.session.post(f"{app_base}/auth/token", data={
            "grant_type": "password", "username": "ad\x00min", "password": "x", "scope": "repository:a:pull"}) as r:
        assert r.status == 400, await r.text()


MANIFEST_JSON = [
    (b'"x": NaN', "NaN is not a JSON number"),
    (b'"x": -Infinity', "-Infinity is not a JSON number"),
    (b'"x": 1e400', "too large"),
    (b'"x": ' + b"[" * 65 + b"]" * 65, "nested more than 64"),
]


async def test_manifests_are_parsed_strictly(app_client: Client, app_base: str) -> None:
    _, config, layer = await app_seed(app_client, app_base)
    good = image_of(config, layer)
    for extra, why in MANIFEST_JSON:
        body = good[:-1] + b"," + extra + b"}"
        async with app_client.session.put(f"{app_base}/v2/acme/app/manifests/strict", data=body,
                                          headers={"Content-Type": OCI_MANIFEST}) as r:
            error = await _expect(r, 400, "MANIFEST_INVALID")
            assert why in error["message"], error
    # NUL in text that is stored (annotations, jsonb) is refused, naming the field ...
    body = image_of(config, layer, annotations={"org.example": "a\x00b"})
    async with app_client.session.put(f"{app_base}/v2/acme/app/manifests/nul", data=body,
                                      headers={"Content-Type": OCI_MANIFEST}) as r:
        assert "annotations.org.example contains a NUL" in (await _expect(r, 400, "MANIFEST_INVALID"))["message"]
    # ... while one in a string only passed on is JSON like any other: kept, bytes as pushed.
    body = image_of(config, layer, **{"x-note": "a\x00b"})
    async with app_client.session.put(f"{app_base}/v2/acme/app/manifests/kept", data=body,
                                      headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 201, await r.text()
    async with app_client.session.get(f"{app_base}/v2/acme/app/manifests/kept") as r:
        assert await r.read() == body


async def test_a_content_encoding_on_an_upload_or_manifest_is_refused(app_client: Client, app_base: str) -> None:
    """aiohttp decoded the body (and a bad one was a 500): the bytes a digest names are the bytes
    sent, so any Content-Encoding but identity is a 400, valid or not, and nothing is stored."""
    _, config, layer = await app_seed(app_client, app_base)
    http, data = app_client.session, os.urandom(100)
    for encoding, body in (("gzip", b"not gzip"), ("gzip", gzip.compress(data)), ("deflate", b"\x00\x01"),
                           ("br", b"\xff" * 10)):
        headers = {"Content-Encoding": encoding, "Content-Type": "application/octet-stream"}
        async with http.post(f"{app_base}/v2/acme/app/blobs/uploads/?digest={digest_of(data)}", data=body,
                             headers=headers) as r:
            assert "Content-Encoding" in (await _expect(r, 400, "BLOB_UPLOAD_INVALID"))["message"]
        async with http.post(f"{app_base}/v2/acme/app/blobs/uploads/") as r:
            location = r.headers["Location"]
        async with http.patch(f"{app_base}{location}", data=body, headers=headers) as r:
            await _expect(r, 400, "BLOB_UPLOAD_INVALID")
        async with http.put(f"{app_base}{location}?digest={digest_of(data)}", data=body, headers=headers) as r:
            await _expect(r, 400, "BLOB_UPLOAD_INVALID")
        async with http.put(f"{app_base}/v2/acme/app/manifests/enc", data=body,
                            headers={**headers, "Content-Type": OCI_MANIFEST}) as r:
            await _expect(r, 400, "MANIFEST_INVALID")
        async with http.head(f"{app_base}/v2/acme/app/blobs/{digest_of(data)}") as r:
            assert r.status == 404
    async with http.put(f"{app_base}/v2/acme/app/manifests/identity", data=image_of(config, layer),
                        headers={"Content-Encoding": "identity", "Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 201


async def test_a_descriptor_size_must_match_the_stored_blob(app_client: Client, app_base: str) -> None:
    _, config, layer = await app_seed(app_client, app_base)
    http = app_client.session
    cases = [({"config": {**descriptor(OCI_CONFIG, config), "size": 9999}},
              f"config: size 9999 does not match the stored blob's {len(config)} bytes"),
             ({"layers": [{**descriptor(OCI_LAYER, layer), "size": 1}]},
              f"layers[0]: size 1 does not match the stored blob's {len(layer)} bytes")]
    for fields, message in cases:
        async with http.put(f"{app_base}/v2/acme/app/manifests/sized", data=image_of(config, layer, **fields),
                            headers={"Content-Type": OCI_MANIFEST}) as r:
            error = await _expect(r, 400, "MANIFEST_INVALID")
            assert message in error["message"], error
    child = image_of(config, layer)
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                   "manifests": [{**descriptor(OCI_MANIFEST, child), "size": len(child) + 1}]})
    async with http.put(f"{app_base}/v2/acme/app/manifests/index", data=index,
                        headers={"Content-Type": OCI_INDEX}) as r:
        error = await _expect(r, 400, "MANIFEST_INVALID")
        assert f"manifests[0]: size {len(child) + 1} does not match the stored manifest's {len(child)}" \
            in error["message"]


BAD_NAMES = ["acme/App", "acme/%2E%2E", "acme//x", "acme/" + "a" * 255, "acme/app/"]


@pytest.mark.parametrize("app_extra", [auth_config()])
async def test_a_name_outside_the_grammar_is_name_invalid_on_every_route_token_or_not(
        app_client: Client, app_base: str) -> None:
    """Not 401/403 (which would say whether such a repository exists): 400, before the token check."""
    token = await app_token(app_client, app_base, "repository:acme/app:pull,push,delete")
    anonymous = {"Authorization": basic("nobody", "wrong")}
    for name in BAD_NAMES:
        for method, tail in (("GET", "manifests/v1"), ("PUT", "manifests/v1"), ("DELETE", f"manifests/{DIGEST}"),
                             ("HEAD", f"blobs/{DIGEST}"), ("GET", f"blobs/{DIGEST}"), ("POST", "blobs/uploads/"),
                             ("PATCH", f"blobs/uploads/{UPLOAD}"), ("GET", "tags/list"),
                             ("GET", f"referrers/{DIGEST}")):
            for headers in ({}, token, anonymous):
                url = URL(f"{app_base}/v2/{name}/{tail}", encoded=True)
                async with app_client.session.request(method, url, headers=headers) as r:
                    assert r.status == 400, (name, method, tail, r.status)
                    if method != "HEAD":
                        assert await error_codes(r) == ["NAME_INVALID"]


@pytest.mark.parametrize("app_extra", [auth_config()])
async def test_basic_credentials_on_v2_get_the_challenge_and_a_pointer_to_the_realm(
        app_client: Client, app_base: str) -> None:
    for path in ("/v2/", "/v2/acme/app/manifests/v1", "/v2/_catalog"):
        async with app_client.session.get(f"{app_base}{path}", headers={"Authorization": basic(*ADMIN_AUTH)}) as r:
            error = await _expect(r, 401, "UNAUTHORIZED")
            realm = f"{app_base}/auth/token"
            assert r.headers["WWW-Authenticate"].startswith(f'Bearer realm="{realm}"'), r.headers
            assert error["message"] == (f"Basic credentials are not accepted on /v2/: get a token from {realm} "
                                        "(docker login does this)")
    async with app_client.session.get(f"{app_base}/v2/") as r:  # no credentials: the plain challenge
        assert (await _expect(r, 401, "UNAUTHORIZED"))["message"] == "authentication required"
    token = await app_token(app_client, app_base, "")
    async with app_client.session.get(f"{app_base}/v2/", headers=token) as r:
        assert r.status == 200


@AUTH_MODES
async def test_the_server_header_names_no_versions(app_client: Client, app_base: str) -> None:
    for method, path in (("GET", "/v2/"), ("GET", "/v2/acme/app/manifests/v1"), ("GET", "/v2/nothing/here/x"),
                         ("OPTIONS", "/v2/"), ("GET", "/_ping"), ("GET", "/metrics"), ("GET", "/api/v0/accounts"),
                         ("GET", "/api/v0/nonsense"), ("GET", "/nonsense"), ("GET", "/v2"), ("GET", "/auth/token")):
        async with app_client.session.request(method, f"{app_base}{path}", allow_redirects=False) as r:
            assert r.headers.get("Server") == "dtr", (method, path, r.status, r.headers.get("Server"))


async def test_aiohttps_own_error_pages_name_no_versions_either(app_client: Client, app_base: str) -> None:
    """A request line aiohttp's parser refuses never reaches dtr's handlers: its 400 page too."""
    url = URL(app_base)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: nonsense\r\n\r\n")
        await writer.drain()
        head = (await reader.read(4096)).decode("latin-1")
    finally:
        writer.close()
    assert head.startswith(("HTTP/1.0 400", "HTTP/1.1 400")), head
    assert "\r\nServer: dtr\r\n" in head, head

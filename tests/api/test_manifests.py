"""end-3, end-7, end-9: manifests of every supported type, by tag and by digest, and their errors."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.api.helpers import Registry, error_codes
from tests.oci import (
    ALL_MANIFEST_TYPES,
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY_BYTES,
    EMPTY_DIGEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    dumps,
)

ACCEPT_ALL = {"Accept": ALL_MANIFEST_TYPES}


async def get(reg: Registry, name: str, ref: str, accept: str = ALL_MANIFEST_TYPES,
              method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept": accept} if accept else {}
    async with reg.http.request(method, reg.url(f"/v2/{name}/manifests/{ref}"), headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
async def test_image_manifest_by_tag_and_digest(reg: Registry, repo_name: str, media_type: str) -> None:
    digest, body = await reg.image(repo_name, "v1", media_type)
    for ref in ("v1", digest):
        status, headers, got = await get(reg, repo_name, ref)
        assert status == 200
        assert got == body  # byte for byte
        assert headers["Content-Type"] == media_type
        assert headers["Docker-Content-Digest"] == digest
        status, headers, got = await get(reg, repo_name, ref, method="HEAD")
        assert status == 200
        assert got == b""
        assert headers["Docker-Content-Digest"] == digest
        assert headers["Content-Type"] == media_type
        assert int(headers["Content-Length"]) == len(body)


async def test_put_response_headers(reg: Registry, repo_name: str) -> None:
    digest, body = await reg.image(repo_name, "x")
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/y"), data=body,
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 201
        assert r.headers["Docker-Content-Digest"] == digest
        assert r.headers["Location"] == f"/v2/{repo_name}/manifests/{digest}"
        assert "OCI-Subject" not in r.headers


async def test_put_by_digest(reg: Registry, repo_name: str) -> None:
    digest, body = await reg.image(repo_name)
    status, _headers, got = await get(reg, repo_name, digest)
    assert status == 200 and got == body
    async with reg.http.get(reg.url(f"/v2/{repo_name}/tags/list")) as r:
        assert (await r.json())["tags"] == []


async def test_put_by_sha512_digest(reg: Registry, repo_name: str) -> None:
    _, body = await reg.image(repo_name)
    d512 = digest_of(body, "sha512")
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/{d512}"), data=body,
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 201
        assert r.headers["Docker-Content-Digest"] == d512
    status, headers, got = await get(reg, repo_name, d512)
    assert status == 200 and got == body and headers["Docker-Content-Digest"] == d512


async def test_put_with_wrong_digest_reference(reg: Registry, repo_name: str) -> None:
    _, body = await reg.image(repo_name)
    wrong = digest_of(body + b" ")
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/{wrong}"), data=body,
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 400
        assert await error_codes(r) == ["DIGEST_INVALID"]
    assert (await get(reg, repo_name, wrong))[0] == 404


async def test_byte_exact_storage_of_unusual_formatting(reg: Registry, repo_name: str) -> None:
    config, layer = os.urandom(20), os.urandom(20)
    await reg.push_blob(repo_name, config)
    await reg.push_blob(repo_name, layer)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
           "layers": [descriptor(OCI_LAYER_GZIP, layer)], "annotations": {"é": "ünïcode"}}
    body = json.dumps(doc, indent=3, ensure_ascii=False).encode() + b"\n\n"
    r = await reg.put_manifest(repo_name, "pretty", body, OCI_MANIFEST)
    assert r.status == 201
    _status, headers, got = await get(reg, repo_name, "pretty")
    assert got == body and headers["Docker-Content-Digest"] == digest_of(body)


async def test_manifest_lists_and_indexes(reg: Registry, repo_name: str) -> None:
    _d_amd, b_amd = await reg.image(repo_name, None, DOCKER_MANIFEST)
    _d_arm, b_arm = await reg.image(repo_name, None, DOCKER_MANIFEST)
    docker_list = dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {**descriptor(DOCKER_MANIFEST, b_amd), "platform": {"os": "linux", "architecture": "amd64"}},
        {**descriptor(DOCKER_MANIFEST, b_arm), "platform": {"os": "linux", "architecture": "arm64"}},
    ]})
    assert (await reg.put_manifest(repo_name, "list", docker_list, DOCKER_LIST)).status == 201
    _o_amd, ob_amd = await reg.image(repo_name, None, OCI_MANIFEST)
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**descriptor(OCI_MANIFEST, ob_amd), "platform": {"os": "linux", "architecture": "amd64"}},
    ], "annotations": {"org.opencontainers.image.ref.name": "x"}})
    assert (await reg.put_manifest(repo_name, "index", index, OCI_INDEX)).status == 201
    # an index of indexes
    nested = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_INDEX, index)]})
    assert (await reg.put_manifest(repo_name, "nested", nested, OCI_INDEX)).status == 201
    for tag, body, media_type in (("list", docker_list, DOCKER_LIST), ("index", index, OCI_INDEX),
                                  ("nested", nested, OCI_INDEX)):
        status, headers, got = await get(reg, repo_name, tag)
        assert status == 200 and got == body and headers["Content-Type"] == media_type
        assert headers["Docker-Content-Digest"] == digest_of(body)


async def test_oci_manifest_without_media_type_field(reg: Registry, repo_name: str) -> None:
    """mediaType is only SHOULD in the image-spec: the Content-Type header decides then."""
    config = os.urandom(10)
    await reg.push_blob(repo_name, config)
    body = dumps({"schemaVersion": 2, "config": descriptor(OCI_CONFIG, config), "layers": []})
    assert (await reg.put_manifest(repo_name, "nomt", body, OCI_MANIFEST)).status == 201
    status, headers, got = await get(reg, repo_name, "nomt")
    assert status == 200 and headers["Content-Type"] == OCI_MANIFEST and got == body


async def test_docker_manifests_need_their_media_type_field(reg: Registry, repo_name: str) -> None:
    config = os.urandom(10)
    await reg.push_blob(repo_name, config)
    body = dumps({"schemaVersion": 2, "config": descriptor(DOCKER_CONFIG, config), "layers": []})
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/t"), data=body,
                            headers={"Content-Type": DOCKER_MANIFEST}) as r:
        assert r.status == 400
        assert "mediaType is required" in (await r.json())["errors"][0]["message"]


async def test_content_type_must_match_media_type(reg: Registry, repo_name: str) -> None:
    _, body = await reg.image(repo_name)
    for ct in (DOCKER_MANIFEST, OCI_INDEX, "application/json"):
        async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/mismatch"), data=body,
                                headers={"Content-Type": ct}) as r:
            assert r.status == 400, ct
            assert await error_codes(r) == ["MANIFEST_INVALID"]
            assert "mediaType" in (await r.json())["errors"][0]["message"]
    # parameters on Content-Type are ignored
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/params"), data=body,
                            headers={"Content-Type": OCI_MANIFEST + "; charset=utf-8"}) as r:
        assert r.status == 201


async def test_missing_blobs_are_manifest_blob_unknown(reg: Registry, repo_name: str) -> None:
    config = os.urandom(10)
    await reg.push_blob(repo_name, config)
    missing1, missing2 = os.urandom(10), os.urandom(10)
    body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                  "layers": [descriptor(OCI_LAYER_GZIP, missing1), descriptor(OCI_LAYER_GZIP, missing2)]})
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/bad"), data=body,
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 400
        assert await error_codes(r) == ["MANIFEST_BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"]
        details = [e["detail"]["digest"] for e in (await r.json())["errors"]]
        assert details == [digest_of(missing1), digest_of(missing2)]
    assert (await get(reg, repo_name, "bad"))[0] == 404


async def test_blob_of_another_repository_does_not_count(reg: Registry, repo_name: str) -> None:
    config, layer = os.urandom(10), os.urandom(10)
    await reg.push_blob(repo_name + "-elsewhere", layer)
    await reg.push_blob(repo_name, config)
    body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                  "layers": [descriptor(OCI_LAYER_GZIP, layer)]})
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/t"), data=body,
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 400
        assert await error_codes(r) == ["MANIFEST_BLOB_UNKNOWN"]


async def test_index_with_missing_child(reg: Registry, repo_name: str) -> None:
    await reg.image(repo_name, "present")
    ghost = dumps({"ghost": os.urandom(4).hex()})
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, ghost)]})
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/idx"), data=index,
                            headers={"Content-Type": OCI_INDEX}) as r:
        assert r.status == 400
        assert await error_codes(r) == ["MANIFEST_BLOB_UNKNOWN"]


async def test_foreign_layers_need_not_be_present(reg: Registry, repo_name: str) -> None:
    config = os.urandom(10)
    await reg.push_blob(repo_name, config)
    foreign = {**descriptor("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", b"win"),
               "urls": ["https://example.com/layer"]}
    body = dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": descriptor(DOCKER_CONFIG, config),
                  "layers": [foreign]})
    assert (await reg.put_manifest(repo_name, "win", body, DOCKER_MANIFEST)).status == 201


@pytest.mark.parametrize("doc,why", [
    ({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}, "schema 1"),
    ({"schemaVersion": 3, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}, "schemaVersion"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}, "config"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "size": 1}, "layers": []},
     "digest"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
      "config": {"mediaType": OCI_CONFIG, "digest": "sha256:1234", "size": 1}, "layers": []}, "digest"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
      "config": {"mediaType": OCI_CONFIG, "digest": EMPTY_DIGEST, "size": -1}, "layers": []}, "size"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
      "config": {"mediaType": "not a media type", "digest": EMPTY_DIGEST, "size": 2}, "layers": []}, "mediaType"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
      "config": {"mediaType": OCI_CONFIG, "digest": EMPTY_DIGEST, "size": 2}, "layers": {}}, "layers"),
    ({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": "nope"}, "manifests"),
    ({"schemaVersion": 2, "mediaType": "application/vnd.example.unknown+json"}, "unsupported"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
      "config": {"mediaType": OCI_CONFIG, "digest": EMPTY_DIGEST, "size": 2}, "layers": [],
      "annotations": {"a": 1}}, "annotations"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
      "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2}, "layers": []}, "artifactType"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "bad type",
      "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2}, "layers": []}, "artifactType"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
      "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "!!notbase64"},
      "layers": []}, "data"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "subject": {"mediaType": OCI_MANIFEST},
      "config": {"mediaType": OCI_CONFIG, "digest": EMPTY_DIGEST, "size": 2}, "layers": []}, "subject"),
    ([1, 2, 3], "object"),
    ({"schemaVersion": 2.0, "mediaType": OCI_INDEX, "manifests": []}, "schemaVersion"),
    ({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [],
      "config": {"mediaType": OCI_CONFIG, "digest": EMPTY_DIGEST, "size": 2}}, "config"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "manifests": [],
      "config": {"mediaType": OCI_CONFIG, "digest": EMPTY_DIGEST, "size": 2}, "layers": []}, "manifests"),
])
async def test_invalid_manifests(reg: Registry, repo_name: str, doc: Any, why: str) -> None:
    await reg.push_blob(repo_name, EMPTY_BYTES)
    media_type = doc.get("mediaType", OCI_MANIFEST) if isinstance(doc, dict) else OCI_MANIFEST
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/bad"), data=dumps(doc),
                            headers={"Content-Type": media_type}) as r:
        assert r.status == 400, await r.text()
        assert await error_codes(r) == ["MANIFEST_INVALID"]
        assert why.lower() in (await r.json())["errors"][0]["message"].lower()


async def test_manifest_size_limit_is_413_and_4mib_is_accepted(reg: Registry, repo_name: str) -> None:
    config = os.urandom(10)
    await reg.push_blob(repo_name, config)
    limit = 4 * 1024 * 1024

    def body_of(size: int) -> bytes:
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
               "layers": [], "annotations": {"pad": ""}}
        pad = size - len(dumps(doc))
        doc["annotations"]["pad"] = "x" * pad
        body = dumps(doc)
        assert len(body) == size
        return body

    exact = body_of(limit)
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/big"), data=exact,
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 201, await r.text()
    status, _, got = await get(reg, repo_name, "big")
    assert status == 200 and got == exact

    too_big = body_of(limit + 1)
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/toobig"), data=too_big,
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 413
        err = (await r.json())["errors"][0]
        assert str(limit) in err["message"]

    async def stream():  # no Content-Length: the limit still holds
        for i in range(0, len(too_big), 65536):
            yield too_big[i:i + 65536]

    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/toobig"), data=stream(),
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 413
    assert (await get(reg, repo_name, "toobig"))[0] == 404


async def test_large_manifest_sent_in_pieces(reg: Registry, repo_name: str) -> None:
    """A chunked body is read whole, not just its first piece."""
    config = os.urandom(10)
    await reg.push_blob(repo_name, config)
    body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                  "layers": [], "annotations": {"pad": "y" * 500_000}})

    async def stream():
        for i in range(0, len(body), 1000):
            yield body[i:i + 1000]

    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/pieces"), data=stream(),
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 201, await r.text()
        assert r.headers["Docker-Content-Digest"] == digest_of(body)


async def test_delete_by_tag_deletes_the_tag_only(reg: Registry, repo_name: str) -> None:
    digest, body = await reg.image(repo_name, "a")
    assert (await reg.put_manifest(repo_name, "b", body, OCI_MANIFEST)).status == 201
    async with reg.http.delete(reg.url(f"/v2/{repo_name}/manifests/a")) as r:
        assert r.status == 202
    assert (await get(reg, repo_name, "a"))[0] == 404
    assert (await get(reg, repo_name, "b"))[0] == 200
    assert (await get(reg, repo_name, digest))[0] == 200
    async with reg.http.delete(reg.url(f"/v2/{repo_name}/manifests/a")) as r:
        assert r.status == 404
        assert await error_codes(r) == ["MANIFEST_UNKNOWN"]


async def test_delete_by_digest_removes_manifest_and_its_tags(reg: Registry, repo_name: str) -> None:
    digest, body = await reg.image(repo_name, "a")
    async with reg.http.delete(reg.url(f"/v2/{repo_name}/manifests/{digest}")) as r:
        assert r.status == 202
    for ref in ("a", digest):
        status, _, _ = await get(reg, repo_name, ref)
        assert status == 404
    async with reg.http.delete(reg.url(f"/v2/{repo_name}/manifests/{digest}")) as r:
        assert r.status == 404
        assert await error_codes(r) == ["MANIFEST_UNKNOWN"]
    # and it can be pushed again
    assert (await reg.put_manifest(repo_name, "a", body, OCI_MANIFEST)).status == 201


async def test_delete_in_unknown_repository_is_404(reg: Registry, repo_name: str) -> None:
    async with reg.http.delete(reg.url(f"/v2/{repo_name}/manifests/{digest_of(b'x')}")) as r:
        assert r.status == 404
        assert await error_codes(r) == ["NAME_UNKNOWN"]


async def test_unknown_manifest_and_repository(reg: Registry, repo_name: str) -> None:
    assert (await get(reg, repo_name, "latest"))[0] == 404
    await reg.image(repo_name, "v1")
    status, _, body = await get(reg, repo_name, "v2")
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    status, _, body = await get(reg, repo_name, digest_of(b"nope"), method="HEAD")
    assert status == 404 and body == b""


async def test_tag_moves_to_the_new_manifest(reg: Registry, repo_name: str) -> None:
    await reg.image(repo_name, "moving")
    d2, b2 = await reg.image(repo_name, "moving")
    _status, headers, got = await get(reg, repo_name, "moving")
    assert got == b2 and headers["Docker-Content-Digest"] == d2


@pytest.mark.parametrize("ref", ["-leadingdash", ".dot", ".INVALID_NAME", "a" * 129, "sha256:abc", "has space",
                                 "x!"])
async def test_invalid_reference_is_400_to_put_and_unknown_to_fetch(reg: Registry, repo_name: str, ref: str) -> None:
    """PUT by a reference outside the grammar is 400; GET, HEAD and DELETE by a tag outside it find
    no manifest (404 MANIFEST_UNKNOWN, as the reference registry answers); a bad digest is 400."""
    _, body = await reg.image(repo_name, "ok")
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/{ref}"), data=body,
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 400
        assert (await error_codes(r))[0] in ("MANIFEST_INVALID", "DIGEST_INVALID", "TAG_INVALID")
    for method in ("GET", "HEAD", "DELETE"):
        async with reg.http.request(method, reg.url(f"/v2/{repo_name}/manifests/{ref}")) as r:
            if ":" in ref:
                assert r.status == 400, (method, r.status)
            else:
                assert r.status == 404, (method, r.status)
                if method != "HEAD":
                    assert await error_codes(r) == ["MANIFEST_UNKNOWN"]


async def test_tag_of_128_characters(reg: Registry, repo_name: str) -> None:
    tag = "T" + "a_.-" * 31 + "xyz"
    assert len(tag) == 128
    digest, _ = await reg.image(repo_name, tag)
    status, headers, _ = await get(reg, repo_name, tag)
    assert status == 200 and headers["Docker-Content-Digest"] == digest


# -- Accept negotiation, as the reference registry (distribution) does it ---------------------


async def test_accept_negotiation(reg: Registry, repo_name: str) -> None:
    _d_oci, _ = await reg.image(repo_name, "oci", OCI_MANIFEST)
    d_docker, _ = await reg.image(repo_name, "docker", DOCKER_MANIFEST)
    # no Accept header or a wildcard: anything is acceptable (RFC 9110)
    for accept in ("", "*/*", "application/*"):
        assert (await get(reg, repo_name, "oci", accept))[0] == 200
    # an OCI manifest for a client that does not accept it: MANIFEST_UNKNOWN, as distribution does
    status, _, body = await get(reg, repo_name, "oci", DOCKER_MANIFEST + ", " + DOCKER_LIST)
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    # q=0 means "not acceptable"
    status, _, _ = await get(reg, repo_name, "oci", f"{OCI_MANIFEST};q=0, {DOCKER_MANIFEST}")
    assert status == 404
    # several Accept headers are combined
    async with reg.http.get(reg.url(f"/v2/{repo_name}/manifests/oci"),
                            headers=[("Accept", DOCKER_MANIFEST), ("Accept", OCI_MANIFEST)]) as r:
        assert r.status == 200
    # Docker schema 2 is always served (distribution no longer converts to schema 1)
    status, headers, _ = await get(reg, repo_name, "docker", OCI_MANIFEST)
    assert status == 200 and headers["Docker-Content-Digest"] == d_docker


async def test_accept_negotiation_for_lists(reg: Registry, repo_name: str) -> None:
    d_amd, b_amd = await reg.image(repo_name, None, DOCKER_MANIFEST)
    _d_arm, b_arm = await reg.image(repo_name, None, DOCKER_MANIFEST)
    docker_list = dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {**descriptor(DOCKER_MANIFEST, b_arm), "platform": {"os": "linux", "architecture": "arm64"}},
        {**descriptor(DOCKER_MANIFEST, b_amd), "platform": {"os": "linux", "architecture": "amd64"}},
    ]})
    assert (await reg.put_manifest(repo_name, "list", docker_list, DOCKER_LIST)).status == 201
    d_list = digest_of(docker_list)
    # an old client that takes only schema 2 manifests gets the linux/amd64 image (by tag)
    status, headers, body = await get(reg, repo_name, "list", DOCKER_MANIFEST)
    assert status == 200 and body == b_amd and headers["Docker-Content-Digest"] == d_amd
    # by digest the list is returned as it is
    status, headers, body = await get(reg, repo_name, d_list, DOCKER_MANIFEST)
    assert status == 200 and body == docker_list
    # an OCI index is never rewritten: a client that cannot take it gets MANIFEST_UNKNOWN
    _o_amd, ob_amd = await reg.image(repo_name, None, OCI_MANIFEST)
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**descriptor(OCI_MANIFEST, ob_amd), "platform": {"os": "linux", "architecture": "amd64"}}]})
    assert (await reg.put_manifest(repo_name, "index", index, OCI_INDEX)).status == 201
    status, _, body = await get(reg, repo_name, "index", OCI_MANIFEST)
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    status, _, body = await get(reg, repo_name, "index", OCI_INDEX)
    assert status == 200 and body == index


async def test_manifests_are_per_repository(reg: Registry, repo_name: str) -> None:
    digest, _ = await reg.image(repo_name, "t")
    other = repo_name + "-other"
    await reg.image(other, "t")
    status, _, body = await get(reg, other, digest)
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"

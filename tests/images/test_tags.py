"""The images API in process (dtr's app on a real Postgres and storage, authentication off): tags
with platforms (an image's from its config, an index's from its entries), signed state (an OCI
signature verified by a trusted key), scan summary (none before a scan) and paging; a manifest's
config and its Dockerfile line by line from a docker-built history; an index's platforms; what
is refused (unknown or malformed references, a config too large or missing) as JSON errors."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from dtr.images import configs
from dtr.keys import DATABASE, STORAGE
from dtr.registry.names import blob_path
from tests.oci import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    dumps,
    get,
    push_blob,
    put_manifest,
)
from tests.signatures import makers as mk

Client = TestClient[web.Request, web.Application]

#: The history ``docker build`` (legacy builder on a Debian base) writes, then BuildKit's additions.
HISTORY: list[dict[str, Any]] = [
    {"created": "2024-01-11T21:30:48.283577624Z",
     "created_by": "/bin/sh -c #(nop) ADD file:9b38b383dd93169a663eed88edf3f2285b837257ead69dc40ab5ed1fb3f52c35 in / "},
    {"created": "2024-01-11T21:30:48.722563328Z", "created_by": '/bin/sh -c #(nop)  CMD ["bash"]', "empty_layer": True},
    {"created": "2024-01-12T03:01:02.000000000Z",
     "created_by": "/bin/sh -c #(nop)  ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
     "empty_layer": True},
    {"created": "2024-01-12T03:05:10.000000000Z",
     "created_by": "/bin/sh -c set -eux; \tapt-get update; \tapt-get install -y --no-install-recommends "
                   "ca-certificates; \trm -rf /var/lib/apt/lists/*"},
    {"created": "2024-02-01T10:00:00.000000000Z", "created_by": "ARG VERSION=1.2", "comment": "buildkit.dockerfile.v0",
     "empty_layer": True},
    {"created": "2024-02-01T10:00:01.000000000Z", "created_by": "WORKDIR /app", "comment": "buildkit.dockerfile.v0"},
    {"created": "2024-02-01T10:00:02.000000000Z", "created_by": "COPY . /app # buildkit",
     "comment": "buildkit.dockerfile.v0"},
    {"created": "2024-02-01T10:00:09.000000000Z", "created_by": "RUN |1 VERSION=1.2 /bin/sh -c make install # buildkit",
     "comment": "buildkit.dockerfile.v0"},
    {"created": "2024-02-01T10:00:09.000000000Z", "created_by": "EXPOSE map[8080/tcp:{}]",
     "comment": "buildkit.dockerfile.v0", "empty_layer": True},
    {"created": "2024-02-01T10:00:09.000000000Z", "created_by": 'CMD ["python" "app.py"]',
     "comment": "buildkit.dockerfile.v0", "empty_layer": True},
]
DOCKERFILE = [
    "ADD file:9b38b383dd93169a663eed88edf3f2285b837257ead69dc40ab5ed1fb3f52c35 in /", 'CMD ["bash"]',
    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "RUN set -eux; \tapt-get update; \tapt-get install -y --no-install-recommends ca-certificates; "
    "\trm -rf /var/lib/apt/lists/*", "ARG VERSION=1.2", "WORKDIR /app", "COPY . /app", "RUN make install",
    "EXPOSE map[8080/tcp:{}]", 'CMD ["python" "app.py"]']


def _config(arch: str = "amd64", variant: str | None = None, history: list[dict[str, Any]] | None = None,
            **extra: Any) -> bytes:
    doc: dict[str, Any] = {"architecture": arch, "os": "linux", "created": "2024-02-01T10:00:09Z",
                           "author": "dev@example.com", "rootfs": {"type": "layers", "diff_ids": []},
                           "config": {"Env": ["PATH=/usr/bin", "APP_ENV=prod"], "Cmd": ["python", "app.py"],
                                      "WorkingDir": "/app", "User": "app",
                                      "Labels": {"org.opencontainers.image.title": "web"},
                                      "ExposedPorts": {"8080/tcp": {}}},
                           "history": history if history is not None else [], **extra}
    if variant:
        doc["variant"] = variant
    return dumps(doc)


async def _push(c: Client, base: str, repo: str, ref: str, config: bytes, layers: list[bytes]) -> bytes:
    for blob in (config, *layers):
        await push_blob(c.session, base, repo, blob)
    body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                  "layers": [descriptor(OCI_LAYER, x) for x in layers]})
    status, info = await put_manifest(c.session, base, repo, ref, body)
    assert status == 201, info
    return body


async def _api(c: Client, method: str, path: str, expect: int | None = 200, body: Any = None) -> Any:
    async with c.request(method, f"/api/v0{path}", json=body) as r:
        data = await r.read()
        assert r.content_type == "application/json" or r.status == 204, (r.status, data[:300])
        if expect is not None:
            assert r.status == expect, (r.status, data[:500])
        return (json.loads(data) if data else None), r


async def test_tags_list_with_platforms_signatures_and_pages(app: web.Application, app_client: Client,
                                                             app_base: str) -> None:
    c, base, repo = app_client, app_base, "acme/web"
    amd = await _push(c, base, repo, "amd64", _config(), [os.urandom(100)])
    arm = await _push(c, base, repo, "arm", _config("arm64", "v8"), [os.urandom(100)])
    idx = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        descriptor(OCI_MANIFEST, amd, platform={"os": "linux", "architecture": "amd64"}),
        descriptor(OCI_MANIFEST, arm, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        descriptor(OCI_MANIFEST, amd, platform={"os": "unknown", "architecture": "unknown"})]})
    status, _ = await put_manifest(c.session, base, repo, "Multi", idx, OCI_INDEX)
    assert status == 201

    found, r = await _api(c, "GET", f"/repositories/{repo}/tags")
    tags = {t["name"]: t for t in found["tags"]}
    assert [t["name"] for t in found["tags"]] == ["amd64", "arm", "Multi"] and "X-Next-Page-Start" not in r.headers
    one = tags["amd64"]
    assert one["digest"] == digest_of(amd) and one["mediaType"] == OCI_MANIFEST and one["author"] == ""
    assert one["platforms"] == [{"digest": digest_of(amd), "os": "linux", "architecture": "amd64", "variant": ""}]
    assert tags["arm"]["platforms"][0]["variant"] == "v8"
    assert one["signed"] is False and one["inNotary"] is False and one["ociSigned"] is False
    assert one["scanSummary"] is None and one["lastPulled"] is None
    assert one["size"] == len(amd) + len(_config()) + 100
    assert [(p["digest"], p["architecture"]) for p in tags["Multi"]["platforms"]] == \
        [(digest_of(amd), "amd64"), (digest_of(arm), "arm64")]
    assert tags["Multi"]["size"] == len(idx) + 2 * len(_config()) + 200 + len(_config("arm64", "v8")) - len(_config())

    page, r = await _api(c, "GET", f"/repositories/{repo}/tags?pageSize=2")
    assert [t["name"] for t in page["tags"]] == ["amd64", "arm"] and r.headers["X-Next-Page-Start"] == "Multi"
    rest, r = await _api(c, "GET", f"/repositories/{repo}/tags?pageSize=2&pageStart=Multi")
    assert page["tags"] + rest["tags"] == found["tags"] and "X-Next-Page-Start" not in r.headers
    got, _ = await _api(c, "GET", f"/repositories/{repo}/tags/Multi")
    assert got == tags["Multi"]

    # a scan of the arm image (its row as the scanner leaves it): the tag's and the index's summary
    async with app[DATABASE].engine.begin() as conn:
        await conn.execute(text("INSERT INTO scan_images (digest, status, scanned_at) VALUES (:d, 6, now())"),
                           {"d": digest_of(arm)})
    for name in ("arm", "Multi"):
        got, _ = await _api(c, "GET", f"/repositories/{repo}/tags/{name}")
        summary = got["scanSummary"]
        assert summary is not None and summary["status"] == 6 and summary["scannedAt"], got
        assert (summary["critical"], summary["major"], summary["minor"]) == (0, 0, 0)

    # a pull by tag is recorded (in batches, every few seconds)
    status, _ = await get(c.session, f"{base}/v2/{repo}/manifests/amd64")
    assert status == 200
    deadline = time.monotonic() + 30
    while (await _api(c, "GET", f"/repositories/{repo}/tags/amd64"))[0]["lastPulled"] is None:
        assert time.monotonic() < deadline, "the pull was never recorded"
        await asyncio.sleep(0.5)

    # a cosign signature by a key the repository trusts: signed
    key = mk.ec_key()
    payload = mk.simple_signing(digest_of(amd))
    sig = mk.cosign_signature([(payload, mk.sign(key, payload), None)])
    for blob in sig.blobs:
        await push_blob(c.session, base, repo, blob)
    status, _ = await put_manifest(c.session, base, repo, f"sha256-{digest_of(amd)[7:]}.sig", sig.manifest)
    assert status == 201
    got, _ = await _api(c, "GET", f"/repositories/{repo}/tags/amd64")
    assert got["signed"] is False  # no key trusted yet
    await _api(c, "POST", f"/repositories/{repo}/trustedKeys", 201, {"name": "release", "pem": mk.public_pem(key)})
    got, _ = await _api(c, "GET", f"/repositories/{repo}/tags/amd64")
    assert got["signed"] is True and got["ociSigned"] is True and got["inNotary"] is False
    listed, _ = await _api(c, "GET", f"/repositories/{repo}/tags")
    assert [t["name"] for t in listed["tags"] if t["signed"]] == ["amd64"]
    # the signature's own tag is listed too: an artifact, no platform
    assert next(t for t in listed["tags"] if t["name"].endswith(".sig"))["platforms"] == []


async def test_manifest_detail_with_the_dockerfile(app: web.Application, app_client: Client, app_base: str) -> None:
    c, base, repo = app_client, app_base, "acme/detail"
    layers = [os.urandom(64) for _ in range(5)]
    body = await _push(c, base, repo, "v1", _config(history=HISTORY), layers)
    got, _ = await _api(c, "GET", f"/repositories/{repo}/manifests/v1")
    assert got["digest"] == digest_of(body) and got["mediaType"] == OCI_MANIFEST and got["size"] == len(body)
    assert got["manifests"] is None and got["repository"] == repo
    config = got["image"]["config"]
    assert config["digest"] == digest_of(_config(history=HISTORY)) and config["os"] == "linux"
    assert config["architecture"] == "amd64" and config["author"] == "dev@example.com"
    assert config["created"] == "2024-02-01T10:00:09Z" and config["labels"] == {"org.opencontainers.image.title": "web"}
    assert config["env"] == ["PATH=/usr/bin", "APP_ENV=prod"] and config["cmd"] == ["python", "app.py"]
    assert config["entrypoint"] is None and config["workingDir"] == "/app" and config["user"] == "app"
    assert config["exposedPorts"] == ["8080/tcp"]
    lines = got["image"]["layers"]
    assert [x["instruction"] for x in lines] == DOCKERFILE
    assert [x["digest"] for x in lines if not x["emptyLayer"]] == [digest_of(x) for x in layers]
    assert all(x["digest"] is None and x["size"] is None for x in lines if x["emptyLayer"])
    by_digest, _ = await _api(c, "GET", f"/repositories/{repo}/manifests/{digest_of(body)}")
    assert by_digest == got

    idx = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        descriptor(OCI_MANIFEST, body, platform={"os": "linux", "architecture": "amd64"})]})
    status, _ = await put_manifest(c.session, base, repo, "multi", idx, OCI_INDEX)
    assert status == 201
    got, _ = await _api(c, "GET", f"/repositories/{repo}/manifests/multi")
    assert got["image"] is None and len(got["manifests"]) == 1
    child = got["manifests"][0]
    assert child["digest"] == digest_of(body) and child["platform"]["architecture"] == "amd64"
    assert [x["instruction"] for x in child["image"]["layers"]] == DOCKERFILE


async def test_refusals_are_json_errors(app: web.Application, app_client: Client, app_base: str) -> None:
    c, base, repo = app_client, app_base, "acme/odd"
    await _push(c, base, repo, "v1", _config(), [os.urandom(10)])
    for path, status, code in [
        (f"/repositories/{repo}/manifests/nope", 404, "NO_SUCH_TAG"),
        (f"/repositories/{repo}/manifests/sha256:{'0' * 64}", 404, "NO_SUCH_MANIFEST"),
        (f"/repositories/{repo}/manifests/sha256:{'0' * 300}", 400, "INVALID_PARAMETER"),
        (f"/repositories/{repo}/manifests/bad:digest:x", 400, "INVALID_PARAMETER"),
        (f"/repositories/{repo}/manifests/{'x' * 200}", 400, "INVALID_PARAMETER"),
        (f"/repositories/{repo}/tags/nope", 404, "NO_SUCH_TAG"),
        (f"/repositories/{repo}/tags/{'x' * 5000}", 404, "NO_SUCH_TAG"),
        (f"/repositories/{repo}/tags?pageSize=0", 400, "INVALID_PARAMETER"),
        (f"/repositories/{repo}/tags?pageStart={'x' * 300}", 400, "INVALID_PARAMETER"),
        ("/repositories/acme/nothing/tags", 404, "NO_SUCH_REPOSITORY"),
        ("/repositories/acme/nothing/manifests/v1", 404, "NO_SUCH_REPOSITORY"),
        (f"/index/autocomplete?query={'a' * 300}", 400, "INVALID_PARAMETER"),
        ("/index/autocomplete?query=a&limit=1000", 400, "INVALID_PARAMETER"),
        ("/index/autocomplete?query=a&includeAccounts=maybe", 400, "INVALID_PARAMETER"),
    ]:
        found, _ = await _api(c, "GET", path, status)
        assert found["errors"][0]["code"] == code, (path, found)
    # a digest as the tag to delete deletes nothing
    gone, _ = await _api(c, "DELETE", f"/repositories/{repo}/tags/sha256:{'0' * 64}", 404)
    assert gone["errors"][0]["code"] == "NO_SUCH_TAG"

    # a config over the bound: refused, the tag list still answers (no platform)
    big = _config(padding="x" * (configs.MAX_CONFIG + 1))
    await _push(c, base, repo, "big", big, [os.urandom(10)])
    found, _ = await _api(c, "GET", f"/repositories/{repo}/manifests/big", 400)
    assert found["errors"][0]["code"] == "UNSUPPORTED"
    got, _ = await _api(c, "GET", f"/repositories/{repo}/tags/big")
    assert got["platforms"] == []
    # a config missing from storage: NOT_FOUND
    lost = _config(arch="riscv64")
    await _push(c, base, repo, "lost", lost, [os.urandom(10)])
    await app[STORAGE].delete(blob_path(digest_of(lost)))
    found, _ = await _api(c, "GET", f"/repositories/{repo}/manifests/lost", 404)
    assert found["errors"][0]["code"] == "NOT_FOUND" and "missing" in found["errors"][0]["message"]


async def test_delete_tag_and_immutable_tags(app: web.Application, app_client: Client, app_base: str) -> None:
    c, base, repo = app_client, app_base, "acme/del"
    body = await _push(c, base, repo, "v1", _config(), [os.urandom(10)])
    await _push(c, base, repo, "v2", _config(), [os.urandom(10)])
    await _api(c, "DELETE", f"/repositories/{repo}/tags/v1", 204)
    await _api(c, "GET", f"/repositories/{repo}/tags/v1", 404)
    got, _ = await _api(c, "GET", f"/repositories/{repo}/manifests/{digest_of(body)}")  # the manifest stays
    assert got["digest"] == digest_of(body)
    await _api(c, "DELETE", f"/repositories/{repo}/tags/v1", 404)
    await _api(c, "PATCH", f"/repositories/{repo}", 200, {"immutableTags": True})
    refused, _ = await _api(c, "DELETE", f"/repositories/{repo}/tags/v2", 400)
    assert refused["errors"][0]["code"] == "INVALID_OPERATION"
    await _api(c, "GET", f"/repositories/{repo}/tags/v2")

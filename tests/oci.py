"""OCI for tests: media types, digests, descriptors and manifests, and pushes and pulls over HTTP.

The HTTP helpers take an aiohttp session and a registry's ``base`` URL: a ``dtr serve`` process
(``dtr.url``) or the in-process app (``app_client.session`` and ``app_base``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import aiohttp

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
#: An ``Accept`` header for any manifest.
ALL_MANIFEST_TYPES = ", ".join(MANIFEST_TYPES)

#: The image-spec's empty descriptor: the two bytes ``{}``.
EMPTY_BYTES = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def dumps(doc: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(doc, separators=(",", ":")).encode()


def image(config: bytes, layers: list[bytes], subject: dict[str, Any] | None = None) -> bytes:
    """An OCI image manifest: ``config`` and uncompressed tar ``layers``, optionally a ``subject``."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                           "layers": [descriptor(OCI_LAYER, x) for x in layers]}
    if subject is not None:
        doc["subject"] = subject
    return json.dumps(doc).encode()


def index(children: list[bytes]) -> bytes:
    """An OCI index of image manifests, one made-up architecture each."""
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        descriptor(OCI_MANIFEST, c, platform={"os": "linux", "architecture": f"arch{i}"})
        for i, c in enumerate(children)]}).encode()


async def has_blob(http: aiohttp.ClientSession, base: str, repo: str, data: bytes) -> bool:
    async with http.head(f"{base}/v2/{repo}/blobs/{digest_of(data)}") as r:
        return r.status == 200


async def upload_blob(http: aiohttp.ClientSession, base: str, repo: str, data: bytes,
                      algorithm: str = "sha256") -> str:
    """A monolithic upload (``POST ?digest=``), asserting 201; returns the digest."""
    d = digest_of(data, algorithm)
    async with http.post(f"{base}/v2/{repo}/blobs/uploads/?digest={d}", data=data,
                         headers={"Content-Type": "application/octet-stream"}) as r:
        assert r.status == 201, await r.text()
    return d


async def push_blob(http: aiohttp.ClientSession, base: str, repo: str, data: bytes,
                    mount_from: str | None = None) -> str:
    """Upload (or mount) ``data`` into ``repo`` unless it is there already, as docker does; returns the digest."""
    d = digest_of(data)
    if await has_blob(http, base, repo, data):
        return d
    if mount_from is None:
        return await upload_blob(http, base, repo, data)
    async with http.post(f"{base}/v2/{repo}/blobs/uploads/?mount={d}&from={mount_from}") as r:
        if r.status == 201:
            return d
        assert r.status == 202, await r.text()
        location = r.headers["Location"]
    async with http.put(f"{base}{location}?digest={d}", data=data,
                        headers={"Content-Type": "application/octet-stream"}) as r:
        assert r.status == 201, await r.text()
    return d


async def put_manifest(http: aiohttp.ClientSession, base: str, repo: str, ref: str, body: bytes,
                       media_type: str = OCI_MANIFEST) -> tuple[int, Any]:
    """(status, the digest header) or, on an error, (status, the error JSON)."""
    async with http.put(f"{base}/v2/{repo}/manifests/{ref}", data=body, headers={"Content-Type": media_type}) as r:
        return r.status, (await r.json() if r.status >= 400 else r.headers.get("Docker-Content-Digest"))


async def push_image(http: aiohttp.ClientSession, base: str, repo: str, ref: str, config: bytes,
                     layers: list[bytes], subject: dict[str, Any] | None = None) -> bytes:
    """Push the blobs and the ``image`` manifest at ``ref``, asserting 201; returns the manifest."""
    for blob in (config, *layers):
        await push_blob(http, base, repo, blob)
    body = image(config, layers, subject)
    status, info = await put_manifest(http, base, repo, ref, body)
    assert status == 201, info
    return body


async def get(http: aiohttp.ClientSession, url: str, accept: str = f"{OCI_MANIFEST}, {OCI_INDEX}") -> tuple[int, bytes]:
    async with http.get(url, headers={"Accept": accept}) as r:
        return r.status, await r.read()


async def pulls_whole(http: aiohttp.ClientSession, base: str, repo: str, ref: str, expect: bytes) -> None:
    """The manifest at ``ref`` is ``expect`` and every blob (and child) it names reads back intact."""
    status, body = await get(http, f"{base}/v2/{repo}/manifests/{ref}")
    assert status == 200, f"{repo}:{ref} manifest: {status} {body[:200]!r}"
    assert body == expect, f"{repo}:{ref}: another manifest"
    doc = json.loads(body)
    for child in doc.get("manifests", []):
        status, cbody = await get(http, f"{base}/v2/{repo}/manifests/{child['digest']}")
        assert status == 200 and digest_of(cbody) == child["digest"], f"{repo}@{child['digest']}: {status}"
        await pulls_whole(http, base, repo, child["digest"], cbody)
    for d in ([doc["config"]] if "config" in doc else []) + doc.get("layers", []):
        status, data = await get(http, f"{base}/v2/{repo}/blobs/{d['digest']}", "*/*")
        assert status == 200, f"{repo} blob {d['digest']}: {status} {data[:200]!r}"
        assert digest_of(data) == d["digest"], f"{repo} blob {d['digest']}: corrupt"

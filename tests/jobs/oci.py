"""Minimal OCI pushes and pulls over the HTTP API (aiohttp), for the job tests."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import aiohttp

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(data: bytes, media_type: str = LAYER) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest(data), "size": len(data)}


def image(config: bytes, layers: list[bytes], subject: dict[str, Any] | None = None) -> bytes:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": descriptor(config, CONFIG), "layers": [descriptor(x) for x in layers]}
    if subject is not None:
        doc["subject"] = subject
    return json.dumps(doc).encode()


def index(children: list[bytes]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**descriptor(c, OCI_MANIFEST), "platform": {"os": "linux", "architecture": f"arch{i}"}}
        for i, c in enumerate(children)]}).encode()


async def has_blob(http: aiohttp.ClientSession, base: str, repo: str, data: bytes) -> bool:
    async with http.head(f"{base}/v2/{repo}/blobs/{digest(data)}") as r:
        return r.status == 200


async def push_blob(http: aiohttp.ClientSession, base: str, repo: str, data: bytes,
                    mount_from: str | None = None) -> None:
    """Upload (or mount) ``data`` into ``repo`` unless it is there already, as docker does."""
    if await has_blob(http, base, repo, data):
        return
    d = digest(data)
    if mount_from is not None:
        async with http.post(f"{base}/v2/{repo}/blobs/uploads/?mount={d}&from={mount_from}") as r:
            if r.status == 201:
                return
            assert r.status == 202, await r.text()
            location = r.headers["Location"]
        async with http.put(f"{base}{location}?digest={d}", data=data,
                            headers={"Content-Type": "application/octet-stream"}) as r:
            assert r.status == 201, await r.text()
            return
    async with http.post(f"{base}/v2/{repo}/blobs/uploads/?digest={d}", data=data,
                         headers={"Content-Type": "application/octet-stream"}) as r:
        assert r.status == 201, await r.text()


async def put_manifest(http: aiohttp.ClientSession, base: str, repo: str, ref: str, body: bytes,
                       media_type: str = OCI_MANIFEST) -> tuple[int, Any]:
    async with http.put(f"{base}/v2/{repo}/manifests/{ref}", data=body, headers={"Content-Type": media_type}) as r:
        return r.status, (await r.json() if r.status >= 400 else r.headers.get("Docker-Content-Digest"))


async def push_image(http: aiohttp.ClientSession, base: str, repo: str, ref: str, config: bytes,
                     layers: list[bytes], subject: dict[str, Any] | None = None) -> bytes:
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
        assert status == 200 and digest(cbody) == child["digest"], f"{repo}@{child['digest']}: {status}"
        await pulls_whole(http, base, repo, child["digest"], cbody)
    for d in ([doc["config"]] if "config" in doc else []) + doc.get("layers", []):
        status, data = await get(http, f"{base}/v2/{repo}/blobs/{d['digest']}", "*/*")
        assert status == 200, f"{repo} blob {d['digest']}: {status} {data[:200]!r}"
        assert digest(data) == d["digest"], f"{repo} blob {d['digest']}: corrupt"

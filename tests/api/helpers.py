"""A small client for the OCI Distribution API, used by the spec tests in this package (the media
types and pushes it builds on: ``tests.oci``).

Everything goes over real HTTP to the session ``dtr`` server; nothing is mocked.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from dtr.keys import AUTH
from tests.auth.client import basic
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    EMPTY_BYTES,
    EMPTY_DIGEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    dumps,
    upload_blob,
)


async def error_codes(r: aiohttp.ClientResponse) -> list[str]:
    """The ``code`` of each error in a spec error body (asserting its shape)."""
    assert r.content_type == "application/json", r.content_type
    body = await r.json()
    assert isinstance(body["errors"], list) and body["errors"]
    for e in body["errors"]:
        assert set(e) <= {"code", "message", "detail"}
        assert e["code"].replace("_", "").isalpha() and e["code"].isupper()
    return [e["code"] for e in body["errors"]]


class Registry:
    """A thin client: ``base`` is the server URL (``http://127.0.0.1:port``)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def push_blob(self, name: str, data: bytes | None = None, algorithm: str = "sha256") -> str:
        """Monolithic POST ?digest= upload; returns the digest."""
        return await upload_blob(self.http, self.base, name, os.urandom(64) if data is None else data, algorithm)

    async def put_manifest(self, name: str, ref: str, body: bytes, media_type: str | None) -> aiohttp.ClientResponse:
        headers = {"Content-Type": media_type} if media_type else {}
        async with self.http.put(self.url(f"/v2/{name}/manifests/{ref}"), data=body, headers=headers) as r:
            await r.read()
            return r

    async def image(self, name: str, tag: str | None = None, media_type: str = OCI_MANIFEST,
                    **fields: Any) -> tuple[str, bytes]:
        """Push a config and a layer and an image manifest referencing them; returns (digest, body)."""
        docker = media_type == DOCKER_MANIFEST
        config = dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                        "nonce": os.urandom(8).hex()})
        layer = os.urandom(128)
        await self.push_blob(name, config)
        await self.push_blob(name, layer)
        doc: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": media_type,
            "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
            "layers": [descriptor(DOCKER_LAYER if docker else OCI_LAYER_GZIP, layer)],
            **fields,
        }
        body = dumps(doc)
        digest = digest_of(body)
        r = await self.put_manifest(name, tag or digest, body, media_type)
        assert r.status == 201, r.status
        return digest, body

    async def artifact(self, name: str, subject: dict[str, Any] | None, artifact_type: str,
                       annotations: dict[str, str] | None = None, tag: str | None = None) -> tuple[str, bytes]:
        """An OCI 1.1 artifact: empty config, one layer, ``artifactType``, optional ``subject``."""
        await self.push_blob(name, EMPTY_BYTES)
        layer = os.urandom(32)
        await self.push_blob(name, layer)
        doc: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
            "layers": [descriptor("application/octet-stream", layer)],
        }
        if subject is not None:
            doc["subject"] = subject
        if annotations:
            doc["annotations"] = annotations
        body = dumps(doc)
        digest = digest_of(body)
        r = await self.put_manifest(name, tag or digest, body, OCI_MANIFEST)
        assert r.status == 201, r.status
        return digest, body


# -- the in-process app (``app_client``), auth off or on -------------------------------------

Client = TestClient[web.Request, web.Application]
#: Run a test on the in-process app with auth off and on (``auth_config``: the admin's password).
AUTH_MODES = pytest.mark.parametrize("app_extra", [{}, auth_config()], ids=["auth-off", "auth-on"])


def image_of(config: bytes, layer: bytes, /, **fields: Any) -> bytes:
    """An OCI image manifest of ``config`` and one ``layer``, with more top-level ``fields``."""
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
           "layers": [descriptor(OCI_LAYER, layer)], **fields}
    return dumps(doc)


async def app_token(app_client: Client, app_base: str, scope: str) -> dict[str, str]:
    """An admin's bearer token for ``scope`` as headers ({} when auth is off)."""
    if app_client.app[AUTH] is None:
        return {}
    async with app_client.session.get(f"{app_base}/auth/token", params={"scope": scope},
                                      headers={"Authorization": basic(*ADMIN_AUTH)}) as r:
        assert r.status == 200, await r.text()
        return {"Authorization": f"Bearer {(await r.json())['token']}"}


async def app_seed(app_client: Client, app_base: str, name: str = "acme/app") -> tuple[dict[str, str], bytes, bytes]:
    """An image ``name:v1`` (config and layer); returns a push token's headers, config, layer."""
    if app_client.app[AUTH] is not None:
        async with app_client.session.post(f"{app_base}/api/v0/meta/settings", json={"createRepositoryOnPush": True},
                                           headers={"Authorization": basic(*ADMIN_AUTH)}) as r:
            assert r.status == 200, await r.text()
    headers = await app_token(app_client, app_base, f"repository:{name}:pull,push,delete")
    http = aiohttp.ClientSession(headers=headers)
    async with http:
        config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(78)
        for blob in (config, layer):
            await upload_blob(http, app_base, name, blob)
        body = image_of(config, layer)
        async with http.put(f"{app_base}/v2/{name}/manifests/v1", data=body,
                            headers={"Content-Type": OCI_MANIFEST}) as r:
            assert r.status == 201, await r.text()
    return headers, config, layer

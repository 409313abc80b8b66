"""The in-process app (``app_client``): HTTP in, services read back, on a real Postgres and filesystem."""

from __future__ import annotations

import os

from aiohttp import web
from aiohttp.test_utils import TestClient

from dtr.keys import REGISTRY, STORAGE
from dtr.registry.names import blob_path
from tests.oci import digest_of, push_image


async def test_a_push_over_http_is_what_the_services_read(
    app: web.Application, app_client: TestClient[web.Request, web.Application], app_base: str
) -> None:
    config, layer = b'{"architecture": "amd64", "os": "linux"}', os.urandom(70_000)
    body = await push_image(app_client.session, app_base, "inproc/app", "v1", config, [layer])

    registry = app[REGISTRY]
    assert await registry.blob_size("inproc/app", digest_of(layer)) == len(layer)
    assert await registry.blob_size("inproc/other", digest_of(layer)) is None
    stored = b"".join([chunk async for chunk in app[STORAGE].reader(blob_path(digest_of(layer)))])
    assert stored == layer
    manifest = await registry.get_manifest("inproc/app", "v1")
    assert (manifest.digest, manifest.payload) == (digest_of(body), body)

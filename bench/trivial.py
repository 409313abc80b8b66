"""The ceiling: a trivial aiohttp handler on uvloop, answering the bench's requests with no work.

``python bench/trivial.py PORT BLOBFILE``: manifests get a fixed body, blob GETs stream BLOBFILE
(sendfile), uploads read and discard their bodies. Nothing is checked or stored.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid

import uvloop
from aiohttp import web

MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
               "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
    "layers": [],
}).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
HEADERS = {"Docker-Content-Digest": DIGEST, "Content-Type": "application/vnd.oci.image.manifest.v1+json",
           "Docker-Distribution-API-Version": "registry/2.0"}


def make_app(blobfile: str) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        if "/manifests/" in path and method in ("GET", "HEAD"):
            return web.Response(body=MANIFEST if method == "GET" else None, headers=HEADERS)
        if "/blobs/uploads" in path:
            async for _ in request.content.iter_any():
                pass
            if method == "PUT":
                return web.Response(status=201, headers={"Docker-Content-Digest": request.query.get("digest", "")})
            loc = path if method == "PATCH" else f"{path.rstrip('/')}/{uuid.uuid4()}"
            return web.Response(status=202, headers={"Location": loc, "Range": "0-0"})
        if "/blobs/" in path and method in ("GET", "HEAD"):
            return web.FileResponse(blobfile, chunk_size=1 << 20)
        return web.json_response({})

    app = web.Application(client_max_size=0)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


if __name__ == "__main__":
    uvloop.install()
    web.run_app(make_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)

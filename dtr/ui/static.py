"""The UI's static files (``dtr/ui/static``), served from memory at ``/ui/static/<hash>/<name>``:
the hash is of the file's content, so a URL never changes meaning and is cached for a year;
an older hash still answers the current file, uncached (a page from before an upgrade)."""

from __future__ import annotations

import dataclasses
import hashlib
from importlib import resources

from aiohttp import web

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon", ".LICENSE": "text/plain; charset=utf-8"}
_YEAR = "public, max-age=31536000, immutable"


@dataclasses.dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    digest: str


def load_assets() -> dict[str, Asset]:
    """Every file of ``dtr/ui/static`` by name."""
    found: dict[str, Asset] = {}
    for entry in resources.files("dtr.ui").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            body = entry.read_bytes()
            found[entry.name] = Asset(body, _TYPES[suffix], hashlib.sha256(body).hexdigest()[:16])
    return found


class StaticFiles:
    def __init__(self, prefix: str) -> None:
        """``prefix``: the URL path the files are served under (``/ui/static``)."""
        self.prefix = prefix.rstrip("/")
        self.assets = load_assets()

    def url(self, name: str) -> str:
        """The versioned URL of the file ``name``; KeyError for a file that is not shipped."""
        return f"{self.prefix}/{self.assets[name].digest}/{name}"

    async def handle(self, request: web.Request) -> web.Response:
        asset = self.assets.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound(text="no such file")
        current = request.match_info["digest"] == asset.digest
        etag = f'"{asset.digest}"'
        headers = {"Cache-Control": _YEAR if current else "no-cache", "ETag": etag,
                   "X-Content-Type-Options": "nosniff"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=asset.body, content_type=asset.content_type.split(";")[0],
                            charset="utf-8" if "charset" in asset.content_type else None, headers=headers)

"""The OCI Distribution API (``/v2/``) over HTTP: routing, headers, status codes.

One aiohttp route takes every ``/v2/`` path so that unknown paths and wrong methods get the
spec's JSON errors too; ``handle_v2`` matches the path once against ``ROUTES`` (the one table of
endpoints, their access rules and metrics areas, see ``dtr.registry.routes``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from dtr.db.errors import DatabaseUnavailable
from dtr.errors import ErrorCode
from dtr.keys import ACTOR, AREA, CONFIG, MAY_PULL, REGISTRY, REPOSITORY, STORAGE
from dtr.ops import metrics
from dtr.registry.errors import RegistryError, codes
from dtr.registry.inputs import byte_range, check_path, check_query, unencoded
from dtr.registry.manifests import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, is_media_type
from dtr.registry.names import (
    TAG_RE,
    blob_path,
    check_digest,
    check_name,
    check_tag,
    is_digest,
    is_name,
    is_valid_digest,
)
from dtr.registry.routes import CATALOG, DELETE, PULL, PUSH, Gate, Route, RouteTable
from dtr.registry.service import StoredManifest
from dtr.registry.uploads import upload_headers
from dtr.storage.base import StorageError

log = logging.getLogger("dtr.registry")

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
#: The spec's ``^[0-9]+-[0-9]+$``, also taking the ``bytes`` prefix and ``/total`` some clients send.
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]{1,19}|\*))?$")
_PAGE_SIZE = re.compile(r"^[0-9]{1,64}$")


def _repo(request: web.Request, name: str) -> str:
    request[REPOSITORY] = name
    return check_name(name)


def _upload_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise RegistryError(codes.BLOB_UPLOAD_UNKNOWN, detail={"uuid": raw[:64]}) from None


def _body(request: web.Request) -> AsyncIterator[bytes]:
    """An upload's body as sent (``dtr.registry.inputs.unencoded``)."""
    unencoded(request, codes.BLOB_UPLOAD_INVALID)
    return request.content.iter_any()


def _page_size(request: web.Request, cap: int) -> int | None:
    """``n``, capped at ``cap`` (a Link header then says more follow)."""
    raw_n = request.query.get("n")
    if raw_n is None:
        return None
    if not _PAGE_SIZE.fullmatch(raw_n):
        raise RegistryError(codes.PAGINATION_NUMBER_INVALID, detail={"n": raw_n[:32]},
                            message="n must be a non-negative integer")
    return min(int(raw_n), cap)


def _page_params(request: web.Request, cap: int, last_is: Callable[[str], object],
                 last_code: ErrorCode) -> tuple[int | None, str | None]:
    """``n`` (see _page_size) and ``last`` (checked by ``last_is``)."""
    n = _page_size(request, cap)
    last = request.query.get("last") or None
    if last is not None and not last_is(last):
        raise RegistryError(last_code, detail={"last": last[:256]},
                            message="last must be a value from the list (a tag or repository name)")
    return n, last


def _link(path: str, n: int | None, last: str) -> str:
    q = {"last": last} if n is None else {"n": str(n), "last": last}
    return f'<{path}?{urlencode(q)}>; rel="next"'


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json",
                        headers=headers)


# -- base, catalog, tags -----------------------------------------------------------------


async def base(request: web.Request, _name: str, _ref: str) -> web.Response:
    return _json({})


async def catalog(request: web.Request, _name: str, _ref: str) -> web.Response:
    cfg = request.app[CONFIG]
    n, last = _page_params(request, cfg.registry.max_page_size, is_name, codes.NAME_INVALID)
    names, more = await request.app[REGISTRY].catalog(n if n is not None else cfg.registry.max_page_size, last)
    headers = {"Link": _link("/v2/_catalog", n, names[-1])} if more and names else None
    return _json({"repositories": names}, headers=headers)


async def tags_list(request: web.Request, name: str, _: str) -> web.Response:
    n, last = _page_params(request, request.app[CONFIG].registry.max_page_size, TAG_RE.fullmatch,
                           codes.TAG_INVALID)
    names, more = await request.app[REGISTRY].pull_tags(name, n, last)
    headers = {"Link": _link(f"/v2/{name}/tags/list", n, names[-1])} if more and names else None
    return _json({"name": name, "tags": names}, headers=headers)


# -- manifests ---------------------------------------------------------------------------


def _check_reference(reference: str, by_digest: bool, method: str) -> None:
    """A digest must be well formed (400); a tag outside the grammar is 400 for PUT and, as the
    reference registry answers, a manifest unknown (404) for the rest: no such tag can exist."""
    if by_digest:
        check_digest(reference)
    elif method == "PUT":
        check_tag(reference)
    elif not TAG_RE.fullmatch(reference):
        raise RegistryError(codes.MANIFEST_UNKNOWN, detail={"tag": reference[:200]},
                            message="no such tag: not a valid tag name")


class _Accept:
    """The media types an ``Accept`` header list allows (RFC 9110: none means anything; q=0 excludes)."""

    def __init__(self, headers: tuple[str, ...]) -> None:
        self.any = True
        self.allowed: set[str] = set()
        self.refused: set[str] = set()
        for header in headers:
            for part in header.split(","):
                mt, *params = (p.strip() for p in part.split(";"))
                if not mt:
                    continue
                self.any = False
                (self.refused if any(_is_q_zero(p) for p in params) else self.allowed).add(mt.lower())

    def __call__(self, media_type: str) -> bool:
        mt = media_type.lower()
        if mt in self.refused:
            return False
        if self.any or mt in self.allowed:
            return True
        return "*/*" in self.allowed or f"{mt.split('/')[0]}/*" in self.allowed


@functools.lru_cache(maxsize=256)
def _accept(headers: tuple[str, ...]) -> _Accept:
    """Parsed Accept headers; clients send the same few over and over."""
    return _Accept(headers)


def _is_q_zero(param: str) -> bool:
    key, _, value = param.partition("=")
    try:
        return key.strip().lower() == "q" and float(value) == 0
    except ValueError:
        return False


async def _negotiate(request: web.Request, name: str, reference: str, by_digest: bool,
                     m: StoredManifest) -> StoredManifest:
    """What the reference registry (distribution) answers a client whose Accept excludes ``m``'s type.

    OCI manifests and indexes: MANIFEST_UNKNOWN. A Docker manifest list fetched by tag: its
    linux/amd64 image if the client takes that, else MANIFEST_UNKNOWN; by digest it is returned
    as is. Docker schema 2 manifests are always returned (schema 1 conversion is gone).
    """
    accepts = _accept(tuple(request.headers.getall("Accept", ())))
    if accepts(m.media_type) or m.media_type == DOCKER_MANIFEST:
        return m
    if m.media_type == DOCKER_LIST:
        if by_digest:
            return m
        child = await request.app[REGISTRY].platform_child(name, m, accepts)
        if child is not None:
            return child
    raise RegistryError(codes.MANIFEST_UNKNOWN, detail={"reference": reference, "mediaType": m.media_type},
                        message=f"the manifest is a {m.media_type}, which the Accept header does not allow")


async def _read_manifest(request: web.Request, limit: int) -> bytes:
    """The whole request body, refused with 413 past ``limit`` bytes (a Content-Length or the bytes sent)."""
    def too_large(size: int | None) -> RegistryError:
        detail = {"limit": limit} if size is None else {"size": size, "limit": limit}
        return RegistryError(codes.MANIFEST_TOO_LARGE, detail=detail,
                             message=f"manifest is larger than the limit of {limit} bytes")

    unencoded(request, codes.MANIFEST_INVALID)
    if request.content_length is not None and request.content_length > limit:
        raise too_large(request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise too_large(None)
    return bytes(body)


async def manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    svc = request.app[REGISTRY]
    method = request.method
    by_digest = is_digest(reference)
    _check_reference(reference, by_digest, method)
    if method in ("GET", "HEAD"):
        stored = await svc.pull_manifest(name, reference)
        if not by_digest:
            for gate in svc.pull_gates:
                await gate(name, reference, stored.digest)
        m = await _negotiate(request, name, reference, by_digest, stored)
        headers = m.headers
        if not by_digest:
            for pulled in svc.tag_pulled:
                pulled(name, reference)
        if method == "HEAD":
            return web.Response(headers=headers)
        metrics.pulled(by_digest)
        return web.Response(body=m.payload, headers=headers)
    if method == "PUT":
        body = await _read_manifest(request, request.app[CONFIG].registry.max_manifest_size)
        digest, parsed = await svc.put_manifest(name, reference, body, request.headers.get("Content-Type"),
                                                request[ACTOR])
        metrics.pushed(by_digest)
        headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
        if parsed.subject:
            headers["OCI-Subject"] = parsed.subject
        return web.Response(status=201, headers=headers)
    digest = await svc.delete_manifest(name, reference, request[ACTOR])  # DELETE: the route table allows no other
    return web.Response(status=202, headers={"Docker-Content-Digest": digest})


# -- blobs -------------------------------------------------------------------------------


async def blob(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    check_digest(digest)
    svc = request.app[REGISTRY]
    if request.method == "DELETE":
        await svc.delete_blob(name, digest, request[ACTOR])
        return web.Response(status=202, headers={"Docker-Content-Digest": digest})
    size = await svc.blob_size(name, digest)
    if size is None and svc.misses is not None:
        if (answer := await svc.misses.blob(request, name, digest)) is not None:
            return answer
        size = await svc.blob_size(name, digest)
    if size is None:
        raise RegistryError(codes.BLOB_UNKNOWN, detail={"digest": digest})
    headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"', "Accept-Ranges": "bytes",
               "Content-Type": "application/octet-stream", "Cache-Control": "max-age=31536000"}
    storage = request.app[STORAGE]
    path = blob_path(digest)
    if request.method == "HEAD":
        headers["Content-Length"] = str(size)
        return web.Response(headers=headers)
    if request.app[CONFIG].storage_config.redirect:
        url = await storage.redirect_url(path)
        if url:
            raise web.HTTPTemporaryRedirect(url, headers=headers)
    metrics.blob_sent(request, size)
    local = storage.local_path(path)
    if local is not None:
        return web.FileResponse(local, headers=headers, chunk_size=1 << 20)
    return await _stream_blob(request, path, size, headers)


async def _stream_blob(request: web.Request, path: str, size: int, headers: dict[str, str]) -> web.StreamResponse:
    start, end = 0, size - 1
    status = 200
    if (wanted := byte_range(request, size)) is not None:
        if not wanted:
            return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        start, end = wanted.start, wanted.stop - 1
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    resp = web.StreamResponse(status=status, headers={**headers, **API_VERSION})
    resp.content_length = end - start + 1
    await resp.prepare(request)
    remaining = end - start + 1
    async for chunk in request.app[STORAGE].reader(path, start):
        if len(chunk) > remaining:
            chunk = chunk[:remaining]
        await resp.write(chunk)
        remaining -= len(chunk)
        if remaining <= 0:
            break
    await resp.write_eof()
    return resp


# -- uploads -----------------------------------------------------------------------------


async def start_upload(request: web.Request, name: str, _: str) -> web.Response:
    svc = request.app[REGISTRY]
    mount = request.query.get("mount")
    source = request.query.get("from") or None
    # A mount that cannot happen (malformed or unknown digest or source, or no repository the
    # requester may pull from holds it) falls back to an upload session (202), as the spec says;
    # without ``from`` a repository the requester may pull from that holds the blob serves.
    if mount and MAY_PULL in request and is_valid_digest(mount) and (source is None or is_name(source)) \
            and await svc.mount(name, mount, source, request[MAY_PULL], request[ACTOR]):
        return web.Response(status=201, headers={
            "Location": f"/v2/{name}/blobs/{mount}", "Docker-Content-Digest": mount})
    digest = request.query.get("digest")
    if digest is not None:  # a monolithic upload
        check_digest(digest)
        body = _body(request)
        await svc.uploads.finish(name, await svc.uploads.start(name, request[ACTOR]), digest, body)
        return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                                 "Docker-Content-Digest": digest})
    upload_id = await svc.uploads.start(name, request[ACTOR])
    return web.Response(status=202, headers=upload_headers(name, upload_id, 0))


async def upload(request: web.Request, name: str, raw_id: str) -> web.Response:
    svc = request.app[REGISTRY].uploads
    upload_id = _upload_id(raw_id)
    method = request.method
    if method == "GET":
        size = await svc.size(name, upload_id)
        return web.Response(status=204, headers=upload_headers(name, upload_id, size))
    if method == "PATCH":
        start, length = _content_range(request)
        size = await svc.append(name, upload_id, _body(request), start, length)
        return web.Response(status=202, headers=upload_headers(name, upload_id, size))
    if method == "PUT":
        digest = request.query.get("digest")
        if digest is None:
            raise RegistryError(codes.DIGEST_INVALID, message="the digest query parameter is required")
        check_digest(digest)
        start, length = _content_range(request)
        has_body = (request.content_length or 0) > 0 or request.headers.get("Transfer-Encoding") == "chunked"
        if has_body and start is not None:
            await svc.append(name, upload_id, _body(request), start, length)
            has_body = False
        await svc.finish(name, upload_id, digest, _body(request) if has_body else None)
        return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                                 "Docker-Content-Digest": digest})
    await svc.cancel(name, upload_id)  # DELETE: the route table allows no other
    return web.Response(status=204)


def _content_range(request: web.Request) -> tuple[int | None, int | None]:
    """(start, length) from Content-Range: malformed is 400, end before start is 416."""
    raw = request.headers.get("Content-Range")
    if raw is None:
        return None, None
    m = _CONTENT_RANGE.fullmatch(raw.strip())
    if not m:
        raise RegistryError(codes.BLOB_UPLOAD_INVALID, detail={"Content-Range": raw[:64]},
                            message="Content-Range must be <start>-<end> (inclusive byte offsets)")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise RegistryError(codes.RANGE_INVALID, detail={"Content-Range": raw[:64]},
                            message="Content-Range ends before it starts")
    length = end - start + 1
    if request.content_length is not None and request.content_length != length:
        raise RegistryError(codes.SIZE_INVALID, message="Content-Range does not match Content-Length",
                            detail={"Content-Range": raw[:64], "Content-Length": request.content_length})
    return start, length


# -- referrers ---------------------------------------------------------------------------


async def referrers(request: web.Request, name: str, digest: str) -> web.Response:
    check_digest(digest)
    cfg = request.app[CONFIG].registry
    artifact_type = request.query.get("artifactType") or None
    n = _page_size(request, cfg.max_page_size)
    limit = cfg.max_page_size if n is None else n
    raw_cursor = request.query.get("cursor", "0")
    if not _PAGE_SIZE.fullmatch(raw_cursor) or int(raw_cursor) > 2**63 - 1:
        raise RegistryError(codes.PAGINATION_NUMBER_INVALID, detail={"cursor": raw_cursor[:32]},
                            message="cursor must come from a Link header")
    if artifact_type is not None and not is_media_type(artifact_type):
        rows = []  # no stored manifest has such an artifactType: they are all checked on push
    else:
        rows = await request.app[REGISTRY].referrers(name, digest, artifact_type, int(raw_cursor),
                                                             limit + 1)
    # A page holds at most ``limit`` descriptors and stays within the manifest size limit; a
    # Link header (rel="next") then leads on, as the spec requires when one index cannot hold all.
    descriptors: list[dict[str, Any]] = []
    size, cursor = 100, None
    for i, (row_cursor, d) in enumerate(rows):
        size += len(json.dumps(d)) + 2
        if i == limit or (descriptors and size > cfg.max_manifest_size):
            break
        descriptors.append(d)
        cursor = row_cursor
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type is not None else {}
    if len(descriptors) < len(rows) and cursor is not None:
        query = {"cursor": str(cursor), **({"n": str(n)} if n is not None else {}),
                 **({"artifactType": artifact_type} if artifact_type else {})}
        headers["Link"] = f'</v2/{name}/referrers/{digest}?{urlencode(query)}>; rel="next"'
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    resp = _json(index, headers=headers)
    resp.content_type = OCI_INDEX
    return resp


# -- the route table and dispatch ----------------------------------------------------------

#: Every /v2 endpoint. Order matters only for ``<name>/blobs/uploads``, which is the upload start,
#: not the blob ``uploads``; the manifest route comes first: a manifest GET is the hottest request.
ROUTES = RouteTable([
    Route(r"(.+)/manifests/([^/]+)", manifest,
          {"GET": PULL, "HEAD": PULL, "PUT": PUSH, "DELETE": DELETE}, "manifests"),
    Route(r"(.+)/blobs/uploads/?()", start_upload, {"POST": PUSH}, "blobs_uploads", mounts=True),
    # An upload's status needs pull only, as the reference registry asks: its id is an unguessable
    # uuid4 known only to whoever started it, and the answer is an offset. Writing to or
    # cancelling an upload is pushing (DTR gives push and delete the same level, read-write).
    Route(r"(.+)/blobs/uploads/([^/]+)", upload,
          {"GET": PULL, "PATCH": PUSH, "PUT": PUSH, "DELETE": PUSH}, "blobs_uploads"),
    Route(r"(.+)/blobs/([^/]+)", blob, {"GET": PULL, "HEAD": PULL, "DELETE": DELETE}, "blobs"),
    Route(r"(.+)/tags/(list)", tags_list, {"GET": PULL}, "tags"),
    Route(r"(.+)/referrers/([^/]+)", referrers, {"GET": PULL}, "referrers"),
    Route(r"_catalog", catalog, {"GET": CATALOG}, "catalog"),
    Route(r"", base, {"GET": None, "HEAD": None}, "base"),
])


async def dispatch(request: web.Request, route: Route, m: re.Match[str]) -> web.StreamResponse:
    """Call the route's handler with the repository name (checked by ``handle_v2``) and reference."""
    if route.repository:
        if (misses := request.app[REGISTRY].misses) is not None and route.methods[request.method] in (PUSH, DELETE):
            await misses.refuse_change(m.group(1))  # a pull-through cache's repositories are read-only
        return await route.handler(request, m.group(1), m.group(2))
    return await route.handler(request, "", "")


async def handle_v2(request: web.Request, gate: Gate, routes: RouteTable = ROUTES) -> web.StreamResponse:
    """Every ``/v2/`` request: matched once against ``ROUTES`` (no entry: 404; a method the entry
    does not take: 405 with ``Allow``), passed through ``gate`` (the token check), dispatched,
    errors as the spec's JSON. Before the gate, so that a malformed request is a 400 whoever
    asks and tells nothing of what exists: the path's and query's text (``dtr.registry.inputs``)
    and the repository name's grammar.

    A bug is logged and answered as UNKNOWN, never as HTML. Every answer carries
    ``Docker-Distribution-API-Version`` (streamed ones set it themselves). One plain handler
    rather than a sub-app with middlewares: this is the hottest path in dtr. Being a route of
    the root application, its handlers read resources from ``request.app`` (a dict lookup)
    rather than ``request.config_dict`` (a chain of mappings built per request).
    """
    try:
        tail = request.match_info["tail"]
        found = routes.match(tail)
        check_path(tail, found)
        if found is None:
            raise RegistryError(codes.NAME_UNKNOWN, message="no such endpoint", detail={"path": request.path[:256]})
        route, m = found
        request[AREA] = route.area
        check_query(request, route)
        if request.method not in route.methods:
            raise RegistryError(codes.UNSUPPORTED, detail={"method": request.method}, headers={"Allow": route.allow})
        if route.repository and not route.gun:
            _repo(request, m.group(1))
        resp = await gate(request, route, m, dispatch)
    except RegistryError as e:
        resp = e.response()
    except DatabaseUnavailable as e:
        resp = RegistryError(codes.UNAVAILABLE, message=e.message,
                             headers={"Retry-After": e.headers["Retry-After"]}).response()
    except StorageError as e:
        log.warning("storage failure: %s", e)
        resp = RegistryError(codes.UNAVAILABLE, message="storage backend unavailable, try again later",
                             headers={"Retry-After": "5"}).response()
    except web.HTTPException as e:
        e.headers.update(API_VERSION)
        raise
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        resp = RegistryError(codes.UNKNOWN, message="internal error; the request id is in the server log").response()
    if not resp.prepared:
        resp.headers.update(API_VERSION)
    return resp


def add_registry_routes(app: web.Application, gate: Gate, first: Sequence[Route] = ()) -> None:
    """``/v2/`` on ``app``, every request through ``gate`` (dtr.auth's token check: the registry
    imports nothing of auth); a newline in a path is still ours to refuse, hence ``(?s)``.
    ``first``: routes of other domains (the trust routes), matched before ``ROUTES`` in one table."""
    routes = RouteTable([*first, *ROUTES]) if first else ROUTES

    async def v2(request: web.Request) -> web.StreamResponse:
        return await handle_v2(request, gate, routes)

    app.router.add_route("*", "/v2/{tail:(?s:.*)}", v2)

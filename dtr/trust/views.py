"""notary-server's HTTP API on the registry's port: ``/v2/<gun>/_trust/...`` as entries of the
/v2 route table (``trust_routes``, matched before the registry's), so the token check
(``dtr.auth.middleware``) applies each one's access: pull to read, push to update or fetch a
server key, ``*`` to delete or rotate a server key. Paths, statuses, bodies and cache headers are
notary-server's (../shared/notes/notary-protocol.md); a method or path under ``_trust`` that
notary-server does not serve is its 404 METADATA_NOT_FOUND.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Mapping

from aiohttp import hdrs, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BodyPartReader

from dtr.keys import REPOSITORY, TRUST
from dtr.registry.routes import CATALOG, EVERYTHING, PULL, PUSH, Access, Handler, Route
from dtr.trust.cached import StoredFile
from dtr.trust.errors import (
    INVALID_GUN,
    INVALID_PARAMETERS,
    INVALID_ROLE,
    MALFORMED_UPLOAD,
    METADATA_NOT_FOUND,
    NO_FILENAME,
    TrustError,
)
from dtr.trust.names import gun_repository
from dtr.trust.store import TrustStore

#: Every method a trust path may be asked with; those an endpoint does not serve are 404.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_ROLE = r"root|targets(?:/[^/\s]+)*|snapshot|timestamp"
_BY_VERSION = re.compile(rf"([0-9]{{1,9}})\.({_ROLE})\.json")
_BY_CHECKSUM = re.compile(rf"({_ROLE})\.([a-fA-F0-9]{{64}}|[a-fA-F0-9]{{96}}|[a-fA-F0-9]{{128}})\.json")
_CURRENT = re.compile(rf"({_ROLE})\.json")
#: A role an update may name (notary's ValidRole): a base role or a delegation.
_UPLOAD_ROLE = re.compile(r"root|targets|snapshot|timestamp|targets(?:/[-a-z0-9_]+)+")
_INT32 = re.compile(r"[+-]?[0-9]{1,10}")

CURRENT_CACHE = "public, max-age=300, must-revalidate"
CONSISTENT_CACHE = "public, max-age=2592000"
#: Limits of an update: each file, all files, the number of files.
MAX_FILE = 16 << 20
MAX_UPDATE = 32 << 20
MAX_FILES = 1000


def _store(request: web.Request) -> TrustStore:
    store = request.app[TRUST]
    assert store is not None  # the routes exist only when the store does (dtr.app)
    return store


def _gun(request: web.Request, gun: str, refused: TrustError | None = None) -> str:
    """The repository ``gun`` belongs to; ``refused`` (default 404) when it names none."""
    request[REPOSITORY] = gun[:512]
    repository = gun_repository(gun)
    if repository is None:
        raise refused or TrustError(METADATA_NOT_FOUND)
    return repository


def _not_found() -> TrustError:
    return TrustError(METADATA_NOT_FOUND)


def _file_response(found: StoredFile | None, cache: str) -> web.Response:
    if found is None:
        raise _not_found()
    return web.Response(body=found.data, content_type="application/json", headers={
        "Cache-Control": cache, "Last-Modified": email.utils.format_datetime(found.modified, usegmt=True)})


def _trust_errors(handler: Handler) -> Handler:
    """``handler`` with TrustError answered in notary's JSON."""

    async def wrapped(request: web.Request, name: str, ref: str) -> web.StreamResponse:
        try:
            return await handler(request, name, ref)
        except TrustError as e:
            return e.response()

    return wrapped


# -- reads --------------------------------------------------------------------------------


async def get_file(request: web.Request, gun: str, filename: str) -> web.StreamResponse:
    """``<role>.json`` (current), ``<role>.<sha256>.json``, ``<N>.<role>.json``."""
    _gun(request, gun)
    store = _store(request)
    if m := _BY_VERSION.fullmatch(filename):
        return _file_response(await store.by_version(gun, m.group(2), int(m.group(1))), CONSISTENT_CACHE)
    if m := _BY_CHECKSUM.fullmatch(filename):
        if len(m.group(2)) != 64:
            raise _not_found()  # notary-server routes sha384/sha512 but finds only sha256
        return _file_response(await store.by_checksum(gun, m.group(1), m.group(2)), CONSISTENT_CACHE)
    if m := _CURRENT.fullmatch(filename):
        return _file_response(await store.current(gun, m.group(1)), CURRENT_CACHE)
    raise _not_found()


def _key_response(key: Mapping[str, object]) -> web.Response:
    return web.Response(body=json.dumps(key, separators=(",", ":")).encode(), content_type="application/json")


async def server_key(request: web.Request, gun: str, filename: str) -> web.StreamResponse:
    """GET: the server's ``snapshot``/``timestamp`` public key, made if missing; POST: a new one."""
    repository = _gun(request, gun)
    role = filename.removesuffix(".key")
    store = _store(request)
    if request.method == "POST":
        return _key_response((await store.rotate_key(gun, repository, role)).key_object())
    return _key_response((await store.get_key(gun, repository, role)).key_object())


# -- updates and deletes ------------------------------------------------------------------


async def _read_part(part: BodyPartReader, room: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk():
        data += chunk
        if len(data) > MAX_FILE or len(data) > room:
            raise TrustError(MALFORMED_UPLOAD, f"an update's file is at most {MAX_FILE} bytes, "
                                               f"all files at most {MAX_UPDATE}")
    return bytes(data)


async def _read_update(request: web.Request) -> dict[str, bytes]:
    """The files of a multipart update, role -> bytes (notary's NO_FILENAME, INVALID_ROLE and
    MALFORMED_UPLOAD for what it refuses), read as they stream in, within the limits."""
    # parse_mimetype, not request.content_type: that parses with the email package, 0.4 ms for
    # each new boundary (a tenth of an update's time)
    mimetype = parse_mimetype(request.headers.get(hdrs.CONTENT_TYPE, ""))
    if mimetype.type != "multipart" or "boundary" not in mimetype.parameters:
        raise TrustError(MALFORMED_UPLOAD)
    files: dict[str, bytes] = {}
    total = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise TrustError(MALFORMED_UPLOAD, "a nested multipart is not an update's file")
            role = (part.filename or "").removesuffix(".json")
            if not role:
                raise TrustError(NO_FILENAME)
            if len(role) > 255 or not _UPLOAD_ROLE.fullmatch(role):
                raise TrustError(INVALID_ROLE, role[:300])
            if role in files or len(files) >= MAX_FILES:
                raise TrustError(MALFORMED_UPLOAD, f"{role} sent twice" if role in files
                                 else f"an update has at most {MAX_FILES} files")
            files[role] = await _read_part(part, MAX_UPDATE - total)
            total += len(files[role])
    except (ValueError, AssertionError, KeyError, HttpProcessingError) as e:
        raise TrustError(MALFORMED_UPLOAD, f"not a multipart upload: {str(e)[:200]}") from None
    return files


async def tuf_root(request: web.Request, gun: str, _: str) -> web.StreamResponse:
    """POST: an atomic update (200, empty body); DELETE: all of the GUN's trust data."""
    if request.method == "POST":
        repository = _gun(request, gun, TrustError(INVALID_GUN, gun[:512]))
        files = await _read_update(request)
        await _store(request).update(gun, repository, files)
        return web.Response(status=200)
    _gun(request, gun)
    await _store(request).delete(gun)
    return web.Response(status=200)


# -- change feeds -------------------------------------------------------------------------


def _int32(request: web.Request, name: str, required: bool) -> int:
    raw = request.query.get(name, "")
    if not raw and not required:
        return 0
    if not _INT32.fullmatch(raw) or not -(2**31) <= int(raw) < 2**31:
        raise TrustError(INVALID_PARAMETERS, f"invalid {name} parameter: {raw[:32]!r} is not an integer")
    return int(raw)


async def _changefeed(request: web.Request, gun: str | None) -> web.Response:
    records = _int32(request, "records", required=True)
    change_id = _int32(request, "change_id", required=False)
    found = await _store(request).changes(gun, change_id, records)
    # notary-server answers null for no records (a nil Go slice)
    body = {"count": len(found), "records": [c.record() for c in found] or None}
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), content_type="application/json")


async def gun_changefeed(request: web.Request, gun: str, _: str) -> web.StreamResponse:
    _gun(request, gun)
    return await _changefeed(request, gun)


async def changefeed(request: web.Request, _name: str, _ref: str) -> web.StreamResponse:
    return await _changefeed(request, None)


async def not_found(request: web.Request, _name: str, _ref: str) -> web.StreamResponse:
    raise _not_found()


# -- the routes ---------------------------------------------------------------------------


def _only(handler: Handler, served: Mapping[str, Access]) -> Handler:
    """``handler`` for the methods ``served``; 404 for the rest (notary's catch-all)."""

    async def by_method(request: web.Request, name: str, ref: str) -> web.StreamResponse:
        if request.method not in served:
            raise _not_found()
        return await handler(request, name, ref)

    return _trust_errors(by_method)


def _route(path: str, handler: Handler, served: Mapping[str, Access], gun: bool = True) -> Route:
    """A trust route taking every method: those not ``served`` need any valid token and are 404."""
    methods: dict[str, Access | None] = {m: served.get(m) for m in _METHODS}
    return Route(path, _only(handler, served), methods, "trust", gun=gun)


def trust_routes() -> list[Route]:
    """The trust endpoints, for the /v2 route table ahead of the registry's; group 1 is the GUN."""
    return [
        _route(r"(.+)/_trust/tuf/()", tuf_root, {"POST": PUSH, "DELETE": EVERYTHING}),
        _route(r"(.+)/_trust/tuf/((?:snapshot|timestamp)\.key)", server_key, {"GET": PUSH, "POST": EVERYTHING}),
        _route(r"(.+)/_trust/tuf/(.+)", get_file, {"GET": PULL}),
        _route(r"(.+)/_trust/changefeed()", gun_changefeed, {"GET": PULL}),
        _route(r"(.+)/_trust(/.*|)", not_found, {}),
        _route(r"_trust/changefeed", changefeed, {"GET": CATALOG}, gun=False),
        _route(r"_trust(?:/.*)?", not_found, {}, gun=False),
    ]

"""The one check of a ``/v2`` request's text, made by ``handle_v2`` right after the route match and
before the token check: no handler, query or access decision sees a path or query parameter
holding a NUL or an unpaired surrogate (``dtr.text.check_text``), so none reaches Postgres.

How aiohttp (yarl) hands them over: ``%00`` in the path or query is decoded to a NUL; invalid
UTF-8 percent-escapes (``%ED%A0%80``, ``%FF``) stay percent-encoded in the path (so the grammars
refuse them) and become U+FFFD in query values (storable); raw non-ASCII bytes are refused by the
C HTTP parser (400) but decoded with ``surrogateescape`` by the pure-Python one, giving unpaired
surrogates. Each is answered 400 with the code of the part it is in.

Request bodies: ``unencoded`` refuses a ``Content-Encoding``.
"""

from __future__ import annotations

import re

from aiohttp import web

from dtr.errors import ErrorCode
from dtr.registry.errors import RegistryError, codes
from dtr.registry.names import is_digest
from dtr.registry.routes import Route
from dtr.text import BadInput, check_params, check_text

#: The code for a bad query parameter, by name (``last`` depends on the listing).
_QUERY_CODES: dict[str, ErrorCode] = {
    "n": codes.PAGINATION_NUMBER_INVALID, "cursor": codes.PAGINATION_NUMBER_INVALID,
    "digest": codes.DIGEST_INVALID, "mount": codes.DIGEST_INVALID, "from": codes.NAME_INVALID,
}
#: The code for a bad reference (the match's group 2), by route area; manifests: see _reference_code.
_REFERENCE_CODES: dict[str, ErrorCode] = {
    "blobs": codes.DIGEST_INVALID, "referrers": codes.DIGEST_INVALID, "blobs_uploads": codes.BLOB_UPLOAD_INVALID,
}


def _refuse(code: ErrorCode, e: BadInput, detail: dict[str, str]) -> RegistryError:
    return RegistryError(code, message=str(e), detail=detail)


def _reference_code(route: Route, reference: str) -> ErrorCode:
    if route.area == "manifests":
        return codes.DIGEST_INVALID if is_digest(reference) else codes.TAG_INVALID
    return _REFERENCE_CODES.get(route.area, codes.PARAMETER_INVALID)


def check_path(tail: str, found: tuple[Route, re.Match[str]] | None) -> None:
    """400 when ``tail`` (the path after ``/v2/``, as matched) holds unstorable text, with the
    code of the part it is in (NAME_INVALID for the name or a path in no route).

    O(len(tail)) and cheap when clean: one scan for NUL, one ASCII test."""
    if "\x00" not in tail and tail.isascii():
        return
    try:
        check_text(tail, "the path")
    except BadInput as e:
        if found is None or not found[0].repository:
            raise _refuse(codes.NAME_INVALID, e, {"path": tail[:256]}) from None
        route, m = found
        name, reference = m.group(1), m.group(2)
        try:
            check_text(name, "the repository name")
        except BadInput as bad_name:
            raise _refuse(codes.NAME_INVALID, bad_name, {"name": name[:256]}) from None
        raise _refuse(_reference_code(route, reference), e, {"reference": reference[:256]}) from None


def check_query(request: web.Request, route: Route) -> None:
    """400 when a query parameter's name or value holds unstorable text, with the parameter's code
    (``last``: NAME_INVALID on the catalog, TAG_INVALID on tag lists; unknown names: PARAMETER_INVALID).
    Costs nothing on a request without a query."""
    if not request.rel_url.raw_query_string:
        return
    try:
        check_params(request.query.items())
    except BadInput as e:
        key = e.parameter or ""
        if key == "last":
            code = codes.TAG_INVALID if route.area == "tags" else codes.NAME_INVALID
        else:
            code = _QUERY_CODES.get(key, codes.PARAMETER_INVALID)
        raise _refuse(code, e, {"parameter": key[:64]}) from None


def unencoded(request: web.Request, code: ErrorCode) -> None:
    """Refuse (400 ``code``) a body sent with a ``Content-Encoding`` other than ``identity``.

    By default aiohttp decodes gzip, deflate and br request bodies, so such a blob would be
    stored (and its digest checked) as other bytes than the client sent, and a bad encoding
    broke the read (a 500). The app turns that off (``auto_decompress=False`` in ``dtr.app``):
    bodies arrive as sent, which is what the reference registry (Go's net/http decodes nothing)
    stores. A client that names an encoding, though, means the decoded bytes, whose digest is
    not that of the bytes sent; no client does it for a blob or manifest (a compressed layer is
    sent as its own bytes, without the header). So the header is refused with a clear 400
    rather than honoured or ignored, before anything is stored.
    """
    encoding = request.headers.get("Content-Encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise RegistryError(code, detail={"Content-Encoding": encoding[:64]},
                            message=f"Content-Encoding {encoding[:64]!r} is not accepted: send the bytes "
                                    "as they are (their digest is of those bytes)")


def byte_range(request: web.Request, size: int) -> range | None:
    """The bytes of a blob of ``size`` bytes the request's ``Range`` asks for: None without the
    header, an empty range when it cannot be satisfied (answer 416 ``bytes */<size>``)."""
    if not request.headers.get("Range"):
        return None
    try:
        s, e = request.http_range.start, request.http_range.stop
    except ValueError:
        s = e = None
    if s is not None and s < 0:
        s, e = max(size + s, 0), size
    if s is None or s >= size or (e is not None and e <= s):
        return range(0)
    return range(s, min(e if e is not None else size, size))

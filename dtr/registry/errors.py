"""The OCI distribution error codes, declared once, with their HTTP status and message.

Raise ``RegistryError(codes.BLOB_UNKNOWN, detail=...)``; the middleware turns it into
``{"errors": [{"code", "message", "detail"}]}`` with the code's status.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from dtr.errors import ErrorCode, error_item


class codes:
    BLOB_UNKNOWN = ErrorCode("BLOB_UNKNOWN", 404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = ErrorCode("BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = ErrorCode("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
    DIGEST_INVALID = ErrorCode("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = ErrorCode(
        "MANIFEST_BLOB_UNKNOWN", 400, "manifest references a manifest or blob unknown to registry"
    )
    MANIFEST_INVALID = ErrorCode("MANIFEST_INVALID", 400, "manifest invalid")
    MANIFEST_UNKNOWN = ErrorCode("MANIFEST_UNKNOWN", 404, "manifest unknown to registry")
    NAME_INVALID = ErrorCode("NAME_INVALID", 400, "invalid repository name")
    NAME_UNKNOWN = ErrorCode("NAME_UNKNOWN", 404, "repository name not known to registry")
    SIZE_INVALID = ErrorCode("SIZE_INVALID", 400, "provided length did not match content length")
    UNAUTHORIZED = ErrorCode("UNAUTHORIZED", 401, "authentication required")
    DENIED = ErrorCode("DENIED", 403, "requested access to the resource is denied")
    UNSUPPORTED = ErrorCode("UNSUPPORTED", 405, "the operation is unsupported")
    TOOMANYREQUESTS = ErrorCode("TOOMANYREQUESTS", 429, "too many requests")
    # Beyond the spec's table, with the statuses the spec's endpoints table gives them.
    RANGE_INVALID = ErrorCode("BLOB_UPLOAD_INVALID", 416, "requested range not satisfiable")
    MANIFEST_TOO_LARGE = ErrorCode("MANIFEST_INVALID", 413, "manifest payload too large")
    PAGINATION_NUMBER_INVALID = ErrorCode("PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested")
    TAG_INVALID = ErrorCode("TAG_INVALID", 400, "manifest tag did not match URI")
    #: A query parameter no other code covers (the spec's UNSUPPORTED: "an invalid set of parameters").
    PARAMETER_INVALID = ErrorCode("UNSUPPORTED", 400, "a query parameter is invalid")
    UNAVAILABLE = ErrorCode("UNAVAILABLE", 503, "service unavailable, try again later")
    UNKNOWN = ErrorCode("UNKNOWN", 500, "unknown error")


class RegistryError(Exception):
    """An error answered to the client in the spec's JSON form."""

    def __init__(self, code: ErrorCode, detail: Any = None, message: str | None = None,
                 headers: dict[str, str] | None = None, more: Sequence[RegistryError] = ()) -> None:
        """``more``: further errors answered in the same body (the status is this one's)."""
        super().__init__(message or code.message)
        self.code = code
        self.detail = detail
        self.message = message or code.message
        self.headers = headers or {}
        self.more = tuple(more)

    def body(self) -> dict[str, Any]:
        return error_item(self.code, self.message, self.detail)

    def response(self) -> web.Response:
        return web.Response(
            status=self.code.status,
            body=json.dumps({"errors": [e.body() for e in (self, *self.more)]}).encode(),
            content_type="application/json",
            headers=self.headers,
        )

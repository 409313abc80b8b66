"""The ``/api/v0`` error codes, declared once with their HTTP status and default message, and the
one builder of error JSON: ``{"errors": [{"code", "message"[, "detail"]}]}``.

Raise ``APIError(codes.NO_SUCH_REPOSITORY, "no repository named 'acme/app'")`` from any domain's
service or view; the API's error middleware (and the token endpoint) answer it with its status.
Handlers declare what they may answer in their ``dtr.api.operations.operation``: the OpenAPI
document lists it.
It imports nothing of dtr's but ``dtr.errors``, so every package may use it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dtr.errors import ErrorCode, error_item


class codes:
    BAD_REQUEST = ErrorCode("BAD_REQUEST", 400, "the request is malformed")
    INVALID_JSON = ErrorCode("INVALID_JSON", 400, "the request body is not valid JSON")
    INVALID_PARAMETER = ErrorCode("INVALID_PARAMETER", 400, "a parameter is invalid")
    INVALID_NAME = ErrorCode("INVALID_NAME", 400, "the name is invalid")
    INVALID_PASSWORD = ErrorCode("INVALID_PASSWORD", 400, "the password is not acceptable")
    INVALID_SETTINGS = ErrorCode("INVALID_SETTINGS", 400, "the settings are invalid")
    INVALID_JOB = ErrorCode("INVALID_JOB", 400, "the job is invalid")
    INVALID_CRON = ErrorCode("INVALID_CRON", 400, "the schedule is invalid")
    INVALID_PRUNING_POLICY = ErrorCode("INVALID_PRUNING_POLICY", 400, "the pruning policy is invalid")
    INVALID_PROMOTION_POLICY = ErrorCode("INVALID_PROMOTION_POLICY", 400, "the promotion policy is invalid")
    INVALID_BUNDLE = ErrorCode("INVALID_BUNDLE", 400, "the vulnerability database bundle is refused")
    INVALID_MIRRORING_POLICY = ErrorCode("INVALID_MIRRORING_POLICY", 400, "the mirroring policy is invalid")
    INVALID_OPERATION = ErrorCode("INVALID_OPERATION", 400, "the operation is not possible")
    UNSUPPORTED = ErrorCode("UNSUPPORTED", 400, "the request asks for something this server does not support")
    UNAUTHORIZED = ErrorCode("UNAUTHORIZED", 401, "authentication required")
    FORBIDDEN = ErrorCode("FORBIDDEN", 403, "not allowed")
    NOT_FOUND = ErrorCode("NOT_FOUND", 404, "not found")
    NO_SUCH_ACCOUNT = ErrorCode("NO_SUCH_ACCOUNT", 404, "no such account")
    NO_SUCH_TEAM = ErrorCode("NO_SUCH_TEAM", 404, "no such team")
    NO_SUCH_MEMBER = ErrorCode("NO_SUCH_MEMBER", 404, "no such member")
    NO_SUCH_REPOSITORY = ErrorCode("NO_SUCH_REPOSITORY", 404, "no such repository")
    NO_SUCH_NAMESPACE = ErrorCode("NO_SUCH_NAMESPACE", 404, "no such namespace")
    NO_SUCH_GRANT = ErrorCode("NO_SUCH_GRANT", 404, "no such access grant")
    NO_SUCH_TOKEN = ErrorCode("NO_SUCH_TOKEN", 404, "no such access token")
    NO_SUCH_JOB = ErrorCode("NO_SUCH_JOB", 404, "no such job")
    NO_SUCH_CRON = ErrorCode("NO_SUCH_CRON", 404, "no such schedule")
    NO_SUCH_PRUNING_POLICY = ErrorCode("NO_SUCH_PRUNING_POLICY", 404, "no such pruning policy")
    NO_SUCH_MIRRORING_POLICY = ErrorCode("NO_SUCH_MIRRORING_POLICY", 404, "no such mirroring policy")
    NO_SUCH_PROMOTION_POLICY = ErrorCode("NO_SUCH_PROMOTION_POLICY", 404, "no such promotion policy")
    NO_SUCH_TAG = ErrorCode("NO_SUCH_TAG", 404, "no such tag")
    NO_SUCH_MANIFEST = ErrorCode("NO_SUCH_MANIFEST", 404, "no such manifest")
    NO_SUCH_OVERRIDE = ErrorCode("NO_SUCH_OVERRIDE", 404, "no such vulnerability override")
    METHOD_NOT_ALLOWED = ErrorCode("METHOD_NOT_ALLOWED", 405, "method not allowed")
    CONFLICT = ErrorCode("CONFLICT", 409, "the change conflicts with what exists")
    PAYLOAD_TOO_LARGE = ErrorCode("PAYLOAD_TOO_LARGE", 413, "the request body is too large")
    UNSUPPORTED_MEDIA_TYPE = ErrorCode("UNSUPPORTED_MEDIA_TYPE", 415, "unsupported media type")
    TOOMANYREQUESTS = ErrorCode("TOOMANYREQUESTS", 429, "too many requests")
    INTERNAL_ERROR = ErrorCode("INTERNAL_ERROR", 500, "internal error; see the server log")
    UNAVAILABLE = ErrorCode("UNAVAILABLE", 503, "service unavailable, try again later")


#: Every declared code by name (for the OpenAPI document and the tests that check usage).
ALL: dict[str, ErrorCode] = {v.code: v for k, v in vars(codes).items() if isinstance(v, ErrorCode)}


#: The codes every /api/v0 route may answer (authentication, throttling, the unexpected).
EVERY_ROUTE: tuple[ErrorCode, ...] = (codes.UNAUTHORIZED, codes.TOOMANYREQUESTS, codes.INTERNAL_ERROR)


def error_response(code: ErrorCode, message: str | None = None, detail: Any = None,
                   headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> web.Response:
    """The one builder of /api/v0 (and /auth/token) error JSON; ``extra`` adds top-level fields
    (the token endpoint's OAuth2 ``error``)."""
    body = {**(extra or {}), "errors": [error_item(code, message, detail)]}
    return web.Response(status=code.status, body=json.dumps(body).encode(),
                        content_type="application/json", headers=headers)


class APIError(Exception):
    """A client-visible error with a declared ``code``; ``message`` defaults to the code's."""

    def __init__(self, code: ErrorCode, message: str | None = None, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message or code.message)
        self.code, self.message, self.detail, self.headers = code, message or code.message, detail, headers

    @property
    def status(self) -> int:
        return self.code.status

    def response(self) -> web.Response:
        return error_response(self.code, self.message, self.detail, self.headers)

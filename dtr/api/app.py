"""``/api/v0``: JSON in and out; every error is ``{"errors": [{"code", "message"}]}`` with its status.

Domains add routes with a ``register(app: web.Application) -> None`` function listed in
``REGISTRARS``; handlers raise ``APIError`` for client mistakes (never a 500).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dtr.api import errors

log = logging.getLogger("dtr.api")


class APIError(Exception):
    """A client-visible error: ``code`` is a stable UPPER_SNAKE string, ``status`` the HTTP status."""

    def __init__(self, status: int, code: str, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail

    def response(self) -> web.Response:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            err["detail"] = self.detail
        return web.Response(status=self.status, body=json.dumps({"errors": [err]}).encode(),
                            content_type="application/json")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 INVALID_JSON."""
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError) as e:
        raise APIError(400, "INVALID_JSON", f"the request body is not valid JSON: {e}") from None


@web.middleware
async def api_errors(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except (APIError, errors.APIError) as e:
        return e.response()
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return APIError(e.status, e.reason.upper().replace(" ", "_"), e.reason).response()
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return APIError(500, "INTERNAL_ERROR", "internal error; see the server log").response()


#: ``register(app)`` functions of the domains that serve under /api/v0.
REGISTRARS: list[Callable[[web.Application], None]] = []


def create_api_app() -> web.Application:
    app = web.Application(middlewares=[api_errors])
    for register in REGISTRARS:
        register(app)
    return app

# Domains (imported last: they import APIError from here).
from dtr.accounts.views import register as _accounts  # noqa: E402

REGISTRARS.append(_accounts)

from dtr.jobs.views import register as _jobs  # noqa: E402

REGISTRARS.append(_jobs)

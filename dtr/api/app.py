"""``/api/v0``: JSON in and out; every error is ``{"errors": [{"code", "message"}]}`` with its status
(``dtr.api.errors``: the codes are declared once).

``create_api_app`` assembles the sub-app once: the error middleware, then the authentication
middleware (so every domain's routes are authenticated, whatever its registrar does), then each
domain's ``register(app)``, and ``/docs.json``. It imports no domain: ``dtr.app`` passes them in.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from dtr import text
from dtr.api import errors, openapi
from dtr.api.errors import codes

log = logging.getLogger("dtr.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Registrar = Callable[[web.Application], None]

#: aiohttp's own errors (unknown endpoint, method, body too large...) by status.
_HTTP_CODES = {c.status: c for c in (codes.BAD_REQUEST, codes.UNAUTHORIZED, codes.FORBIDDEN, codes.NOT_FOUND,
                                     codes.METHOD_NOT_ALLOWED, codes.CONFLICT, codes.PAYLOAD_TOO_LARGE,
                                     codes.UNSUPPORTED_MEDIA_TYPE, codes.TOOMANYREQUESTS, codes.UNAVAILABLE)}
_PASSED_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def _http_error(e: web.HTTPException) -> web.Response:
    code = _HTTP_CODES.get(e.status) or (codes.BAD_REQUEST if e.status < 500 else codes.INTERNAL_ERROR)
    headers = {h: e.headers[h] for h in _PASSED_HEADERS if h in e.headers}
    message = e.text if e.text and e.text != f"{e.status}: {e.reason}" else code.message
    return errors.error_response(code, message, headers=headers or None)


#: What a 401 asks for when its raiser named nothing.
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="dtr"'}


def _check_text(request: web.Request) -> None:
    """A NUL or unpaired surrogate in the path or query answers 400 here, before any handler."""
    try:
        text.check_text(request.path, "the path")
        text.check_params(request.query.items())
    except text.BadInput as e:
        raise errors.APIError(codes.INVALID_PARAMETER, str(e)) from None


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error of /api/v0 as error JSON with a declared code; a 500 only for dtr's own faults.
    A 401 always says how to authenticate (``WWW-Authenticate``)."""
    try:
        _check_text(request)
        return await handler(request)
    except errors.APIError as e:
        if e.status == 401 and not e.headers:
            e.headers = _CHALLENGE
        return e.response()
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _http_error(e)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return errors.error_response(codes.INTERNAL_ERROR)


def create_api_app(registrars: Sequence[Registrar], authenticate: Middleware) -> web.Application:
    """The /api/v0 sub-app: ``authenticate`` (``dtr.auth.api.api_auth``) in front of every route."""
    app = web.Application(middlewares=[api_errors, authenticate])
    app.router.add_get("/docs.json", openapi.docs)
    for register in registrars:
        register(app)
    return app

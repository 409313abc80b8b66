"""Who calls ``/api/v0``: Basic (password or personal access token) or a Bearer token from
``/auth/token``. The middleware stores the ``Principal`` on the request; handlers of every domain
ask for it with ``principal``/``require_user``/``require_admin``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from dtr.api.app import APIError
from dtr.auth.access import ANONYMOUS, Principal
from dtr.auth.service import AuthError
from dtr.auth.tokens import InvalidToken
from dtr.auth.views import basic_credentials
from dtr.keys import AUTH

#: What everyone is when ``auth.enabled`` is false.
UNRESTRICTED = Principal(name="", id=0, is_admin=True)
_KEY = "dtr_principal"


def _unauthorized(message: str, status: int = 401, retry_after: float = 0.0) -> web.Response:
    headers = {"WWW-Authenticate": 'Basic realm="dtr"'} if status == 401 else {"Retry-After": str(int(retry_after) + 1)}
    code = "UNAUTHORIZED" if status == 401 else "TOO_MANY_REQUESTS"
    body = {"errors": [{"code": code, "message": message}]}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json",
                        headers=headers)


@web.middleware
async def api_auth(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    auth = request.config_dict[AUTH]
    if auth is None:
        request[_KEY] = UNRESTRICTED
        return await handler(request)
    header = request.headers.get("Authorization")
    who = ANONYMOUS
    if header:
        if header[:7].lower() == "bearer ":
            try:
                claims = auth.signer.verify_access(header[7:].strip())
            except InvalidToken as e:
                return _unauthorized(f"invalid bearer token: {e}")
            who = await auth.lookup_principal(claims.subject)
            if claims.subject and not who.authenticated:
                return _unauthorized("the token's account is unknown or inactive")
        else:
            creds = basic_credentials(header)
            if creds is None:
                return _unauthorized("use Basic (username and password or access token) or Bearer authorization")
            try:
                who = await auth.authenticate(creds[0], creds[1], request.remote or "", cache=True)
            except AuthError as e:
                return _unauthorized(e.message, e.status, e.retry_after)
    request[_KEY] = who
    return await handler(request)


def principal(request: web.Request) -> Principal:
    return request.get(_KEY, ANONYMOUS)  # type: ignore[no-any-return]


def require_user(request: web.Request) -> Principal:
    p = principal(request)
    if not p.authenticated:
        raise APIError(401, "UNAUTHORIZED", "authentication required (Basic: username and password or access token)")
    return p


def require_admin(request: web.Request) -> Principal:
    p = require_user(request)
    if not p.is_admin:
        raise APIError(403, "FORBIDDEN", "only site admins may do this")
    return p

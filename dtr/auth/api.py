"""Who calls ``/api/v0``: Basic (password or personal access token) or a Bearer token from
``/auth/token`` (a session); the principal says whether a personal access token was behind it.
The middleware stores the ``Principal`` on the request; handlers of every domain ask for it with
``principal``/``require_user``/``require_admin``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from aiohttp import web

from dtr.api.errors import APIError, codes, error_response
from dtr.auth.access import ANONYMOUS, Principal
from dtr.auth.service import AuthError
from dtr.auth.tokens import InvalidToken
from dtr.auth.views import basic_credentials
from dtr.keys import AUTH, USER

#: What everyone is when ``auth.enabled`` is false.
UNRESTRICTED = Principal(name="", id=0, is_admin=True)
_KEY: web.RequestKey[Principal] = web.RequestKey("dtr_principal", Principal)


def _unauthorized(message: str, status: int = 401, retry_after: float = 0.0) -> web.Response:
    if status == 429:
        return error_response(codes.TOOMANYREQUESTS, message, headers={"Retry-After": str(int(retry_after) + 1)})
    return error_response(codes.UNAUTHORIZED, message, headers={"WWW-Authenticate": 'Basic realm="dtr"'})


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
            request[USER] = claims.subject
            who = await auth.lookup_principal(claims.subject)
            if claims.subject and not who.authenticated:
                return _unauthorized("the token's account is unknown or inactive")
            if claims.by_token:
                who = dataclasses.replace(who, by_token=True)
        else:
            creds = basic_credentials(header)
            if creds is None:
                return _unauthorized("use Basic (username and password or access token) or Bearer authorization")
            request[USER] = creds[0]
            try:
                who = await auth.authenticate(creds[0], creds[1], request.remote or "", cache=True)
            except AuthError as e:
                return _unauthorized(e.message, e.status, e.retry_after)
    request[_KEY] = who
    return await handler(request)


def principal(request: web.Request) -> Principal:
    return request.get(_KEY, ANONYMOUS)  # type: ignore[no-any-return]


def check_user(p: Principal) -> Principal:
    """``p`` if it is an authenticated user; a 401 UNAUTHORIZED otherwise."""
    if not p.authenticated:
        raise APIError(codes.UNAUTHORIZED, "authentication required (Basic: username and password or access token)")
    return p


def check_admin(p: Principal) -> Principal:
    """``p`` if it is a site admin; a 401 or 403 FORBIDDEN otherwise."""
    if not check_user(p).is_admin:
        raise APIError(codes.FORBIDDEN, "only site admins may do this")
    return p


def require_user(request: web.Request) -> Principal:
    return check_user(principal(request))


def require_admin(request: web.Request) -> Principal:
    return check_admin(principal(request))

"""The token endpoint ``/auth/token``: distribution's token spec (GET) and its OAuth2 form (POST).

GET takes Basic credentials (password or personal access token) or none (anonymous), the
``service``, ``scope`` (repeatable) and ``offline_token``; POST takes ``grant_type=password``
(``username``, ``password``) or ``grant_type=refresh_token`` (``refresh_token``), ``service``,
``scope`` (space separated) and ``access_type=offline``. Either answers a JWT whose ``access``
is narrowed to what the subject may do.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from dtr.api.errors import codes, error_response
from dtr.audit import service as audit
from dtr.auth.access import ANONYMOUS, Principal
from dtr.auth.service import AuthError, AuthService
from dtr.db.errors import DatabaseUnavailable
from dtr.errors import ErrorCode
from dtr.keys import AUTH, USER
from dtr.text import BadInput, check_params
from dtr.times import iso

log = logging.getLogger("dtr.auth")
_SCOPE = re.compile(r"^([a-z0-9]+)(?:\([a-z0-9]+\))?:(.+):([a-z*]+(?:,[a-z*]+)*)$")
_MAX_SCOPES = 32


def _error(code: ErrorCode, message: str, oauth: str | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    # docker's OAuth2 client reads error and error_description on a 401/400
    extra = {"error": oauth, "error_description": message} if oauth else None
    return error_response(code, message, headers=headers, extra=extra)


def parse_scopes(raw: list[str]) -> list[tuple[str, str, list[str]]]:
    """``repository:ns/name:pull,push`` ... -> (type, name, actions); malformed ones are skipped."""
    out: list[tuple[str, str, list[str]]] = []
    for item in raw:
        for part in item.split():
            m = _SCOPE.match(part)
            if m and len(out) < _MAX_SCOPES:
                out.append((m.group(1), m.group(2), m.group(3).split(",")))
    return out


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(username, secret) from a Basic Authorization header, or None."""
    if header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, secret = decoded.partition(":")
    return (user, secret) if sep else None


def _auth_failure(e: AuthError, oauth: bool) -> web.Response:
    if e.status == 429:
        return _error(codes.TOOMANYREQUESTS, e.message, "slow_down" if oauth else None,
                      {"Retry-After": str(int(e.retry_after) + 1)})
    return _error(codes.UNAUTHORIZED, e.message, "invalid_grant" if oauth else None)


async def _answer(request: web.Request, auth: AuthService, principal: Principal,
                  scopes: list[tuple[str, str, list[str]]], offline: bool, oauth: bool,
                  via: str) -> web.Response:
    access = await auth.grant(principal, scopes)
    token, expires_in, issued = auth.signer.issue(principal.name or "", access, principal.by_token)
    body: dict[str, Any] = {"token": token, "access_token": token, "expires_in": expires_in,
                            "issued_at": iso(dt.datetime.fromtimestamp(issued, dt.UTC))}
    if oauth:
        body["scope"] = " ".join(f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in access)
    if offline and principal.authenticated:
        body["refresh_token"] = auth.signer.issue_refresh(principal.name or "", await auth.generation(principal),
                                                          principal.token_id)
    if principal.authenticated and via != "refresh_token":
        audit.record_soon(auth.engine, "login", principal.name, request.remote, "account", principal.name or "",
                          {"via": via})
    return web.Response(body=json.dumps(body).encode(), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


def _check_text(fields: Iterable[tuple[str, object]]) -> web.Response | None:
    """400 when a parameter (or credential) holds a NUL or an unpaired surrogate, else None."""
    try:
        check_params(fields, "parameter")
    except BadInput as e:
        return _error(codes.INVALID_PARAMETER, str(e), "invalid_request")
    return None


def _check_service(auth: AuthService, service: str | None) -> web.Response | None:
    if service and service != auth.service:
        return _error(codes.UNSUPPORTED, f"unknown service {service[:128]!r}; this server is {auth.service!r}",
                      "invalid_request")
    return None


async def token_get(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    assert auth is not None  # _json_errors answers 404 when auth is off
    bad = _check_text(request.query.items()) or _check_service(auth, request.query.get("service"))
    if bad is not None:
        return bad
    scopes = parse_scopes(request.query.getall("scope", []))
    principal = ANONYMOUS
    header = request.headers.get("Authorization")
    if header:
        creds = basic_credentials(header)
        if creds is None:
            return _error(codes.UNAUTHORIZED, "the token endpoint takes Basic credentials")
        bad = _check_text([("username", creds[0]), ("password", creds[1])])
        if bad is not None:
            return bad
        request[USER] = creds[0]
        try:
            principal = await auth.authenticate(creds[0], creds[1], request.remote or "")
        except AuthError as e:
            return _auth_failure(e, oauth=False)
    offline = request.query.get("offline_token", "").lower() == "true"
    return await _answer(request, auth, principal, scopes, offline, oauth=False, via="basic")


async def token_post(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    assert auth is not None  # _json_errors answers 404 when auth is off
    form = await request.post()
    bad = _check_text(form.items()) or _check_service(auth, str(form.get("service") or "") or None)
    if bad is not None:
        return bad
    scopes = parse_scopes([str(form.get("scope") or "")])
    grant = str(form.get("grant_type") or "")
    try:
        if grant == "password":
            request[USER] = str(form.get("username") or "")
            principal = await auth.authenticate(str(form.get("username") or ""), str(form.get("password") or ""),
                                                request.remote or "")
        elif grant == "refresh_token":
            principal = await auth.refresh(str(form.get("refresh_token") or ""))
        else:
            return _error(codes.UNSUPPORTED, "grant_type must be password or refresh_token",
                          "unsupported_grant_type")
    except AuthError as e:
        return _auth_failure(e, oauth=True)
    offline = str(form.get("access_type") or "") == "offline"
    return await _answer(request, auth, principal, scopes, offline, oauth=True, via=grant)


def _json_errors(handler: Callable[[web.Request], Awaitable[web.Response]]
                 ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def wrapped(request: web.Request) -> web.Response:
        if request.app[AUTH] is None:
            return _error(codes.NOT_FOUND, "token authentication is off on this server (auth.enabled)")
        try:
            return await handler(request)
        except DatabaseUnavailable as e:
            return error_response(codes.UNAVAILABLE, e.message, headers={"Retry-After": e.headers["Retry-After"]})
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unhandled error on %s /auth/token", request.method)
            return error_response(codes.INTERNAL_ERROR)

    return wrapped


def add_routes(app: web.Application) -> None:
    app.router.add_get("/auth/token", _json_errors(token_get))
    app.router.add_post("/auth/token", _json_errors(token_post))

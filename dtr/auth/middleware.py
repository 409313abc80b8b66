"""Bearer-token authorisation of ``/v2/``: ``registry_auth`` wraps the registry's dispatch
(called by ``dtr.registry.views.handle_v2``, not installed as an aiohttp middleware) and checks
the access the matched route table entry (``dtr.registry.routes``) names for the method.

Hot path: a valid token covering the request costs a dict lookup (verified tokens are memoised)
and no database round-trip. Without a token the answer is the spec's 401 challenge. A token
lacking a scope its user has gets the challenge with ``error="insufficient_scope"`` (Docker's
token spec), so the client fetches a better token; 403 DENIED, with the reason, only when the
user truly lacks the access (this slow path reads the database).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aiohttp import web

from dtr.auth.access import Action, Principal
from dtr.auth.tokens import AccessClaims, InvalidToken
from dtr.keys import ACTOR, AUTH, MAY_PULL, REPOSITORY, USER
from dtr.ops.proxies import forwarded_url
from dtr.registry.errors import RegistryError, codes
from dtr.registry.events import Actor
from dtr.registry.names import is_name
from dtr.registry.routes import Access, Dispatch, Route, resource

if TYPE_CHECKING:
    from dtr.auth.service import AuthService


def _challenge(realm: str, service: str, scope: str | None, error: str | None = None) -> dict[str, str]:
    value = f'Bearer realm="{realm}",service="{service}"'
    if scope:
        value += f',scope="{scope}"'
    if error:
        value += f',error="{error}"'
    return {"WWW-Authenticate": value}


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def _mount_source(request: web.Request) -> str | None:
    """The ``from`` of a cross-repository mount request, when it is a repository name."""
    source = request.query.get("from")
    return source if source and is_name(source) else None


class _PullCheck:
    """Whether the token's user may pull from a repository (for mounts): the token says so, or
    the access decision does (the user's rights now, anonymous for an anonymous token)."""

    def __init__(self, auth: AuthService, claims: AccessClaims) -> None:
        self.auth, self.claims = auth, claims
        self._principal: Principal | None = None

    async def __call__(self, name: str) -> bool:
        if self.claims.allows("repository", name, "pull"):
            return True
        if self._principal is None:
            self._principal = await self.auth.lookup_principal(self.claims.subject)
        return (await self.auth.decide(self._principal, name, Action.PULL))[0]


async def registry_auth(request: web.Request, route: Route, m: re.Match[str],
                        handler: Dispatch) -> web.StreamResponse:
    """Run ``handler`` if the request's token covers the access ``route`` needs for the method
    (the caller has checked the method is the route's); otherwise the challenge or DENIED."""
    auth = request.app[AUTH]  # /v2 is a root-app route (dtr.registry.views.add_registry_routes)
    if auth is None:
        request[ACTOR] = Actor("", request.remote or "")
        if route.mounts:
            request[MAY_PULL] = None
        return await handler(request, route, m)
    access = route.methods[request.method]
    if access is None:
        type_, name, action = "", None, ""
    else:
        type_, name, action = access.type, resource(access, m), access.action
    token = _bearer(request)
    claims: AccessClaims | None = None
    error = None
    if token:
        try:
            claims = auth.signer.verify_access(token)
            request[USER] = claims.subject
        except InvalidToken:
            error = "invalid_token"
    if claims is not None and (name is None or claims.allows(type_, name, action)):
        if route.mounts and "mount" in request.query:
            # The handler mounts only from repositories the user may pull; a source the token
            # does not cover but the user may pull is challenged, so the mount can happen.
            source = _mount_source(request)
            check = _PullCheck(auth, claims)
            if source is not None and not claims.allows("repository", source, "pull") and await check(source):
                raise _refusal(request, auth, access, name, source, "insufficient_scope")
            request[MAY_PULL] = check
        request[ACTOR] = Actor(claims.subject, request.remote or "")
        return await handler(request, route, m)
    if type_ == "repository" and name is not None:  # for the access line (the handler sets it otherwise)
        request[REPOSITORY] = name
    source = _mount_source(request) if route.mounts and "mount" in request.query else None
    if claims is None or not claims.subject:
        raise _refusal(request, auth, access, name, source, error, _basic_sent(request, auth.realm))
    # An authenticated user's token lacks the access: a better token if the user has it, else
    # why not (the slow path may use the database).
    principal = await auth.lookup_principal(claims.subject)
    if type_ == "repository" and name is not None:
        allowed, message = await auth.scope_decision(principal, name, action, gun=route.gun)
    else:
        allowed = principal.authenticated and principal.is_admin
        message = "only site admins may list the catalog"
    if allowed:
        raise _refusal(request, auth, access, name, source, "insufficient_scope")
    raise RegistryError(codes.DENIED, message=message, detail={"Type": type_, "Name": name, "Action": action})


def _basic_sent(request: web.Request, realm: str) -> str | None:
    """The message for a client that sent Basic credentials to /v2 (clients send them to the
    realm, which answers a token; the challenge tells them where), else None."""
    if request.headers.get("Authorization", "")[:6].lower() != "basic ":
        return None
    return f"Basic credentials are not accepted on /v2/: get a token from {realm} (docker login does this)"


def _refusal(request: web.Request, auth: AuthService, access: Access | None, name: str | None, source: str | None,
             error: str | None, message: str | None = None) -> RegistryError:
    """401 with the challenge naming every scope the request needs (a mount's source too)."""
    detail: list[dict[str, str | None]] = []
    scopes = []
    if access is not None and name is not None:
        scopes.append(f"{access.type}:{name}:{access.scope_actions}")
        detail.append({"Type": access.type, "Name": name, "Action": access.action})
    if source is not None:
        scopes.append(f"repository:{source}:pull")
        detail.append({"Type": "repository", "Name": source, "Action": "pull"})
    realm = forwarded_url(request, "/auth/token") or auth.realm  # behind a trusted proxy: its host
    headers = _challenge(realm, auth.service, " ".join(scopes) or None, error)
    return RegistryError(codes.UNAUTHORIZED, headers=headers, detail=detail or None, message=message)

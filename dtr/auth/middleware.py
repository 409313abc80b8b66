"""Bearer-token authorisation of ``/v2/``: ``registry_auth`` wraps the registry's dispatch
(called by ``dtr.registry.views.handle_v2``, not installed as an aiohttp middleware).

Hot path: a valid token costs a dict lookup (verified tokens are memoised) and no database
round-trip. Without a token, or with one that does not cover the request, the answer is the
spec's 401 challenge; an authenticated user lacking access gets 403 DENIED with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from dtr.auth.access import Action, explain
from dtr.auth.tokens import AccessClaims, InvalidToken
from dtr.keys import ACTOR, AUTH
from dtr.registry.errors import RegistryError, codes
from dtr.registry.events import Actor

if TYPE_CHECKING:
    pass

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REPO_PATH = re.compile(r"^(.+)/(?:tags/list|manifests/[^/]+|blobs/uploads/?[^/]*|blobs/[^/]+|referrers/[^/]+)$")
_ACTION = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}


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


async def registry_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    auth = request.app[AUTH]  # /v2 is a root-app route (dtr.registry.views.add_registry_routes)
    if auth is None:
        request[ACTOR] = Actor("", request.remote or "")
        return await handler(request)
    tail = request.match_info.get("tail", "")
    m = _REPO_PATH.match(tail)
    name = m.group(1) if m else None
    if name is not None:
        # Anything on an upload (status, cancel included) is part of pushing.
        action = "push" if "/blobs/uploads" in tail else _ACTION.get(request.method, "push")
        type_, scope = "repository", f"repository:{name}:{'pull,push' if action == 'push' else action}"
    elif tail == "_catalog":
        type_, name, action, scope = "registry", "catalog", "*", "registry:catalog:*"
    else:
        type_, action, scope = "", "", None
    token = _bearer(request)
    claims: AccessClaims | None = None
    error = None
    if token:
        try:
            claims = auth.signer.verify_access(token)
        except InvalidToken:
            error = "invalid_token"
    if claims is not None and (name is None or claims.allows(type_, name, action)):
        request[ACTOR] = Actor(claims.subject, request.remote or "")
        if name is not None and type_ == "repository" and action == "push" and "mount" in request.query:
            request = _guard_mount(request, claims)
        return await handler(request)
    headers = _challenge(auth.realm, auth.service, scope, error)
    if claims is None or not claims.subject:
        raise RegistryError(codes.UNAUTHORIZED, headers=headers, detail=[{"Type": type_, "Name": name,
                                                                           "Action": action}] if name else None)
    # An authenticated user without the access: say why (the slow path may use the database).
    principal = await auth.lookup_principal(claims.subject)
    if type_ == "repository" and name is not None:
        wanted = Action(action)
        _, facts = await auth.decide(principal, name, wanted)
        message = explain(principal, facts, wanted)
    else:
        message = "only site admins may list the catalog"
    raise RegistryError(codes.DENIED, message=message, detail={"Type": type_, "Name": name, "Action": action})


def _guard_mount(request: web.Request, claims: AccessClaims) -> web.Request:
    """Cross-repository mounts need pull on the source; otherwise a plain upload starts."""
    source = request.query.get("from")
    if source and claims.allows("repository", source, "pull"):
        return request
    query = request.url.query.copy()
    query.popall("mount", None)
    query.popall("from", None)
    return request.clone(rel_url=request.rel_url.with_query(query))

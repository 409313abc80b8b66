"""Who is browsing and what protects every UI response.

- ``Visitor``: the request's principal (from the session cookie; ``UNRESTRICTED`` when
  ``auth.enabled`` is false) and the CSRF token its forms carry.
- Security headers on every UI response (pages, redirects, errors): a Content-Security-Policy
  without inline scripts or styles, no framing, ``Referrer-Policy: same-origin``, ``nosniff``;
  pages are not cached.
- Every state-changing request (POST, PUT, PATCH, DELETE) must come from this origin (``Origin``,
  else ``Referer``) and carry the visitor's CSRF token (form field ``csrf_token`` or header
  ``X-CSRF-Token``); otherwise 403. A signed-in visitor's token is its session's; an anonymous
  one's (the login form) is a random value in a ``SameSite=Strict`` cookie (double submit).
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from dtr.auth.access import ANONYMOUS, Principal
from dtr.auth.api import UNRESTRICTED
from dtr.keys import AUTH, CONFIG, UI_SESSIONS

SESSION_COOKIE = "dtr_session"
#: The anonymous visitor's CSRF token (the login form's).
CSRF_COOKIE = "dtr_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
           "X-Content-Type-Options": "nosniff"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclasses.dataclass
class Visitor:
    principal: Principal
    csrf: str
    #: The session cookie's secret (None: no session).
    session: str | None = None
    #: A session cookie came that opens no session (expired, logged out elsewhere).
    expired: bool = False
    #: The anonymous CSRF cookie must be set on the answer.
    new_csrf_cookie: bool = False

    @property
    def signed_in(self) -> bool:
        return self.principal.authenticated


VISITOR: web.RequestKey[Visitor] = web.RequestKey("ui_visitor", Visitor)


def visitor(request: web.Request) -> Visitor:
    return request[VISITOR]


def secure(resp: web.StreamResponse, cache: bool = False) -> None:
    """Put the security headers on ``resp`` (and ``no-store`` unless ``cache``)."""
    for name, value in HEADERS.items():
        resp.headers[name] = value
    if not cache:
        resp.headers.setdefault("Cache-Control", "no-store")


def set_session_cookie(request: web.Request, resp: web.StreamResponse, secret: str) -> None:
    """The session cookie, ``Secure`` when the browser talks TLS (to us, or to a trusted proxy:
    ``request.secure`` follows ``dtr.ops.proxies``)."""
    resp.set_cookie(SESSION_COOKIE, secret, path="/", httponly=True, samesite="Lax", secure=request.secure)


def clear_session_cookie(resp: web.StreamResponse) -> None:
    resp.del_cookie(SESSION_COOKIE, path="/")


async def _visitor(request: web.Request) -> Visitor:
    if request.config_dict[AUTH] is None:
        return _anonymous(request, UNRESTRICTED)
    secret = request.cookies.get(SESSION_COOKIE, "")
    if secret:
        session = await request.config_dict[UI_SESSIONS].find(secret)
        if session is not None:
            return Visitor(session.principal, session.csrf, secret)
    found = _anonymous(request, ANONYMOUS)
    found.expired = bool(secret)
    return found


def _anonymous(request: web.Request, principal: Principal) -> Visitor:
    token = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(token) <= 128:
        return Visitor(principal, token)
    return Visitor(principal, secrets.token_urlsafe(32), new_csrf_cookie=True)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def same_origin(request: web.Request) -> bool:
    """The request's ``Origin`` (else its ``Referer``'s origin) is this server's, as the browser
    reached it or as ``http.external_url`` names it. Neither header: not same-origin."""
    origin = request.headers.get("Origin") or _origin(request.headers.get("Referer", ""))
    if not origin or origin == "null":
        return False
    allowed = {f"{request.scheme}://{request.host}".lower(), _origin(request.config_dict[CONFIG].external_url)}
    return origin.lower() in allowed


async def csrf_refusal(request: web.Request, v: Visitor) -> str | None:
    """Why a state-changing request is refused (None: it is not)."""
    if not same_origin(request):
        return "this request did not come from a page of this site (Origin/Referer)"
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        field = (await request.post()).get(CSRF_FIELD)
        token = field if isinstance(field, str) else None
    if not token or not hmac.compare_digest(token.encode(), v.csrf.encode()):
        return "the form's security token is missing or out of date; reload the page and try again"
    return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Renders a refusal page: (request, status, message) -> response (``dtr.ui.render.error_page``).
Refuse = Callable[[web.Request, int, str], web.StreamResponse]


def ui_middleware(refuse: Refuse, static_prefix: str) -> Middleware:
    """The UI application's middleware: security headers on everything, the visitor on each page
    request, and the CSRF and origin checks on state-changing ones."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(static_prefix):
            resp = await handler(request)
            secure(resp, cache=True)
            return resp
        v = await _visitor(request)
        request[VISITOR] = v
        try:
            if request.method not in SAFE_METHODS and (reason := await csrf_refusal(request, v)) is not None:
                resp = refuse(request, 403, reason)
            else:
                resp = await handler(request)
        except web.HTTPException as e:
            secure(e)
            raise
        secure(resp)
        if v.new_csrf_cookie:
            resp.set_cookie(CSRF_COOKIE, v.csrf, path="/ui/", httponly=True, samesite="Strict",
                            secure=request.secure)
        return resp

    return middleware

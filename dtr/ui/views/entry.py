"""The way in and out: ``/`` (the entry), the login form, logout.

Login checks credentials with the same function, and the same brute-force throttling, as
``docker login`` and Basic auth (``AuthService.authenticate``: local and LDAP users). Personal
access tokens are refused before any check: they open API sessions, never a browser's.
"""

from __future__ import annotations

from aiohttp import web

from dtr.auth.service import TOKEN_PREFIX, AuthError, client_address
from dtr.keys import AUTH, UI_SESSIONS
from dtr.ui.render import render
from dtr.ui.security import clear_session_cookie, secure, set_session_cookie, visitor
from dtr.ui.views.common import HOME, LOGIN, Form, redirect

PAT_REFUSED = "access tokens cannot open a browser session: sign in with your password"


def safe_next(target: str | None) -> str:
    """Where to go after login: a UI path of this site only (never another host), else the home page."""
    if target and target.startswith("/ui/") and "//" not in target and "\\" not in target \
            and target.isprintable() and " " not in target:
        return target
    return HOME


async def root(request: web.Request) -> web.StreamResponse:
    """``/``: the UI for browsers; a JSON client (``Accept`` with application/json and no
    text/html) gets 200 ``{"api": "/api/v0/", "openapi": "/api/v0/docs.json"}``."""
    accept = request.headers.get("Accept", "")
    if "application/json" in accept and "text/html" not in accept:
        resp: web.StreamResponse = web.json_response({"api": "/api/v0/", "openapi": "/api/v0/docs.json"})
    else:
        resp = web.Response(status=302, headers={"Location": "/ui/"})
    resp.headers["Vary"] = "Accept"
    secure(resp)
    return resp


async def index(request: web.Request) -> web.StreamResponse:
    """``/ui/``: the repositories for a signed-in visitor, else the login page."""
    return redirect(HOME if visitor(request).signed_in else LOGIN)


async def login_form(request: web.Request) -> web.StreamResponse:
    v = visitor(request)
    if v.signed_in:
        return redirect(safe_next(request.query.get("next")))
    notice = "Your session has ended; sign in again." if request.query.get("expired") else ""
    return render(request, "login.html", {"form": {"username": "", "next": request.query.get("next", "")},
                                          "errors": {}, "notice": notice, "title": "Sign in"})


async def login(request: web.Request) -> web.StreamResponse:
    form = await Form.read(request, "username", "password", "next")
    auth = request.config_dict[AUTH]
    if auth is None:  # nothing to sign in to: everyone may do everything
        return redirect(safe_next(form.values["next"]))
    username = form.text("username", "Username", required=True, max_length=255)
    password = form.values["password"]
    status, retry = 400, 0.0
    if not password:
        form.errors["password"] = "Password is required"
    elif password.startswith(TOKEN_PREFIX):
        form.errors["password"] = PAT_REFUSED
    if not form.errors:
        try:
            principal = await auth.authenticate(username, password, client_address(request))
        except AuthError as e:
            status, retry = e.status, e.retry_after
            form.errors["password" if e.status == 401 else "form"] = e.message
        else:
            if principal.by_token:
                form.errors["password"] = PAT_REFUSED
            else:
                secret, _ = await request.config_dict[UI_SESSIONS].open(principal, client_address(request))
                resp = redirect(safe_next(form.values["next"]))
                set_session_cookie(request, resp, secret)
                return resp
    form.values["password"] = ""  # never sent back
    resp = render(request, "login.html", {**form.context(), "notice": "", "title": "Sign in"}, status)
    if status == 429:
        resp.headers["Retry-After"] = str(int(retry) + 1)
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    v = visitor(request)
    if v.session is not None:
        await request.config_dict[UI_SESSIONS].close(v.session)
    resp = redirect(LOGIN)
    clear_session_cookie(resp)
    return resp


def register(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)

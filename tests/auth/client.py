"""A small synchronous HTTP client for the auth tests (urllib: no redirects followed, no raising)."""

from __future__ import annotations

import base64
import dataclasses
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str | None:
        try:
            return str(self.json()["errors"][0]["code"])
        except (ValueError, KeyError, IndexError, TypeError):
            return None

    @property
    def error_message(self) -> str:
        try:
            return str(self.json()["errors"][0]["message"])
        except (ValueError, KeyError, IndexError, TypeError):
            return ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


class Client:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def request(self, method: str, path: str, *, auth: tuple[str, str] | None = None, bearer: str | None = None,
                body: Any = None, data: bytes | None = None, headers: dict[str, str] | None = None,
                form: dict[str, str] | None = None) -> Response:
        h = dict(headers or {})
        if auth is not None:
            h["Authorization"] = basic(*auth)
        if bearer is not None:
            h["Authorization"] = f"Bearer {bearer}"
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with _OPENER.open(req, timeout=60) as r:
                return Response(r.status, dict(r.headers.items()), r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers.items()), e.read())

    # -- /api/v0 --------------------------------------------------------------------------------

    def api(self, method: str, path: str, auth: tuple[str, str] | None = None, body: Any = None,
            expect: int | None = None) -> Response:
        r = self.request(method, "/api/v0" + path, auth=auth, body=body)
        if expect is not None:
            assert r.status == expect, f"{method} {path}: {r.status} {r.body[:500]!r}"
        return r

    # -- the registry token dance ----------------------------------------------------------------

    def token(self, scopes: list[str], auth: tuple[str, str] | None = None, **params: str) -> Response:
        q = urllib.parse.urlencode([("service", self.url.split("//", 1)[1])] + [("scope", s) for s in scopes]
                                   + list(params.items()))
        return self.request("GET", f"/auth/token?{q}", auth=auth)

    def bearer(self, scopes: list[str], auth: tuple[str, str] | None = None) -> str:
        r = self.token(scopes, auth)
        assert r.status == 200, r.body
        return str(r.json()["token"])

    def v2(self, method: str, path: str, scope: str | None, auth: tuple[str, str] | None = None,
           data: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
        """A /v2 request as a client does it: a token for ``scope`` first (anonymous without auth)."""
        token = self.bearer([scope] if scope else [], auth)
        return self.request(method, "/v2/" + path.lstrip("/"), bearer=token, data=data, headers=headers)

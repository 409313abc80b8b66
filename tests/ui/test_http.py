"""The UI over plain HTTP: ``/`` for JSON clients, ``ui.enabled: false``, static files cached by
content hash, the vendored htmx as shipped, and the UI with authentication off."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from dtr.ui.static import load_assets
from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_PASSWORD
from tests.servers import DtrProcess
from tests.ui.conftest import UI_AUTH


def test_json_clients_are_pointed_to_the_api(api: Client) -> None:
    r = api.request("GET", "/", headers={"Accept": "application/json"})
    assert r.status == 200 and r.json() == {"api": "/api/v0/", "openapi": "/api/v0/docs.json"}
    assert api.request("GET", r.json()["openapi"]).status == 200
    browser = api.request("GET", "/", headers={"Accept": "text/html,application/json;q=0.9"})
    assert browser.status == 302 and browser.headers["Location"] == "/ui/"


def test_static_files_are_cached_by_content_hash(api: Client) -> None:
    page = api.request("GET", "/ui/login").body.decode()
    urls = re.findall(r'(?:href|src)="(/ui/static/[^"]+)"', page)
    assert {u.rsplit("/", 1)[1] for u in urls} == {"dtr.css", "htmx.min.js", "dtr.js", "favicon.svg"}
    for url in urls:
        r = api.request("GET", url)
        assert r.status == 200 and r.headers["Cache-Control"] == "public, max-age=31536000, immutable", url
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert hashlib.sha256(r.body).hexdigest().startswith(url.split("/")[3])
        assert api.request("GET", url, headers={"If-None-Match": r.headers["ETag"]}).status == 304
    stale = api.request("GET", "/ui/static/0000000000000000/dtr.css")
    assert stale.status == 200 and stale.headers["Cache-Control"] == "no-cache"
    assert api.request("GET", "/ui/static/0000000000000000/nothing.js").status == 404


def test_the_vendored_htmx_is_the_release_named_in_its_license_file() -> None:
    assets = load_assets()
    note = assets["htmx.LICENSE"].body.decode()
    assert "htmx.org@2.0.8" in note and "Zero-Clause BSD" in note
    assert hashlib.sha256(assets["htmx.min.js"].body).hexdigest() in note


def test_without_the_ui_root_stays_a_404(dtr_factory: Any) -> None:
    proc: DtrProcess = dtr_factory({"ui": {"enabled": False}})
    client = Client(proc.url)
    r = client.request("GET", "/")
    assert r.status == 404 and r.headers["Content-Type"].startswith("text/plain")
    assert client.request("GET", "/ui/login").status == 404
    assert client.request("GET", "/v2/").status == 200


def test_with_authentication_off_everyone_uses_the_ui_and_posts_still_need_the_token(dtr: DtrProcess) -> None:
    client = Client(dtr.url)
    r = client.request("GET", "/ui/repositories")
    assert r.status == 200 and b"New repository" in r.body
    cookie = r.headers["Set-Cookie"].split(";", 1)[0]
    token = cookie.split("=", 1)[1]
    name = f"ui{hashlib.sha256(cookie.encode()).hexdigest()[:8]}"
    form = {"namespace": "anyone", "name": name, "visibility": "private"}
    refused = client.request("POST", "/ui/repositories/new", form=form, headers={"Origin": dtr.url, "Cookie": cookie})
    assert refused.status == 403
    done = client.request("POST", "/ui/repositories/new", form={**form, "csrf_token": token},
                          headers={"Origin": dtr.url, "Cookie": cookie})
    # past the CSRF check, to the use case: no account "anyone" (auth off has no accounts), beside the field
    assert done.status == 400 and b'id="namespace-error"' in done.body and b"no account named" in done.body


def test_behind_a_tls_proxy_cookies_are_secure(dtr_factory: Any) -> None:
    proc: DtrProcess = dtr_factory({**UI_AUTH, "http": {"trusted_proxies": ["127.0.0.1/32"]}})
    client = Client(proc.url)
    proxy = {"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example"}
    r = client.request("GET", "/ui/login", headers=proxy)
    assert r.status == 200 and "; Secure" in r.headers["Set-Cookie"]
    cookie = r.headers["Set-Cookie"].split(";", 1)[0]
    form = {"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": cookie.split("=", 1)[1]}
    # the origin the browser saw is the proxy's (or http.external_url's), no other
    assert client.request("POST", "/ui/login", form=form,
                          headers={**proxy, "Cookie": cookie, "Origin": "https://other.example"}).status == 403
    r = client.request("POST", "/ui/login", form=form,
                       headers={**proxy, "Cookie": cookie, "Origin": "https://registry.example"})
    assert r.status == 303, r.body
    session = r.headers["Set-Cookie"]
    assert session.startswith("dtr_session=") and "; Secure" in session and "HttpOnly" in session

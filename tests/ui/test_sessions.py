"""Signing in and out of the web UI in a real browser: the admin's first login, refusals that keep
what was typed, throttling shared with docker login, access tokens refused, logout, expiry."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_PASSWORD
from tests.auth.slapd import Slapd, person
from tests.auth.test_ldap import ldap_config
from tests.servers import DtrProcess
from tests.ui.conftest import UI, UI_AUTH, new_user

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def _security_headers(headers: dict[str, str]) -> None:
    assert headers["content-security-policy"] == CSP
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-content-type-options"] == "nosniff"


def test_the_admin_signs_in_and_sees_the_repositories(ui: UI) -> None:
    resp = ui.goto("/")
    assert ui.page.url.endswith("/ui/login")
    _security_headers(resp.headers)
    ui.shot("login")
    ui.login(ADMIN, ADMIN_PASSWORD)
    assert ui.page.locator("h1").inner_text() == "Repositories"
    assert ui.page.locator(".who").inner_text().startswith(ADMIN)
    cookie = next(c for c in ui.context.cookies() if c["name"] == "dtr_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP here; Secure under TLS
    _security_headers(ui.goto("/").headers)  # signed in, / is the repositories
    assert ui.page.url.endswith("/ui/repositories")
    ui.shot("repositories")


def test_signing_in_with_the_keyboard_alone(ui: UI) -> None:
    ui.goto("/ui/login")
    ui.page.keyboard.press("Tab")
    assert ui.page.evaluate("document.activeElement.textContent") == "Skip to content"
    ui.page.keyboard.press("Enter")  # to the main content: its first field is next
    ui.page.keyboard.press("Tab")
    assert ui.page.evaluate("document.activeElement.id") == "f-username"
    ui.page.keyboard.type(ADMIN)
    ui.page.keyboard.press("Tab")
    ui.page.keyboard.type(ADMIN_PASSWORD)
    ui.page.keyboard.press("Enter")
    ui.page.wait_for_url("**/ui/repositories")


def test_the_theme_follows_the_browser(ui: UI) -> None:
    ui.goto("/ui/login")
    background = "getComputedStyle(document.body).backgroundColor"
    ui.page.emulate_media(color_scheme="light")
    light = ui.page.evaluate(background)
    ui.page.emulate_media(color_scheme="dark")
    dark = ui.page.evaluate(background)
    assert light == "rgb(255, 255, 255)" and dark == "rgb(15, 18, 22)"
    ui.shot("login-dark")


def test_a_wrong_password_shows_an_error_and_keeps_the_username(ui: UI, api: Client) -> None:
    user, _ = new_user(api)
    ui.goto("/ui/login")
    ui.page.fill("#f-username", user)
    ui.page.fill("#f-password", "not-the-password")
    ui.page.click("button[type=submit]")
    assert ui.page.locator("#password-error").inner_text() == "invalid username or password"
    assert ui.page.input_value("#f-username") == user
    assert ui.page.input_value("#f-password") == ""  # a password is never sent back
    assert ui.page.get_attribute("#f-password", "aria-describedby") == "password-error"
    ui.shot("login-failed")


def test_failures_throttle_the_login_and_docker_login_alike(ui: UI, api: Client) -> None:
    user, password = new_user(api)
    threshold = 5  # auth.failed_login_threshold's default
    for _ in range(threshold):
        ui.goto("/ui/login")
        ui.page.fill("#f-username", user)
        ui.page.fill("#f-password", "wrong")
        ui.page.click("button[type=submit]")
        assert ui.page.locator("#password-error").is_visible()
    ui.goto("/ui/login")
    ui.page.fill("#f-username", user)
    ui.page.fill("#f-password", password)  # even the right one, while locked
    with ui.page.expect_response("**/ui/login") as answer:
        ui.page.click("button[type=submit]")
    assert answer.value.status == 429
    assert "too many failed logins" in ui.page.locator("#form-error").inner_text()
    assert ui.page.input_value("#f-username") == user
    ui.shot("login-throttled")
    # docker login (the token endpoint with Basic credentials) is refused the same way
    assert api.token([], (user, password)).status == 429


def test_an_access_token_cannot_open_a_browser_session(ui: UI, api: Client) -> None:
    user = new_user(api)
    token = api.api("POST", "/api_tokens", user, {"tokenLabel": "ci"}, expect=201).json()["token"]
    assert api.token([], (user[0], token)).status == 200  # good for docker login
    ui.goto("/ui/login")
    ui.page.fill("#f-username", user[0])
    ui.page.fill("#f-password", token)
    ui.page.click("button[type=submit]")
    assert "access tokens cannot open a browser session" in ui.page.locator("#password-error").inner_text()
    assert not [c for c in ui.context.cookies() if c["name"] == "dtr_session"]


def test_logout_ends_the_session(ui: UI, api: Client) -> None:
    ui.login(*new_user(api))
    cookie = next(c for c in ui.context.cookies() if c["name"] == "dtr_session")
    ui.page.click("text=Sign out")
    ui.page.wait_for_url("**/ui/login")
    assert not [c for c in ui.context.cookies() if c["name"] == "dtr_session"]
    # the old cookie opens nothing any more
    r = ui.context.request.get(f"{ui.base}/ui/repositories", max_redirects=0,
                               headers={"Cookie": f"dtr_session={cookie['value']}"})
    assert r.status == 303 and r.headers["location"].startswith("/ui/login")


def test_an_idle_session_ends(ui_factory: Any, dtr_factory: Any) -> None:
    idle = 4
    proc: DtrProcess = dtr_factory({**UI_AUTH, "ui": {"session_idle": idle}})
    ui = ui_factory(proc.url)
    ui.login(ADMIN, ADMIN_PASSWORD)
    for _ in range(idle + 2):  # in use for longer than the idle time: still signed in
        time.sleep(1)
        ui.goto("/ui/repositories")
        assert ui.page.url.endswith("/ui/repositories")
    time.sleep(idle + 1)  # then idle for longer
    ui.goto("/ui/repositories")
    assert "/ui/login" in ui.page.url
    assert "session has ended" in ui.page.locator(".notice").inner_text()
    ui.login(ADMIN, ADMIN_PASSWORD)  # and back in, to where the visitor was going
    assert ui.page.url.endswith("/ui/repositories")


def test_a_directory_user_signs_in(ui_factory: Any, dtr_factory: Any, slapd: Slapd) -> None:
    proc: DtrProcess = dtr_factory(ldap_config(slapd))
    name = f"p{uuid.uuid4().hex[:8]}"
    slapd.add(person(name, f"Person {name}", f"Ldap-{name}"))
    ui = ui_factory(proc.url)
    ui.login(name, f"Ldap-{name}")
    assert ui.page.locator(".who").inner_text() == name


def test_a_session_ends_at_its_maximum_age_however_active(ui_factory: Any, dtr_factory: Any) -> None:
    proc: DtrProcess = dtr_factory({**UI_AUTH, "ui": {"session_max": 3}})
    ui = ui_factory(proc.url)
    ui.login(ADMIN, ADMIN_PASSWORD)
    for _ in range(4):  # active all along, for longer than ui.session_max
        time.sleep(1)
        ui.goto("/ui/repositories")
    assert "/ui/login" in ui.page.url
    assert "session has ended" in ui.page.locator(".notice").inner_text()

"""Signing in and out of the web UI in a real browser: the admin's first login, refusals that keep
what was typed, throttling shared with docker login, access tokens refused, logout, expiry."""

from __future__ import annotations

import asyncio
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


async def test_the_admin_signs_in_and_sees_the_repositories(ui: UI) -> None:
    resp = await ui.goto("/")
    assert ui.page.url.endswith("/ui/login")
    _security_headers(resp.headers)
    await ui.shot("login")
    await ui.login(ADMIN, ADMIN_PASSWORD)
    assert await ui.page.locator("h1").inner_text() == "Repositories"
    assert (await ui.text(".who")).startswith(ADMIN)
    cookie = next(c for c in await ui.context.cookies() if c["name"] == "dtr_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP here; Secure under TLS
    _security_headers((await ui.goto("/")).headers)  # signed in, / is the repositories
    assert ui.page.url.endswith("/ui/repositories")
    await ui.shot("repositories")


async def test_signing_in_with_the_keyboard_alone(ui: UI) -> None:
    await ui.goto("/ui/login")
    await ui.page.keyboard.press("Tab")
    assert await ui.page.evaluate("document.activeElement.textContent") == "Skip to content"
    await ui.page.keyboard.press("Enter")  # to the main content: its first field is next
    await ui.page.keyboard.press("Tab")
    assert await ui.page.evaluate("document.activeElement.id") == "f-username"
    await ui.page.keyboard.type(ADMIN)
    await ui.page.keyboard.press("Tab")
    await ui.page.keyboard.type(ADMIN_PASSWORD)
    await ui.page.keyboard.press("Enter")
    await ui.page.wait_for_url("**/ui/repositories")


async def test_the_theme_follows_the_browser(ui: UI) -> None:
    await ui.goto("/ui/login")
    background = "getComputedStyle(document.body).backgroundColor"
    await ui.page.emulate_media(color_scheme="light")
    light = await ui.page.evaluate(background)
    await ui.page.emulate_media(color_scheme="dark")
    dark = await ui.page.evaluate(background)
    assert light == "rgb(255, 255, 255)" and dark == "rgb(15, 18, 22)"
    await ui.shot("login-dark")


async def test_a_wrong_password_shows_an_error_and_keeps_the_username(ui: UI, api: Client) -> None:
    user, _ = new_user(api)
    await ui.goto("/ui/login")
    await ui.page.fill("#f-username", user)
    await ui.page.fill("#f-password", "not-the-password")
    await ui.page.click("button[type=submit]")
    assert await ui.page.locator("#password-error").inner_text() == "invalid username or password"
    assert await ui.page.input_value("#f-username") == user
    assert await ui.page.input_value("#f-password") == ""  # a password is never sent back
    assert await ui.page.get_attribute("#f-password", "aria-describedby") == "password-error"
    await ui.shot("login-failed")


async def test_failures_throttle_the_login_and_docker_login_alike(ui: UI, api: Client) -> None:
    user, password = new_user(api)
    threshold = 5  # auth.failed_login_threshold's default
    for _ in range(threshold):
        await ui.goto("/ui/login")
        await ui.page.fill("#f-username", user)
        await ui.page.fill("#f-password", "wrong")
        await ui.page.click("button[type=submit]")
        assert await ui.page.locator("#password-error").is_visible()
    await ui.goto("/ui/login")
    await ui.page.fill("#f-username", user)
    await ui.page.fill("#f-password", password)  # even the right one, while locked
    async with ui.page.expect_response("**/ui/login") as answer:
        await ui.page.click("button[type=submit]")
    assert (await answer.value).status == 429
    assert "too many failed logins" in await ui.page.locator("#form-error").inner_text()
    assert await ui.page.input_value("#f-username") == user
    await ui.shot("login-throttled")
    # docker login (the token endpoint with Basic credentials) is refused the same way
    assert api.token([], (user, password)).status == 429


async def test_an_access_token_cannot_open_a_browser_session(ui: UI, api: Client) -> None:
    user = new_user(api)
    token = api.api("POST", "/api_tokens", user, {"tokenLabel": "ci"}, expect=201).json()["token"]
    assert api.token([], (user[0], token)).status == 200  # good for docker login
    await ui.goto("/ui/login")
    await ui.page.fill("#f-username", user[0])
    await ui.page.fill("#f-password", token)
    await ui.page.click("button[type=submit]")
    assert "access tokens cannot open a browser session" in await ui.page.locator("#password-error").inner_text()
    assert not [c for c in await ui.context.cookies() if c["name"] == "dtr_session"]


async def test_logout_ends_the_session(ui: UI, api: Client) -> None:
    await ui.login(*new_user(api))
    cookie = next(c for c in await ui.context.cookies() if c["name"] == "dtr_session")
    await ui.page.click("text=Sign out")
    await ui.page.wait_for_url("**/ui/login")
    assert not [c for c in await ui.context.cookies() if c["name"] == "dtr_session"]
    # the old cookie opens nothing any more
    r = await ui.context.request.get(f"{ui.base}/ui/repositories", max_redirects=0,
                                     headers={"Cookie": f"dtr_session={cookie['value']}"})
    assert r.status == 303 and r.headers["location"].startswith("/ui/login")


async def test_an_idle_session_ends(ui_factory: Any, dtr_factory: Any) -> None:
    idle = 4
    proc: DtrProcess = dtr_factory({**UI_AUTH, "ui": {"session_idle": idle}})
    ui = await ui_factory(proc.url)
    await ui.login(ADMIN, ADMIN_PASSWORD)
    for _ in range(idle + 2):  # in use for longer than the idle time: still signed in
        await asyncio.sleep(1)
        await ui.goto("/ui/repositories")
        assert ui.page.url.endswith("/ui/repositories")
    await asyncio.sleep(idle + 1)  # then idle for longer
    await ui.goto("/ui/repositories")
    assert "/ui/login" in ui.page.url
    assert "session has ended" in await ui.page.locator(".notice").inner_text()
    await ui.login(ADMIN, ADMIN_PASSWORD)  # and back in, to where the visitor was going
    assert ui.page.url.endswith("/ui/repositories")


async def test_a_directory_user_signs_in(ui_factory: Any, dtr_factory: Any, slapd: Slapd) -> None:
    proc: DtrProcess = dtr_factory(ldap_config(slapd))
    name = f"p{uuid.uuid4().hex[:8]}"
    slapd.add(person(name, f"Person {name}", f"Ldap-{name}"))
    ui = await ui_factory(proc.url)
    await ui.login(name, f"Ldap-{name}")
    assert await ui.page.locator(".who").inner_text() == name


async def test_a_session_ends_at_its_maximum_age_however_active(ui_factory: Any, dtr_factory: Any) -> None:
    proc: DtrProcess = dtr_factory({**UI_AUTH, "ui": {"session_max": 3}})
    ui = await ui_factory(proc.url)
    await ui.login(ADMIN, ADMIN_PASSWORD)
    for _ in range(4):  # active all along, for longer than ui.session_max
        await asyncio.sleep(1)
        await ui.goto("/ui/repositories")
    assert "/ui/login" in ui.page.url
    assert "session has ended" in await ui.page.locator(".notice").inner_text()

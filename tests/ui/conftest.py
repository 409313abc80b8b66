"""The web UI in a real browser: Debian's chromium driven by Playwright's sync API.

The browser tests are plain sync functions against ``DtrProcess`` servers (the sync API cannot
run inside the suite's running event loop); ``chromium`` is launched once per worker. Each
``page`` records console errors, page errors, failed subresource loads and dialogs: a test fails
on any console error or CSP violation, and on any dialog it did not expect.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Playwright, sync_playwright

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, PASSWORD, auth_config
from tests.auth.test_ldap import slapd  # noqa: F401  (a real slapd for the directory login)
from tests.servers import DtrProcess, create_database, require_binary

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"]
#: The UI server's auth: a long lockout (the throttling test sees it), no address lockout (the
#: worker's other tests log in from the same address).
UI_AUTH = auth_config(failed_login_address_threshold=100000, lockout_base=120)


@pytest.fixture(scope="session")
def playwright_api() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def chromium(playwright_api: Playwright) -> Iterator[Browser]:
    path = require_binary("chromium", "apt-get install chromium")
    browser = playwright_api.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def ui_dtr(pg_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DtrProcess]:
    proc = DtrProcess(tmp_path_factory.mktemp("dtr-ui"), create_database(pg_uri), UI_AUTH)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def api(ui_dtr: DtrProcess) -> Client:
    return Client(ui_dtr.url)


@dataclasses.dataclass
class Watch:
    """What a page did that a test did not ask for."""

    console_errors: list[str] = dataclasses.field(default_factory=list)
    failed_loads: list[str] = dataclasses.field(default_factory=list)
    dialogs: list[str] = dataclasses.field(default_factory=list)
    #: Dialog messages the test expects (accepted); any other is dismissed and fails the test.
    accept: set[str] = dataclasses.field(default_factory=set)

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        if dialog.message in self.accept:
            dialog.accept()
        else:
            dialog.dismiss()

    def unexpected(self) -> list[str]:
        return [*self.console_errors, *self.failed_loads, *(d for d in self.dialogs if d not in self.accept)]


#: The visible form controls of the page that have no accessible name (as their outer HTML).
_UNNAMED_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(e => e.type !== 'hidden' && !e.hidden)
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map(e => e.outerHTML)"""


@dataclasses.dataclass
class UI:
    """A browser page on a dtr server, and what it watched; ``shot`` saves a screenshot."""

    page: Page
    context: BrowserContext
    base: str
    watch: Watch
    shots: Path

    def goto(self, path: str) -> Any:
        """Open ``path``: every UI page answers with its Content-Security-Policy."""
        resp = self.page.goto(self.base + path)
        assert resp is not None and "script-src 'self'" in resp.headers["content-security-policy"]
        return resp

    def login(self, user: str, password: str) -> None:
        self.goto("/ui/login")
        self.page.fill("#f-username", user)
        self.page.fill("#f-password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/ui/repositories**")

    def shot(self, name: str) -> None:
        """Save a screenshot of the page, after checking that every control on it has a name
        (a label, ``aria-label`` or its text)."""
        unnamed = self.page.evaluate(_UNNAMED_CONTROLS)
        assert not unnamed, f"controls without a label on {self.page.url}: {unnamed}"
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def csrf(self) -> str:
        return str(self.page.get_attribute('meta[name="csrf-token"]', "content"))


def open_ui(browser: Browser, base: str, shots: Path) -> tuple[UI, BrowserContext]:
    context = browser.new_context()
    page = context.new_page()
    watch = Watch()
    page.on("console", lambda m: watch.console_errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: watch.console_errors.append(f"page error: {e}"))
    page.on("response", lambda r: watch.failed_loads.append(f"{r.status} {r.url}")
            if r.status >= 400 and r.request.resource_type not in ("document", "fetch", "xhr") else None)
    page.on("dialog", watch.on_dialog)
    return UI(page, context, base, watch, shots), context


@pytest.fixture
def ui_factory(chromium: Browser, tmp_path: Path) -> Iterator[Any]:
    """``ui_factory(base_url)``: a fresh browser context (no cookies) on a page; checked at teardown."""
    opened: list[UI] = []

    def make(base: str) -> UI:
        ui, _ = open_ui(chromium, base, tmp_path)
        opened.append(ui)
        return ui

    yield make
    for ui in opened:
        ui.context.close()
    problems = [p for ui in opened for p in ui.watch.unexpected()]
    assert not problems, f"console errors, failed loads or dialogs: {problems}"


@pytest.fixture
def ui(ui_factory: Any, ui_dtr: DtrProcess) -> UI:
    return ui_factory(ui_dtr.url)  # type: ignore[no-any-return]


def new_user(api: Client, prefix: str = "u") -> tuple[str, str]:
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    api.api("POST", "/accounts", ADMIN_AUTH, {"name": name, "password": PASSWORD}, expect=201)
    return name, PASSWORD

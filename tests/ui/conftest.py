"""The web UI in a real browser: Debian's chromium driven by Playwright's async API.

The browser runs on the suite's session event loop (Playwright's sync API would leave its own
loop marked running in the worker, breaking every async test after it), launched once per worker;
the tests are async functions against ``DtrProcess`` servers (the sync ``Client`` for setup).
Each page records console errors, page errors, failed subresource loads and dialogs: a test fails
on any console error or CSP violation, and on any dialog it did not expect.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Dialog, Page, async_playwright

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, PASSWORD, auth_config
from tests.auth.test_ldap import slapd  # noqa: F401  (a real slapd for the directory login)
from tests.servers import ROOT, DtrProcess, create_database, require_binary

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"]
#: The UI server's auth: a long lockout (the throttling test sees it), no address lockout (the
#: worker's other tests log in from the same address).
UI_AUTH = auth_config(failed_login_address_threshold=100000, lockout_base=120)


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    path = require_binary("chromium", "apt-get install chromium")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture(scope="session")
def ui_dtr(pg_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DtrProcess]:
    proc = DtrProcess(tmp_path_factory.mktemp("dtr-ui"), create_database(pg_uri, migrated=True), UI_AUTH)
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

    async def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        if dialog.message in self.accept:
            await dialog.accept()
        else:
            await dialog.dismiss()

    def unexpected(self) -> list[str]:
        return [*self.console_errors, *self.failed_loads, *(d for d in self.dialogs if d not in self.accept)]


#: The visible form controls of the page that have no accessible name (as their outer HTML).
_UNNAMED_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(e => e.type !== 'hidden' && !e.hidden)
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map(e => e.outerHTML)"""


#: Where the tests' screenshots are written (CI keeps the directory as an artifact).
SHOTS = ROOT / "test-artifacts" / "ui"
AXE = ROOT / ".tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
_AXE_RUN = """async () => {
  const r = await axe.run(document, {resultTypes: ['violations']});
  return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => `${v.impact} ${v.id}: ${v.help}: ` + v.nodes.slice(0, 3).map(n => n.html).join(' | '));
}"""


async def axe_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on ``page`` (axe evaluated through the
    DevTools protocol, which the page's Content-Security-Policy does not apply to)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing; install it with: scripts/install-test-deps.sh "
                    "(npm install --prefix .tools/axe axe-core@4.10)", pytrace=False)
    if not await page.evaluate("() => typeof axe !== 'undefined'"):
        await page.evaluate(AXE.read_text() + "\n;0")
    return list(await page.evaluate(_AXE_RUN))


@dataclasses.dataclass
class UI:
    """A browser page on a dtr server, and what it watched; ``shot`` saves a screenshot."""

    page: Page
    context: BrowserContext
    base: str
    watch: Watch
    shots: Path

    async def goto(self, path: str) -> Any:
        """Open ``path``: every UI page answers with its Content-Security-Policy."""
        resp = await self.page.goto(self.base + path)
        assert resp is not None and "script-src 'self'" in resp.headers["content-security-policy"]
        return resp

    async def login(self, user: str, password: str) -> None:
        await self.goto("/ui/login")
        await self.page.fill("#f-username", user)
        await self.page.fill("#f-password", password)
        await self.page.click("button[type=submit]")
        await self.page.wait_for_url("**/ui/repositories**")

    async def shot(self, name: str) -> None:
        """Save a screenshot of the page, after checking that every control on it has a name
        (a label, ``aria-label`` or its text) and that axe-core finds no serious or critical
        accessibility violation on it."""
        unnamed = await self.page.evaluate(_UNNAMED_CONTROLS)
        assert not unnamed, f"controls without a label on {self.page.url}: {unnamed}"
        violations = await axe_violations(self.page)
        assert not violations, f"accessibility violations on {self.page.url}:\n" + "\n".join(violations)
        await self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    async def csrf(self) -> str:
        return str(await self.page.get_attribute('meta[name="csrf-token"]', "content"))

    async def text(self, selector: str) -> str:
        """The visible text of the first element ``selector`` matches."""
        return await self.page.locator(selector).first.inner_text()


async def open_ui(browser: Browser, base: str, shots: Path) -> tuple[UI, BrowserContext]:
    context = await browser.new_context()
    page = await context.new_page()
    watch = Watch()
    page.on("console", lambda m: watch.console_errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: watch.console_errors.append(f"page error: {e}"))
    page.on("response", lambda r: watch.failed_loads.append(f"{r.status} {r.url}")
            if r.status >= 400 and r.request.resource_type not in ("document", "fetch", "xhr") else None)
    page.on("dialog", watch.on_dialog)
    return UI(page, context, base, watch, shots), context


@pytest.fixture
async def ui_factory(chromium: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """``await ui_factory(base_url)``: a fresh browser context (no cookies) on a page; checked at teardown.
    Its screenshots go to ``SHOTS/<test name>/`` (kept for reviewers, ignored by git)."""
    shots = SHOTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shots.mkdir(parents=True, exist_ok=True)
    opened: list[UI] = []

    async def make(base: str) -> UI:
        ui, _ = await open_ui(chromium, base, shots)
        opened.append(ui)
        return ui

    yield make
    # What the pages did before they are closed (a poll cut off by the closing is not a problem).
    problems = [p for ui in opened for p in ui.watch.unexpected()]
    for ui in opened:
        await ui.context.close()
    assert not problems, f"console errors, failed loads or dialogs: {problems}"


@pytest.fixture
async def ui(ui_factory: Any, ui_dtr: DtrProcess) -> UI:
    return await ui_factory(ui_dtr.url)  # type: ignore[no-any-return]


def new_user(api: Client, prefix: str = "u") -> tuple[str, str]:
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    api.api("POST", "/accounts", ADMIN_AUTH, {"name": name, "password": PASSWORD}, expect=201)
    return name, PASSWORD

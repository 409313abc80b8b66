"""Administration pages in a real browser: site settings (a bad value refused beside its field),
users, organisations, teams and members, password reset and deactivation (the user's session
ends, their login is refused), the vulnerability database (update queued, a bad bundle's error
shown), hostile names rendered inert, and a non-admin refused (pages and a forged POST)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from dtr.scanning.bundles import load_signing_key, public_key_pem
from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD, PASSWORD
from tests.auth.slapd import Slapd, person
from tests.auth.test_ldap import ldap_config
from tests.servers import DtrProcess
from tests.ui.conftest import UI, UI_AUTH, new_user

HOSTILE = "<img src=x onerror=alert('hostile')><script>alert('s')</script>"
NEW_PASSWORD = "N3w-pass-word-x"


async def _finished(api: Client, job_id: str, within: float = 60) -> dict[str, Any]:
    """The job once it ended (done, error, cancel)."""
    deadline = time.monotonic() + within
    while True:
        job: dict[str, Any] = api.api("GET", f"/jobs/{job_id}", ADMIN_AUTH, expect=200).json()
        if job["status"] in ("done", "error", "cancel"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {within}s"
        await asyncio.sleep(0.2)


def _setting(api: Client) -> bool:
    return bool(api.api("GET", "/meta/settings", ADMIN_AUTH, expect=200).json()["createRepositoryOnPush"])


async def test_the_admin_changes_a_setting(ui: UI, api: Client) -> None:
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.page.click("header nav >> text=Admin")
    await ui.page.wait_for_url("**/ui/admin/settings")
    field = "#f-createRepositoryOnPush"
    assert "creates it" in await ui.text("#createRepositoryOnPush-help")  # the shape's description
    before = _setting(api)
    try:
        await ui.page.select_option(field, "false" if before else "true")
        await ui.page.click("main button[type=submit]")
        await ui.page.wait_for_url("**/ui/admin/settings?saved=1")
        assert "Settings saved." in await ui.text(".notice")
        assert _setting(api) is not before
        await ui.shot("admin-settings")
        # a value the select does not offer (a forged or stale form): refused beside the field, kept
        await ui.page.eval_on_selector(field, "s => { s.options[0].value = 'maybe'; s.selectedIndex = 0; }")
        await ui.page.click("main button[type=submit]")
        assert "must be yes or no" in await ui.page.locator("#createRepositoryOnPush-error").inner_text()
        assert await ui.page.input_value(field) == "maybe"
        assert await ui.page.get_attribute(field, "aria-invalid") == "true"
        await ui.shot("admin-settings-error")
        assert _setting(api) is not before
    finally:
        api.api("POST", "/meta/settings", ADMIN_AUTH, {"createRepositoryOnPush": before}, expect=200)


async def test_users_organisations_teams_and_members(ui_factory: Any, ui_dtr: Any, api: Client) -> None:
    admin = await ui_factory(ui_dtr.url)
    await admin.login(ADMIN, ADMIN_PASSWORD)
    suffix = uuid.uuid4().hex[:8]
    user, org, team = f"member{suffix}", f"org{suffix}", "builders"

    # a user, with a hostile full name; a bad name refused beside its field, what was typed kept
    await admin.goto("/ui/admin/users")
    await admin.shot("admin-users")
    await admin.page.click("text=New user")
    await admin.page.fill("#f-name", "Not A Name!")
    await admin.page.fill("#f-password", PASSWORD)
    await admin.page.fill("#f-full_name", HOSTILE)
    await admin.page.click("main button[type=submit]")
    assert "invalid account name" in await admin.page.locator("#name-error").inner_text()
    assert await admin.page.input_value("#f-full_name") == HOSTILE
    assert await admin.page.input_value("#f-password") == ""  # never sent back
    await admin.shot("admin-user-new")
    await admin.page.fill("#f-name", user)
    await admin.page.fill("#f-password", PASSWORD)
    await admin.page.click("main button[type=submit]")
    await admin.page.wait_for_url(f"**/ui/admin/users/{user}?done=created")
    assert HOSTILE in await admin.text("dl.facts")
    await admin.shot("admin-user")
    await admin.goto(f"/ui/admin/users?q={suffix}")
    assert await admin.page.locator("table.list tbody tr").count() == 1
    assert HOSTILE in await admin.text("table.list")

    # made a site admin and back
    await admin.goto(f"/ui/admin/users/{user}")
    await admin.page.click("text=Make site admin")
    await admin.page.wait_for_url("**?done=admin")
    assert api.api("GET", f"/accounts/{user}", ADMIN_AUTH, expect=200).json()["isAdmin"] is True
    await admin.page.click("text=Unmake site admin")
    await admin.page.wait_for_url("**?done=not-admin")
    assert api.api("GET", f"/accounts/{user}", ADMIN_AUTH, expect=200).json()["isAdmin"] is False

    # an organisation (a hostile name refused, inert; a hostile full name), a team, the member
    await admin.goto("/ui/admin/orgs")
    await admin.page.fill("#f-name", HOSTILE)
    await admin.page.click("text=Create organisation")
    assert "invalid account name" in await admin.page.locator("#name-error").inner_text()
    assert await admin.page.input_value("#f-name") == HOSTILE
    assert await admin.page.locator("main img, main script").count() == 0
    await admin.page.fill("#f-name", org)
    await admin.page.fill("#f-full_name", HOSTILE)
    await admin.page.click("text=Create organisation")
    await admin.page.wait_for_url(f"**/ui/admin/orgs/{org}")
    assert HOSTILE in await admin.text(".lead")
    await admin.page.fill("#f-name", team)
    await admin.page.click("text=Create team")
    await admin.page.wait_for_url(f"**/ui/admin/orgs/{org}/teams/{team}")
    await admin.page.fill("#f-member", "nobody-" + suffix)
    await admin.page.click("text=Add member")
    assert "no account named" in await admin.page.locator("#member-error").inner_text()
    await admin.page.fill("#f-member", user)
    await admin.page.click("text=Add member")
    await admin.page.wait_for_url(f"**/ui/admin/orgs/{org}/teams/{team}")
    assert user in await admin.text("table.list")
    await admin.shot("admin-team")
    members = api.api("GET", f"/accounts/{org}/teams/{team}/members", ADMIN_AUTH, expect=200).json()["members"]
    assert [m["member"]["name"] for m in members] == [user]
    await admin.goto(f"/ui/admin/orgs?q={suffix}")
    assert HOSTILE in await admin.text("table.list")
    await admin.shot("admin-orgs")
    await admin.goto(f"/ui/admin/orgs/{org}")
    await admin.shot("admin-org")
    assert await admin.page.locator("main img, main script").count() == 0
    assert not admin.watch.dialogs  # nothing hostile ran

    # the admin resets the password: the member logs in with the new one
    await admin.goto(f"/ui/admin/users/{user}")
    await admin.page.fill("#f-new_password", "short")
    await admin.page.click("main button:has-text('Reset password')")
    assert await admin.page.locator("#new_password-error").count() == 1
    await admin.page.fill("#f-new_password", NEW_PASSWORD)
    await admin.page.click("main button:has-text('Reset password')")
    await admin.page.wait_for_url("**?done=password")
    member = await ui_factory(ui_dtr.url)
    await member.login(user, NEW_PASSWORD)
    assert api.api("GET", "/accounts/me", (user, PASSWORD)).status == 401

    # deactivated: the member's session ends and the login is refused
    admin.watch.accept.add(f"Deactivate {user}? Their sessions end at once.")
    await admin.page.click("text=Deactivate")
    await admin.page.wait_for_url("**?done=deactivated")
    assert "inactive" in await admin.text("dl.facts")
    await member.goto("/ui/repositories")
    assert "/ui/login" in member.page.url
    await member.page.fill("#f-username", user)
    await member.page.fill("#f-password", NEW_PASSWORD)
    await member.page.click("button[type=submit]")
    assert "/ui/login" in member.page.url
    assert "inactive" in await member.page.locator("#password-error").inner_text()

    # a team removed, then the organisation after typing its name
    await admin.goto(f"/ui/admin/orgs/{org}/teams/{team}")
    await admin.page.click(f"button[aria-label='Remove {user}']")
    await admin.page.wait_for_url(f"**?removed={user}")
    admin.watch.accept.add(f"Delete the team {team}?")
    await admin.page.click(f"text=Delete team {team}")
    await admin.page.wait_for_url(f"**/ui/admin/orgs/{org}?deleted={team}")
    await admin.page.click(f"text=Delete {org}…")
    await admin.shot("admin-org-delete")
    await admin.page.fill("#f-confirm", "wrong")
    await admin.page.click("main button[type=submit]")
    assert await admin.page.locator("#confirm-error").count() == 1
    await admin.page.fill("#f-confirm", org)
    await admin.page.click("main button[type=submit]")
    await admin.page.wait_for_url(f"**/ui/admin/orgs?deleted={org}")
    assert api.api("GET", f"/accounts/{org}", ADMIN_AUTH).status == 404


async def test_the_vulnerability_database(ui_factory: Any, dtr_factory: Any, tmp_path: Path) -> None:
    signer = tmp_path / "signer.pem"
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(public_key_pem(load_signing_key(signer)))
    proc: DtrProcess = dtr_factory({**UI_AUTH, "scanning": {"bundle_trusted_keys": [str(trusted)]}})
    ui = await ui_factory(proc.url)
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.goto("/ui/admin/scanning")
    assert "no feed has been imported" in await ui.text("main")
    await ui.shot("admin-scanning")
    bundle = tmp_path / "bundle.tar"
    bundle.write_bytes(b"not a bundle at all")
    await ui.page.set_input_files("#f-upload", str(bundle))
    await ui.page.click("text=Import bundle")
    error = ui.page.locator("#upload-error")
    await error.wait_for()
    assert "the bundle is refused" in await error.inner_text()
    await ui.shot("admin-scanning-bad-bundle")
    # without JavaScript (a plain form post, the CSRF token in the body): the page says what to do
    r = await ui.context.request.post(ui.base + "/ui/admin/scanning/upload", headers={"Origin": ui.base}, multipart={
        "csrf_token": await ui.csrf(), "upload": {"name": "b.tar", "mimeType": "application/x-tar", "buffer": b"x"}})
    assert r.status == 400 and "needs JavaScript" in await r.text()
    await ui.page.click("main button:has-text('Update now')")
    await ui.page.wait_for_url("**/ui/jobs/*")  # the job's page (the jobs pages are another group's)


async def test_a_user_who_is_not_a_site_admin_is_refused(ui: UI, api: Client) -> None:
    user, password = new_user(api)
    await ui.login(user, password)
    assert await ui.page.locator("header nav >> text=Admin").count() == 0
    for path in ("/ui/admin/settings", "/ui/admin/scanning", "/ui/admin/users", "/ui/admin/orgs",
                 f"/ui/admin/users/{user}"):
        assert (await ui.goto(path)).status == 403, path
    await ui.shot("admin-refused")
    token = await ui.csrf()
    for path, form in (("/ui/admin/settings", {"createRepositoryOnPush": "true"}),
                       (f"/ui/admin/users/{user}/admin", {"admin": "true"}),
                       ("/ui/admin/orgs", {"name": f"o{uuid.uuid4().hex[:8]}"})):
        r = await ui.context.request.post(ui.base + path, form={"csrf_token": token, **form},
                                          headers={"Origin": ui.base}, max_redirects=0)
        assert r.status == 403, (path, r.status)
    assert api.api("GET", f"/accounts/{user}", ADMIN_AUTH, expect=200).json()["isAdmin"] is False
    assert _setting(api) is False


async def test_ldap_settings_tested_and_synced(ui_factory: Any, dtr_factory: Any, slapd: Slapd) -> None:
    proc: DtrProcess = dtr_factory(ldap_config(slapd))
    api = Client(proc.url)
    name = f"l{uuid.uuid4().hex[:8]}"
    slapd.add(person(name, f"Person {name}", f"Ldap-{name}"))
    ui = await ui_factory(proc.url)
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.goto("/ui/admin/ldap")
    assert "bind password is set" in await ui.text("main")
    assert await ui.page.input_value("#f-bind_password") == ""  # never shown
    assert await ui.page.input_value("#f-url") == slapd.url
    await ui.shot("admin-ldap")

    await ui.page.click("text=Test connection")
    result = ui.page.locator("#ldap-result")
    assert "Connection OK" in await result.inner_text() and "users found" in await result.inner_text()
    await ui.page.fill("#f-bind_password", "wrong-password")
    await ui.page.click("text=Test connection")
    assert "Connection failed" in await result.inner_text()
    assert "cannot bind" in await result.inner_text()
    assert "wrong-password" not in await ui.page.content()  # not echoed
    assert await ui.page.input_value("#f-url") == slapd.url  # the typed settings kept
    await ui.shot("admin-ldap-failed")
    await ui.page.fill("#f-url", "http://not-ldap")
    await ui.page.click("text=Test connection")
    assert "ldap://" in await ui.page.locator("#url-error").inner_text()
    assert await ui.page.input_value("#f-url") == "http://not-ldap"

    await ui.page.click("main button:has-text('Sync now')")
    await ui.page.wait_for_url("**/ui/jobs/*")
    job = await _finished(api, ui.page.url.rsplit("/", 1)[1])
    assert job["status"] == "done", job
    assert name in job["result"]["created"]
    found = api.api("GET", f"/accounts/{name}", ADMIN_AUTH, expect=200).json()
    assert found["isImported"] is True

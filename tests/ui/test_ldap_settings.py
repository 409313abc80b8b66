"""The LDAP page's Save in a real browser, on a server whose configuration file has no LDAP: a bad
value refused beside its field (typed values kept, the password never echoed), the settings
saved and read back (the password only as "set"), a directory user logging in with them, an
update keeping the saved password, a hostile value rendered inert, and a non-admin's forged
POST refused."""

from __future__ import annotations

import uuid
from typing import Any

from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD, auth_config
from tests.auth.slapd import PEOPLE, SERVICE_DN, SERVICE_PW, Slapd, person
from tests.auth.test_ldap import slapd  # noqa: F401  (the fixture)
from tests.servers import DtrProcess
from tests.ui.conftest import new_user

HOSTILE = "(objectClass=inetOrgPerson)<script>alert('x')</script>"


async def test_ldap_settings_saved(ui_factory: Any, dtr_factory: Any, slapd: Slapd) -> None:  # noqa: F811
    proc: DtrProcess = dtr_factory(auth_config())
    api = Client(proc.url)
    name = f"w{uuid.uuid4().hex[:8]}"
    slapd.add(person(name, f"Person {name}", f"Ldap-{name}"))
    ui = await ui_factory(proc.url)
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.goto("/ui/admin/ldap")
    assert "No directory is configured" in await ui.text("main")

    page = ui.page
    await page.fill("#f-url", "http://not-ldap")
    await page.fill("#f-user_search_base", PEOPLE)
    await page.fill("#f-bind_dn", SERVICE_DN)
    await page.fill("#f-bind_password", SERVICE_PW)
    await page.click("#ldap-save")
    assert "ldap://" in await page.locator("#url-error").inner_text()
    assert await page.input_value("#f-url") == "http://not-ldap"  # typed values kept
    assert await page.input_value("#f-bind_dn") == SERVICE_DN
    assert await page.input_value("#f-bind_password") == ""  # never echoed
    assert SERVICE_PW not in await page.content()
    assert api.api("GET", "/meta/ldap", ADMIN_AUTH, expect=200).json()["source"] == "none"

    await page.fill("#f-url", slapd.url)
    await page.fill("#f-user_filter", "(objectClass=inetOrgPerson)")
    await page.fill("#f-bind_password", SERVICE_PW)
    await page.click("#ldap-save")
    await page.wait_for_url("**/ui/admin/ldap?saved=1")
    assert "Saved" in await ui.text("#ldap-saved")
    assert "bind password is set" in await ui.text("main")
    assert "were saved here" in await ui.text("#ldap-source")
    assert await page.input_value("#f-url") == slapd.url
    assert await page.input_value("#f-bind_password") == ""
    assert SERVICE_PW not in await page.content()
    await ui.shot("admin-ldap-saved")
    found = api.api("GET", "/meta/ldap", ADMIN_AUTH, expect=200).json()
    assert found["source"] == "stored" and found["bindPasswordSet"] is True and found["bindDn"] == SERVICE_DN
    assert api.token([], (name, f"Ldap-{name}")).status == 200

    # Saved again without a password: the saved one is kept. A hostile value renders inert.
    await page.fill("#f-user_filter", HOSTILE)
    await page.click("#ldap-save")
    await page.wait_for_url("**/ui/admin/ldap?saved=1")
    assert await page.input_value("#f-user_filter") == HOSTILE
    assert await page.locator("main script").count() == 0
    assert api.api("GET", "/meta/ldap", ADMIN_AUTH, expect=200).json()["bindPasswordSet"] is True
    await page.fill("#f-user_filter", "(objectClass=inetOrgPerson)")
    await page.click("#ldap-save")
    await page.wait_for_url("**/ui/admin/ldap?saved=1")
    await page.click("text=Test connection")
    assert "Connection OK" in await page.locator("#ldap-result").inner_text()

    # A forged POST by a user who is no site admin is refused; nothing changes.
    user, password = new_user(api)
    other = await ui_factory(proc.url)
    await other.login(user, password)
    r = await other.context.request.post(other.base + "/ui/admin/ldap/save", form={
        "csrf_token": await other.csrf(), "url": "ldap://127.0.0.1:1", "user_search_base": "dc=x"},
        headers={"Origin": other.base}, max_redirects=0)
    assert r.status == 403
    assert api.api("GET", "/meta/ldap", ADMIN_AUTH, expect=200).json()["url"] == slapd.url

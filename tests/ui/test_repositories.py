"""Repository pages in a real browser: create (hostile Markdown inert, errors beside the field),
tags with size and pusher, delete a tag, settings, delete with confirmation, what a read-only
user sees and may not do, and cross-origin or token-less posts refused."""

from __future__ import annotations

import json
import uuid

from playwright.async_api import Browser, Route

from dtr.ui.render import size
from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD
from tests.auth.world import push_image
from tests.oci import OCI_MANIFEST
from tests.ui.conftest import UI, new_user

HOSTILE = """# Release <script>alert('script')</script>

<img src=x onerror="alert('img')">

[click me](javascript:alert('link'))

**bold** text
"""


def _new_repo(api: Client, owner: tuple[str, str], **fields: str) -> str:
    name = f"r{uuid.uuid4().hex[:8]}"
    api.api("POST", f"/repositories/{owner[0]}", owner, {"name": name, **fields}, expect=201)
    return f"{owner[0]}/{name}"


def _pushed_size(api: Client, repo: str, tag: str, auth: tuple[str, str]) -> int:
    """The bytes a pull of ``repo:tag`` fetches: the manifest, its config and layers."""
    r = api.v2("GET", f"{repo}/manifests/{tag}", f"repository:{repo}:pull", auth, headers={"Accept": OCI_MANIFEST})
    assert r.status == 200, r.body
    doc = json.loads(r.body)
    return len(r.body) + doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])


async def test_create_a_repository_whose_description_is_hostile(ui: UI, api: Client) -> None:
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.goto("/ui/repositories")
    await ui.page.click("text=New repository")
    await ui.shot("repository-new")
    await ui.page.fill("#f-name", "Not A Name!")
    await ui.page.fill("#f-short_description", "<b>short</b>")
    await ui.page.fill("#f-long_description", HOSTILE)
    await ui.page.check("input[name=visibility][value=public]")
    await ui.page.click("main button[type=submit]")
    # refused beside the field, with everything typed kept
    assert "invalid repository name" in await ui.page.locator("#name-error").inner_text()
    assert await ui.page.input_value("#f-name") == "Not A Name!"
    assert await ui.page.input_value("#f-long_description") == HOSTILE
    assert await ui.page.input_value("#f-short_description") == "<b>short</b>"
    assert await ui.page.is_checked("input[name=visibility][value=public]")
    await ui.shot("create-failed")
    name = f"hostile{uuid.uuid4().hex[:6]}"
    await ui.page.fill("#f-name", name)
    await ui.page.click("main button[type=submit]")
    await ui.page.wait_for_url(f"**/ui/repositories/{ADMIN}/{name}")
    description = ui.page.locator(".description")
    assert await description.locator("script, img, iframe").count() == 0
    assert await description.locator("a[href^='javascript']").count() == 0
    assert "<script>alert('script')</script>" in await description.inner_text()
    assert "<img src=x onerror=\"alert('img')\">" in await description.inner_text()
    assert await description.locator("strong").inner_text() == "bold"
    assert await ui.page.locator(".lead").inner_text() == "<b>short</b>"
    assert await ui.page.locator("b").count() == 0
    await ui.shot("repository-hostile")
    assert not ui.watch.dialogs  # nothing scripted the page
    found = api.api("GET", f"/repositories/{ADMIN}/{name}", ADMIN_AUTH, expect=200).json()
    assert found["visibility"] == "public" and found["longDescription"] == HOSTILE


async def test_a_pushed_tag_shows_its_size_and_pusher_and_is_deleted(ui: UI, api: Client) -> None:
    owner = new_user(api)
    repo = _new_repo(api, owner)
    digest = push_image(api, repo, "v1", owner)
    push_image(api, repo, "v2", ADMIN_AUTH)
    await ui.login(*owner)
    await ui.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ui.base)
    await ui.goto(f"/ui/repositories/{repo}")
    row = ui.page.locator("#tags tr", has=ui.page.locator("td.tag", has_text="v1"))
    assert await row.locator("td.tag").inner_text() == "v1"
    assert await row.locator("code").first.inner_text() == digest.partition(":")[2][:12]
    assert size(_pushed_size(api, repo, "v1", owner)) in await row.inner_text()
    assert await row.locator("td.pusher").inner_text() == owner[0]
    other = ui.page.locator("#tags tr", has=ui.page.locator("td.tag", has_text="v2"))
    assert await other.locator("td.pusher").inner_text() == ADMIN
    # the pull command, copied by its button (the text is selectable without JavaScript)
    command = f"docker pull {ui.base.split('//')[1]}/{repo}:v1"
    assert command in await row.inner_text()
    await row.locator("button.copy").click()
    assert await ui.page.evaluate("navigator.clipboard.readText()") == command
    await ui.shot("repository-tags")
    ui.watch.accept.add("Delete the tag v1?")
    await row.locator("button", has_text="Delete").click()
    await ui.page.wait_for_url("**deleted=v1")
    assert await ui.page.locator("td.tag", has_text="v1").count() == 0
    assert await ui.page.locator("td.tag", has_text="v2").count() == 1
    tags = api.v2("GET", f"{repo}/tags/list", f"repository:{repo}:pull", owner).json()["tags"]
    assert tags == ["v2"]


async def test_settings_and_delete_with_confirmation(ui: UI, api: Client) -> None:
    owner = new_user(api)
    repo = _new_repo(api, owner)
    await ui.login(*owner)
    await ui.goto(f"/ui/repositories/{repo}")
    await ui.page.click("nav.tabs >> text=Settings")
    await ui.page.check("input[name=visibility][value=public]")
    await ui.page.check("#f-immutable_tags")
    await ui.page.check("#f-scan_on_push")
    await ui.page.fill("#f-short_description", "a short one")
    await ui.page.click("text=Save settings")
    await ui.page.wait_for_url("**/settings?saved=1")
    assert await ui.page.is_checked("#f-immutable_tags") and await ui.page.is_checked("#f-scan_on_push")
    await ui.shot("repository-settings")
    found = api.api("GET", f"/repositories/{repo}", owner, expect=200).json()
    assert (found["visibility"], found["immutableTags"], found["scanOnPush"], found["shortDescription"]) == \
        ("public", True, True, "a short one")
    await ui.page.click(f"text=Delete {repo}")
    await ui.page.fill("#f-confirm", "not/it")
    await ui.page.click("button.danger")
    assert "to confirm" in await ui.page.locator("#confirm-error").inner_text()
    assert await ui.page.input_value("#f-confirm") == "not/it"
    await ui.shot("repository-delete")
    await ui.page.fill("#f-confirm", repo)
    await ui.page.click("button.danger")
    await ui.page.wait_for_url("**/ui/repositories?deleted=*")
    assert f"Repository {repo} deleted." in await ui.page.locator(".notice").inner_text()
    api.api("GET", f"/repositories/{repo}", owner, expect=404)


async def test_a_read_only_user_sees_no_admin_control_and_is_refused(ui: UI, api: Client) -> None:
    reader = new_user(api, "ro")
    org = f"org{uuid.uuid4().hex[:8]}"
    api.api("POST", "/accounts", ADMIN_AUTH, {"name": org, "isOrg": True}, expect=201)
    api.api("POST", f"/repositories/{org}", ADMIN_AUTH, {"name": "app"}, expect=201)
    api.api("POST", f"/accounts/{org}/teams", ADMIN_AUTH, {"name": "readers"}, expect=201)
    api.api("PUT", f"/accounts/{org}/teams/readers/members/{reader[0]}", ADMIN_AUTH, {}, expect=200)
    api.api("PUT", f"/repositories/{org}/app/teamAccess/readers", ADMIN_AUTH, {"accessLevel": "read-only"}, expect=200)
    push_image(api, f"{org}/app", "v1", ADMIN_AUTH)
    await ui.login(*reader)
    await ui.goto(f"/ui/repositories/{org}/app")
    assert await ui.page.locator("td.tag").inner_text() == "v1"
    assert await ui.page.locator("button", has_text="Delete").count() == 0
    assert await ui.page.locator("form[action*='/delete']").count() == 0
    assert await ui.page.locator("nav.tabs >> text=Settings").count() == 0
    await ui.shot("repository-read-only")
    assert (await ui.goto(f"/ui/repositories/{org}/app/settings")).status == 403
    assert "need admin access" in await ui.page.locator(".error-message").inner_text()
    await ui.shot("forbidden")
    assert (await ui.goto(f"/ui/repositories/{org}/app/delete")).status == 403
    # forged requests with the reader's own valid session and CSRF token
    token = await ui.csrf()
    forged = {f"/ui/repositories/{org}/app/tags/v1/delete": {},
              f"/ui/repositories/{org}/app/delete": {"confirm": f"{org}/app"},
              f"/ui/repositories/{org}/app/settings": {"visibility": "public", "short_description": "owned"}}
    for path, form in forged.items():
        r = await ui.context.request.post(ui.base + path, form={"csrf_token": token, **form},
                                          headers={"Origin": ui.base}, max_redirects=0)
        assert r.status == 403, (path, r.status)
    found = api.api("GET", f"/repositories/{org}/app", ADMIN_AUTH, expect=200).json()
    assert found["visibility"] == "private" and found["shortDescription"] == ""
    assert api.v2("GET", f"{org}/app/tags/list", f"repository:{org}/app:pull", ADMIN_AUTH).json()["tags"] == ["v1"]
    # a private repository the reader has no grant on is as missing as one that does not exist
    api.api("POST", f"/repositories/{org}", ADMIN_AUTH, {"name": "secret"}, expect=201)
    for name in ("secret", "nothing"):
        assert (await ui.goto(f"/ui/repositories/{org}/{name}")).status == 404
        assert await ui.text(".error-message") == f"no repository named '{org}/{name}'"
    assert await ui.page.locator("text=secret").count() == 0
    await ui.goto(f"/ui/repositories?namespace={org}")
    assert await ui.page.locator("#results a").all_inner_texts() == [f"{org}/app"]


async def test_posts_from_another_origin_or_without_the_token_are_refused(ui: UI, api: Client) -> None:
    owner = new_user(api)
    repo = _new_repo(api, owner)
    push_image(api, repo, "v1", owner)
    await ui.login(*owner)
    await ui.goto(f"/ui/repositories/{repo}")
    token = await ui.csrf()
    target = f"{ui.base}/ui/repositories/{repo}/tags/v1/delete"
    for headers, form in (({"Origin": "http://evil.example"}, {"csrf_token": token}),  # right token, wrong origin
                          ({"Origin": ui.base}, {}),  # right origin, no token
                          ({"Origin": ui.base}, {"csrf_token": "x" * 43}),  # a wrong token
                          ({}, {"csrf_token": token})):  # neither Origin nor Referer
        r = await ui.context.request.post(target, form=form, headers=headers, max_redirects=0)
        assert r.status == 403, (headers, form, r.status)
    assert api.v2("GET", f"{repo}/tags/list", f"repository:{repo}:pull", owner).json()["tags"] == ["v1"]
    # the token as a header (how htmx requests carry it) is as good as the form field
    push_image(api, repo, "v2", owner)
    r = await ui.context.request.post(f"{ui.base}/ui/repositories/{repo}/tags/v2/delete", form={},
                                      headers={"Origin": ui.base, "X-CSRF-Token": token}, max_redirects=0)
    assert r.status == 303, r.status
    # a real cross-site page whose form posts to dtr
    evil = "http://evil.example"

    async def evil_page(route: Route) -> None:
        await route.fulfill(content_type="text/html",
                            body=f'<form method="post" action="{target}"><button id="go">win a prize</button></form>')

    await ui.page.route(f"{evil}/**", evil_page)
    await ui.page.goto(f"{evil}/")
    async with ui.page.expect_response(target) as answer:
        await ui.page.click("#go")
    assert (await answer.value).status == 403
    assert api.v2("GET", f"{repo}/tags/list", f"repository:{repo}:pull", owner).json()["tags"] == ["v1"]


async def test_the_list_searches_filters_and_pages(ui: UI, api: Client, chromium: Browser) -> None:
    owner = new_user(api)
    for i in range(53):
        api.api("POST", f"/repositories/{owner[0]}", owner, {"name": f"app{i:03d}"}, expect=201)
    api.api("POST", f"/repositories/{owner[0]}", owner, {"name": "special-one"}, expect=201)
    await ui.login(*owner)
    await ui.goto(f"/ui/repositories?namespace={owner[0]}")
    assert await ui.page.locator("#results tbody tr").count() == 50
    await ui.page.click("text=Next page")
    await ui.page.wait_for_load_state()  # the click waits for the new page to start, not to load
    assert await ui.page.locator("#results tbody tr").count() == 4
    assert (await ui.page.locator("#results tbody tr").last.inner_text()).startswith(f"{owner[0]}/special-one")
    await ui.page.click("text=First page")
    await ui.page.wait_for_load_state()
    # typing in the search box updates the list in place (htmx) and the address with it
    await ui.page.fill("#f-q", "special")
    await ui.page.wait_for_url("**q=special**")
    await ui.page.locator("#results tbody tr").first.wait_for()
    assert await ui.page.locator("#results tbody tr").count() == 1
    await ui.shot("repositories-search")
    # without JavaScript the same page reads and filters
    context = await chromium.new_context(java_script_enabled=False)
    try:
        page = await context.new_page()
        await page.goto(f"{ui.base}/ui/login")
        await page.fill("#f-username", owner[0])
        await page.fill("#f-password", owner[1])
        await page.click("button[type=submit]")
        await page.fill("#f-q", "app05")
        await page.click("text=Filter")
        assert await page.locator("#results tbody tr").count() == 3
        await page.click(f"text={owner[0]}/app050")
        # the pull command is there to select; its copy button (which needs JavaScript) is not
        assert (await page.locator("#pull-command").inner_text()).endswith(f"/{owner[0]}/app050:latest")
        assert await page.locator("button.copy").count() == 1 and not await page.locator("button.copy").is_visible()
    finally:
        await context.close()


async def test_tags_are_paged(ui: UI, api: Client) -> None:
    owner = new_user(api)
    repo = _new_repo(api, owner)
    digest = push_image(api, repo, "t000", owner)
    manifest = api.v2("GET", f"{repo}/manifests/{digest}", f"repository:{repo}:pull", owner,
                      headers={"Accept": OCI_MANIFEST}).body
    token = api.bearer([f"repository:{repo}:push,pull"], owner)
    for i in range(1, 53):
        r = api.request("PUT", f"/v2/{repo}/manifests/t{i:03d}", bearer=token, data=manifest,
                        headers={"Content-Type": OCI_MANIFEST})
        assert r.status == 201, r.body
    await ui.login(*owner)
    await ui.goto(f"/ui/repositories/{repo}")
    assert await ui.page.locator("td.tag").all_inner_texts() == [f"t{i:03d}" for i in range(50)]
    await ui.page.click("text=Next page")
    await ui.page.wait_for_load_state()
    assert await ui.page.locator("td.tag").all_inner_texts() == ["t050", "t051", "t052"]
    await ui.page.click("text=First page")
    await ui.page.wait_for_load_state()
    assert await ui.page.locator("td.tag").count() == 50

"""The repository tabs in a real browser: team access (granted, then the team's member sees the
repository), pruning policies and their preview, webhooks and their deliveries (a receiver on
127.0.0.1; a hostile URL shown inert), push mirroring to a second registry, and what a read-only
user sees and may not do."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import ClientSession, web

from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD
from tests.auth.world import push_image
from tests.clients.engines import ReferenceRegistry
from tests.mirroring.conftest import reference  # noqa: F401  (a second registry: Go's reference)
from tests.servers import free_port
from tests.ui.conftest import UI, new_user

#: How long a test waits for what a job does (a bound, not a timing assertion).
WAIT = 60.0


def _org_repo(api: Client, team: str | None = None) -> tuple[str, str]:
    """A new organisation with repository ``app`` (and team ``team``): (organisation, repository)."""
    org = f"org{uuid.uuid4().hex[:8]}"
    api.api("POST", "/accounts", ADMIN_AUTH, {"name": org, "isOrg": True}, expect=201)
    api.api("POST", f"/repositories/{org}", ADMIN_AUTH, {"name": "app"}, expect=201)
    if team:
        api.api("POST", f"/accounts/{org}/teams", ADMIN_AUTH, {"name": team}, expect=201)
    return org, f"{org}/app"


async def _reload_until(ui: UI, selector: str, text: str) -> str:
    """Reload the page until ``selector``'s text has ``text`` (what a job does shows after it ran)."""
    async with asyncio.timeout(WAIT):
        while True:
            await ui.page.reload()
            found = await ui.page.locator(selector).all_inner_texts()
            if any(text in t for t in found):
                return " ".join(found)
            await asyncio.sleep(0.5)


async def _preview_text(ui: UI) -> str:
    """The pruning tab's preview, once loaded after the page (htmx replaces the placeholder)."""
    await ui.page.wait_for_selector("#preview-body:not([hx-get])")
    return await ui.text("#preview-body")


async def test_a_team_granted_access_is_listed_and_its_member_sees_the_repository(
        ui: UI, ui_factory: Callable[..., object], api: Client) -> None:
    org, repo = _org_repo(api, "devs")
    member = new_user(api, "dev")
    api.api("PUT", f"/accounts/{org}/teams/devs/members/{member[0]}", ADMIN_AUTH, {}, expect=200)
    push_image(api, repo, "v1", ADMIN_AUTH)
    other: UI = await ui_factory(ui.base)  # type: ignore[assignment]
    await other.login(*member)
    assert (await other.goto(f"/ui/repositories/{repo}")).status == 404
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.goto(f"/ui/repositories/{repo}")
    await ui.page.click("nav.tabs >> text=Access")
    assert await ui.page.get_attribute("nav.tabs a[aria-current=page]", "href") == f"/ui/repositories/{repo}/access"
    # a team that does not exist is refused beside the field, what was typed kept
    await ui.page.fill("#f-team", "nobody")
    await ui.page.click("text=Grant access")
    assert "no team named 'nobody'" in await ui.text("#team-error")
    assert await ui.page.input_value("#f-team") == "nobody"
    await ui.page.fill("#f-team", "devs")
    await ui.page.select_option("#f-level", "read-only")
    await ui.page.click("text=Grant access")
    await ui.page.wait_for_url("**/access?done=*")
    assert await ui.page.locator("#grants td.team").all_inner_texts() == ["devs"]
    assert await ui.page.locator("#grants select.level").input_value() == "read-only"
    await ui.shot("repository-access")
    found = api.api("GET", f"/repositories/{repo}/teamAccess", ADMIN_AUTH, expect=200).json()
    assert [(g["team"]["name"], g["accessLevel"]) for g in found["teamAccessList"]] == [("devs", "read-only")]
    # the member now sees it, and its tag
    await other.goto(f"/ui/repositories/{repo}")
    assert await other.page.locator("td.tag").inner_text() == "v1"
    # changed to admin: the member sees the admin tabs
    await ui.page.select_option("#grants select.level", "admin")
    await ui.page.click("#grants >> text=Change")
    await ui.page.wait_for_url("**/access?done=*")
    assert await ui.page.locator("#grants select.level").input_value() == "admin"
    await other.goto(f"/ui/repositories/{repo}")
    assert "Access" in await other.page.locator("nav.tabs").inner_text()
    # revoked: gone for the member
    ui.watch.accept.add("Revoke the access of devs?")
    await ui.page.click("#grants >> text=Revoke")
    await ui.page.wait_for_url("**/access?done=*")
    assert await ui.page.locator("#grants").count() == 0
    assert (await other.goto(f"/ui/repositories/{repo}")).status == 404


async def test_a_pruning_policy_and_what_it_would_prune(ui: UI, api: Client) -> None:
    # the server's prune schedule (every 15 minutes) would apply the policy for real while it exists
    cron = api.api("GET", "/crons/prune", ADMIN_AUTH, expect=200).json()
    api.api("PUT", "/crons/prune", ADMIN_AUTH, {**_cron_fields(cron), "enabled": False}, expect=200)
    try:
        await _pruning_policy_and_preview(ui, api)
    finally:
        api.api("PUT", "/crons/prune", ADMIN_AUTH, _cron_fields(cron), expect=200)


def _cron_fields(cron: dict[str, Any]) -> dict[str, Any]:
    return {k: cron[k] for k in ("schedule", "parameters", "enabled")}


async def _pruning_policy_and_preview(ui: UI, api: Client) -> None:
    owner = new_user(api)
    repo = f"{owner[0]}/app"
    api.api("POST", f"/repositories/{owner[0]}", owner, {"name": "app"}, expect=201)
    for tag in ("dev-1", "dev-2", "release-1"):
        push_image(api, repo, tag, owner)
    # the repository's admin who is no site admin has no Pruning tab (the use cases are site admins')
    await ui.login(*owner)
    await ui.goto(f"/ui/repositories/{repo}")
    assert await ui.page.locator("nav.tabs >> text=Pruning").count() == 0
    assert (await ui.goto(f"/ui/repositories/{repo}/pruning")).status == 403
    await ui.page.click("text=Sign out")
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.goto(f"/ui/repositories/{repo}")
    await ui.page.click("nav.tabs >> text=Pruning")
    assert "Nothing" in await _preview_text(ui)
    # an invalid rule: the use case's message beside the rules, the rows kept
    await ui.page.select_option("#f-field0", "tag")
    await ui.page.select_option("#f-operator0", "matches")
    await ui.page.fill("#f-values0", "(")
    await ui.page.click("text=Create policy")
    assert "invalid regular expression" in await ui.text("#rules-error")
    assert await ui.page.input_value("#f-values0") == "("
    await ui.page.select_option("#f-operator0", "sw")
    await ui.page.fill("#f-values0", "dev-")
    await ui.page.click("text=Create policy")
    await ui.page.wait_for_url("**/pruning?done=*")
    assert await ui.page.locator("#policies td.rules").all_inner_texts() == ["tag sw dev-"]
    await _preview_text(ui)
    assert await ui.page.locator("#would-prune td.tag").all_inner_texts() == ["dev-1", "dev-2"]
    preview = api.api("GET", f"/repositories/{repo}/pruningPolicies/test", ADMIN_AUTH, expect=200).json()
    assert [t["name"] for t in preview["tags"]] == ["dev-1", "dev-2"]
    # a tag limit of 1: the newest (release-1) stays either way
    await ui.page.fill("#f-tag_limit", "1")
    await ui.page.click("text=Save tag limit")
    await ui.page.wait_for_url("**/pruning?done=*")
    await _preview_text(ui)
    assert await ui.page.locator("#would-prune td.tag").all_inner_texts() == ["dev-1", "dev-2"]
    assert await ui.page.input_value("#f-tag_limit") == "1"
    # without JavaScript the preview is a link to the page with it inline
    await ui.goto(f"/ui/repositories/{repo}/pruning?preview=1")
    assert await ui.page.locator("#would-prune td.tag").all_inner_texts() == ["dev-1", "dev-2"]
    await ui.shot("repository-pruning")
    ui.watch.accept.add("Delete this pruning policy?")
    await ui.page.click("#policies >> text=Delete")
    await ui.page.wait_for_url("**/pruning?done=*")
    assert await ui.page.locator("#policies").count() == 0
    assert api.api("GET", f"/repositories/{repo}/pruningPolicies", ADMIN_AUTH, expect=200).json() == []
    # nothing was pruned: a preview prunes nothing
    tags = api.v2("GET", f"{repo}/tags/list", f"repository:{repo}:pull", owner).json()["tags"]
    assert sorted(tags) == ["dev-1", "dev-2", "release-1"]


class Receiver:
    """An HTTP receiver on 127.0.0.1 recording the bodies it got."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.url = ""
        self._arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        self._arrived.set()
        return web.Response(text="thanks")

    async def wait_for(self, n: int) -> None:
        """Return once ``n`` requests arrived."""
        async with asyncio.timeout(WAIT):
            while len(self.bodies) < n:
                self._arrived.clear()
                await self._arrived.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", got.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    got.url = f"http://127.0.0.1:{port}"
    yield got
    await runner.cleanup()


async def test_a_webhook_is_created_and_its_deliveries_listed(ui: UI, api: Client, receiver: Receiver) -> None:
    owner = new_user(api)
    repo = f"{owner[0]}/hooked"
    api.api("POST", f"/repositories/{owner[0]}", owner, {"name": "hooked"}, expect=201)
    hostile = f"{receiver.url}/hook?x=<script>alert('hook')</script>&y=\"><img src=x onerror=alert(1)>"
    secret = "s3cret-" + uuid.uuid4().hex
    await ui.login(*owner)
    await ui.goto(f"/ui/repositories/{repo}")
    await ui.page.click("nav.tabs >> text=Webhooks")
    # a URL the use case refuses: the message beside the field, the secret not echoed
    await ui.page.fill("#f-endpoint", "ftp://example.com/x")
    await ui.page.fill("#f-secret", secret)
    await ui.page.click("text=Create webhook")
    assert await ui.page.locator("#endpoint-error").count() == 1
    assert await ui.page.input_value("#f-secret") == ""
    assert secret not in await ui.page.content()
    await ui.page.select_option("#f-type", "TAG_PUSH")
    await ui.page.fill("#f-endpoint", hostile)
    await ui.page.fill("#f-secret", secret)
    await ui.page.click("text=Create webhook")
    await ui.page.wait_for_url("**/webhooks?done=*")
    assert await ui.page.locator("#hooks td.endpoint").inner_text() == hostile
    assert await ui.page.locator("#hooks td >> text=set").count() == 1
    assert await ui.page.locator("main script, main img").count() == 0
    assert secret not in await ui.page.content()
    await ui.shot("repository-webhooks")
    push_image(api, repo, "v1", owner)
    await receiver.wait_for(1)
    assert json.loads(receiver.bodies[0])["type"] == "TAG_PUSH"
    await ui.page.click("#hooks td.endpoint a")
    await _reload_until(ui, "#deliveries td.status", "succeeded")
    assert await ui.page.locator("#deliveries td >> text=TAG_PUSH").count() == 1
    assert await ui.text(".endpoint") == hostile
    await ui.shot("repository-webhook-deliveries")
    await ui.page.click("#deliveries >> text=Redeliver")
    await ui.page.wait_for_url("**done=*")
    assert "queued again" in await ui.text(".notice")
    await receiver.wait_for(2)
    assert receiver.bodies[1] == receiver.bodies[0]
    assert not ui.watch.dialogs
    await ui.page.click("text=All webhooks")
    ui.watch.accept.add("Delete this webhook?")
    await ui.page.click("#hooks >> text=Delete")
    await ui.page.wait_for_url("**/webhooks?done=*")
    assert await ui.page.locator("#hooks").count() == 0


async def test_a_push_mirroring_policy_created_and_run(ui: UI, api: Client,
                                                       reference: Callable[..., ReferenceRegistry]) -> None:  # noqa: F811
    remote = reference()
    owner = new_user(api)
    repo = f"{owner[0]}/mirrored"
    api.api("POST", f"/repositories/{owner[0]}", owner, {"name": "mirrored"}, expect=201)
    push_image(api, repo, "v1", owner)
    await ui.login(*owner)
    await ui.goto(f"/ui/repositories/{repo}")
    await ui.page.click("nav.tabs >> text=Mirroring")
    # a malformed remote repository: refused beside it, the password not echoed
    await ui.page.fill("#f-remote_host", remote.url)
    await ui.page.fill("#f-remote_repository", "Not A Name")
    await ui.page.fill("#f-username", "someone")
    await ui.page.fill("#f-password", "pa55-word-x")
    await ui.page.click("text=Create policy")
    assert "remoteRepository" in await ui.text("#remote_repository-error")
    assert await ui.page.input_value("#f-password") == ""
    assert "pa55-word-x" not in await ui.page.content()
    assert await ui.page.input_value("#f-username") == "someone"
    await ui.page.fill("#f-remote_repository", "mirror/app")
    await ui.page.fill("#f-password", "pa55-word-x")  # the reference registry asks for none
    await ui.page.click("text=Create policy")
    await ui.page.wait_for_url("**/mirroring?done=*")
    assert await ui.text("#push-policies td.credentials") == "someone, password set"
    assert "pa55-word-x" not in await ui.page.content()
    assert await ui.text("#push-policies td.last-status") == "never run"
    await ui.page.click("#push-policies >> text=Run now")
    await ui.page.wait_for_url("**/mirroring?done=*")
    status = await _reload_until(ui, "#push-policies td.last-status", "SUCCESS")
    assert "FAILED" not in status
    await ui.shot("repository-mirroring")
    async with ClientSession() as session, session.get(f"{remote.url}/v2/mirror/app/tags/list") as r:
        assert (await r.json())["tags"] == ["v1"]
    ui.watch.accept.add("Delete this mirroring policy?")
    await ui.page.click("#push-policies >> text=Delete")
    await ui.page.wait_for_url("**/mirroring?done=*")
    assert await ui.page.locator("#push-policies").count() == 0


async def test_a_read_only_user_sees_no_admin_tab_and_forged_posts_are_refused(ui: UI, api: Client,
                                                                                receiver: Receiver) -> None:
    org, repo = _org_repo(api, "readers")
    reader = new_user(api, "ro")
    api.api("PUT", f"/accounts/{org}/teams/readers/members/{reader[0]}", ADMIN_AUTH, {}, expect=200)
    api.api("PUT", f"/repositories/{repo}/teamAccess/readers", ADMIN_AUTH, {"accessLevel": "read-only"}, expect=200)
    await ui.login(*reader)
    await ui.goto(f"/ui/repositories/{repo}")
    assert await ui.page.locator("nav.tabs a").all_inner_texts() == ["Tags", "Events"]
    await ui.shot("repository-tabs-read-only")
    for tab in ("access", "pruning", "webhooks", "mirroring", "settings"):
        assert (await ui.goto(f"/ui/repositories/{repo}/{tab}")).status == 403, tab
    token = await ui.csrf()
    forged = {"access": {"team": "readers", "level": "admin"},
              "pruning/policies": {"field0": "tag", "operator0": "sw", "values0": "v"},
              "pruning/limit": {"tag_limit": "1"},
              "webhooks": {"type": "TAG_PUSH", "endpoint": f"{receiver.url}/x"},
              "mirroring": {"direction": "push", "remote_host": "http://127.0.0.1:1", "remote_repository": "a/b"}}
    for tail, form in forged.items():
        r = await ui.context.request.post(f"{ui.base}/ui/repositories/{repo}/{tail}",
                                          form={"csrf_token": token, **form}, headers={"Origin": ui.base},
                                          max_redirects=0)
        assert r.status == 403, (tail, r.status)
    grants = api.api("GET", f"/repositories/{repo}/teamAccess", ADMIN_AUTH, expect=200).json()["teamAccessList"]
    assert [g["accessLevel"] for g in grants] == ["read-only"]
    assert api.api("GET", f"/repositories/{repo}/pruningPolicies", ADMIN_AUTH, expect=200).json() == []
    assert api.api("GET", f"/webhooks?key={repo}", ADMIN_AUTH, expect=200).json()["webhooks"] == []
    assert api.api("GET", f"/repositories/{repo}/pushMirroringPolicies", ADMIN_AUTH, expect=200).json() == []

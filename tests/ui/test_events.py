"""Events in a real browser: a repository's Events tab and the registry-wide stream (site
admins) show a push and a tag delete, filtered by type, actor and time range; each event links to
its repository; a hostile filter value renders inert; a user who is no site admin is refused the
registry-wide stream as by the API."""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import quote

from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD
from tests.auth.world import push_image
from tests.ui.conftest import UI, new_user

HOSTILE = "\"><script>alert('actor')</script><img src=x onerror=alert(1)>"


def _minute(t: dt.datetime) -> str:
    """``t`` as a datetime-local input takes it (UTC)."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")


async def test_a_push_and_a_tag_delete_are_shown_and_filtered(ui: UI, api: Client) -> None:
    owner = new_user(api)
    repo = f"{owner[0]}/app{uuid.uuid4().hex[:6]}"
    api.api("POST", f"/repositories/{owner[0]}", owner, {"name": repo.partition('/')[2]}, expect=201)
    push_image(api, repo, "v1", owner)
    push_image(api, repo, "v2", ADMIN_AUTH)
    api.api("DELETE", f"/repositories/{repo}/tags/v1", owner, expect=204)
    await ui.login(*owner)
    await ui.goto(f"/ui/repositories/{repo}")
    await ui.page.click("nav.tabs >> text=Events")
    assert await ui.page.get_attribute("nav.tabs a[aria-current=page]", "href") == f"/ui/repositories/{repo}/events"
    types = await ui.page.locator("#events td.type").all_inner_texts()
    assert types[0] == "tag_deleted" and types.count("tag_pushed") == 2
    await ui.shot("repository-events")
    # by type (the form is a GET: the address says what is shown)
    await ui.page.select_option("#f-type", "tag_deleted")
    await ui.page.click("text=Filter")
    await ui.page.wait_for_url("**type=tag_deleted**")
    assert await ui.page.locator("#events td.type").all_inner_texts() == ["tag_deleted"]
    assert await ui.page.locator("#events td.tag").all_inner_texts() == ["v1"]
    assert await ui.page.locator("#events td.actor").all_inner_texts() == [owner[0]]
    # by actor
    await ui.page.select_option("#f-type", "tag_pushed")
    await ui.page.fill("#f-actor", ADMIN)
    await ui.page.click("text=Filter")
    await ui.page.wait_for_url("**actor=**")
    assert await ui.page.locator("#events td.tag").all_inner_texts() == ["v2"]
    # by time: a range in the future has none; one around now has them
    now = dt.datetime.now(dt.UTC)
    await ui.page.fill("#f-actor", "")
    await ui.page.select_option("#f-type", "")
    await ui.page.fill("#f-after", _minute(now + dt.timedelta(hours=1)))
    await ui.page.click("text=Filter")
    await ui.page.wait_for_url("**after=**")
    assert await ui.page.locator("#events").count() == 0
    assert "matches these filters" in await ui.text(".empty")
    await ui.page.fill("#f-after", _minute(now - dt.timedelta(hours=1)))
    await ui.page.fill("#f-before", _minute(now + dt.timedelta(hours=1)))
    await ui.page.click("text=Filter")
    await ui.page.wait_for_url("**before=**")
    assert await ui.page.locator("#events td.type").count() >= 3
    # a malformed time is refused beside its field
    r = await ui.goto(f"/ui/repositories/{repo}/events?after=yesterday")
    assert r.status == 400 and "expected a date and time" in await ui.text("#after-error")


async def test_the_registry_stream_is_for_site_admins_and_links_to_repositories(ui: UI, api: Client) -> None:
    owner = new_user(api)
    repo = f"{owner[0]}/app"
    api.api("POST", f"/repositories/{owner[0]}", owner, {"name": "app"}, expect=201)
    push_image(api, repo, "v1", owner)
    api.api("DELETE", f"/repositories/{repo}/tags/v1", owner, expect=204)
    # the API refuses a user who is no site admin the stream; so does the page
    await ui.login(*owner)
    assert (await ui.goto("/ui/events")).status == 403
    assert "site admins" in await ui.text(".error-message")
    await ui.page.click("text=Sign out")
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.page.click("header nav >> text=Events")
    await ui.page.wait_for_url("**/ui/events")
    assert await ui.page.get_attribute("header nav a[aria-current=page]", "href") == "/ui/events"
    await ui.page.fill("#f-actor", owner[0])
    await ui.page.click("text=Filter")
    await ui.page.wait_for_url("**actor=**")
    assert await ui.page.locator("#events td.type").all_inner_texts() == ["tag_deleted", "tag_pushed",
                                                                          "manifest_pushed", "repository_created"]
    assert set(await ui.page.locator("#events td.repository").all_inner_texts()) == {repo}
    await ui.shot("events")
    await ui.page.locator("#events td.repository a").first.click()
    await ui.page.wait_for_url(f"**/ui/repositories/{repo}")
    # a hostile filter value is shown as typed, inert
    await ui.goto(f"/ui/events?actor={quote(HOSTILE)}")
    assert await ui.page.input_value("#f-actor") == HOSTILE[:255]
    assert await ui.page.locator("main script, main img").count() == 0
    assert not ui.watch.dialogs
    await ui.shot("events-hostile-filter")
    # pages of 50, newest first, by event id: none repeated, none skipped
    for i in range(26):
        push_image(api, repo, f"p{i:02d}", owner)
    every = api.api("GET", f"/activity?actor={owner[0]}&pageSize=1000", ADMIN_AUTH, expect=200).json()["events"]
    assert len(every) > 50
    await ui.goto(f"/ui/events?actor={owner[0]}")
    shown = await ui.page.locator("#events td.type").all_inner_texts()
    assert len(shown) == 50
    await ui.page.click("text=Older")
    await ui.page.wait_for_load_state()  # the click waits for the new page to start, not to load
    shown += await ui.page.locator("#events td.type").all_inner_texts()
    assert shown == [e["type"] for e in every][:len(shown)] and len(shown) == min(len(every), 100)
    await ui.page.click("text=Newest")
    await ui.page.wait_for_load_state()
    assert await ui.page.locator("#events td.tag").first.inner_text() == "p25"

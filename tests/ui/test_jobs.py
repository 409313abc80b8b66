"""Jobs pages in a real browser: the list filtered by status and action, a job's log followed live
and its result, cancelling a job, editing a schedule (a bad cron expression refused beside the
field, hostile text inert), workers; what a user who is not a site admin gets."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import Browser, expect

from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD
from tests.ui.conftest import UI, new_user

#: Long enough for the browser to catch a job running; the waits below are the test's only clock.
WAIT_MS = 60_000


def _queue(api: Client, action: str, parameters: dict[str, object]) -> str:
    return str(api.api("POST", "/jobs", ADMIN_AUTH, {"action": action, "parameters": parameters},
                       expect=202).json()["id"])


async def test_the_list_filters_and_a_job_log_is_followed_live(ui: UI, api: Client) -> None:
    job = _queue(api, "noop", {"seconds": 3})
    await ui.login(ADMIN, ADMIN_PASSWORD)
    assert await ui.page.locator("header nav a", has_text="Jobs").count() == 1
    await ui.page.click("header nav >> text=Jobs")
    await ui.page.select_option("#f-action", "noop")
    await ui.page.click("text=Filter")
    await ui.page.wait_for_url("**/ui/jobs?**action=noop**")
    assert set(await ui.page.locator("table.jobs tbody td:first-child a").all_inner_texts()) == {"noop"}
    await ui.shot("jobs")
    await ui.page.click(f"a[href='/ui/jobs/{job}']")
    await ui.page.wait_for_url(f"**/ui/jobs/{job}")
    # the last line is written when the job ends: polling brings it, with the result and status
    await expect(ui.page.locator("#log .line", has_text="noop done")).to_have_count(1, timeout=WAIT_MS)
    await expect(ui.page.locator("#job-status")).to_have_text("done", timeout=WAIT_MS)
    await expect(ui.page.locator("#job-result")).to_contain_text('"slept": 3.0')
    await expect(ui.page.locator("#log-tail")).to_contain_text("End of the log")
    assert await ui.page.locator("#log .line", has_text="sleeping 3s").count() == 1
    assert await ui.page.locator("button", has_text="Cancel job").count() == 0
    await ui.shot("job")
    # filtering by status: the finished job is among the done ones, not the waiting ones
    await ui.goto("/ui/jobs")
    await ui.page.select_option("#f-status", "done")
    await ui.page.select_option("#f-action", "noop")
    await ui.page.click("text=Filter")
    await ui.page.wait_for_url("**status=done**")
    assert await ui.page.locator(f"a[href='/ui/jobs/{job}']").count() == 1
    await ui.goto("/ui/jobs?status=waiting&action=noop")
    assert await ui.page.locator(f"a[href='/ui/jobs/{job}']").count() == 0
    assert await ui.page.input_value("#f-status") == "waiting"


async def test_a_running_job_is_cancelled_and_its_page_follows_it(ui: UI, api: Client, chromium: Browser) -> None:
    job = _queue(api, "noop", {"seconds": 600})
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.goto(f"/ui/jobs/{job}")
    await expect(ui.page.locator("#job-status")).to_have_text("running", timeout=WAIT_MS)
    ui.watch.accept.add("Cancel this job?")
    await ui.page.click("text=Cancel job")
    await ui.page.wait_for_url(f"**/ui/jobs/{job}")
    await expect(ui.page.locator("#job-status")).to_have_text("cancel", timeout=WAIT_MS)
    await expect(ui.page.locator("#log .data", has_text=re.compile("^cancelled$"))).to_have_count(1)
    assert api.api("GET", f"/jobs/{job}", ADMIN_AUTH, expect=200).json()["status"] == "cancel"
    await expect(ui.page.locator("#log-tail")).to_contain_text("End of the log")
    assert await ui.page.locator("button", has_text="Cancel job").count() == 0
    # a page opened before the job ends shows its last lines and status without being reloaded
    other = _queue(api, "noop", {"seconds": 600})
    await ui.goto(f"/ui/jobs/{other}")
    await expect(ui.page.locator("#job-status")).to_have_text("running", timeout=WAIT_MS)
    # the log is written about twice a second, so the first line can come after the status
    await expect(ui.page.locator("#log .data", has_text="sleeping 600s")).to_have_count(1, timeout=WAIT_MS)
    await ui.page.evaluate("() => { window.openedOnce = true; }")
    # without JavaScript the page reads the same, with a link to reload it for new lines
    context = await chromium.new_context(java_script_enabled=False, storage_state=await ui.context.storage_state())
    try:
        page = await context.new_page()
        await page.goto(f"{ui.base}/ui/jobs/{other}")
        assert await page.locator("#log .data", has_text="sleeping 600s").count() == 1
        assert await page.locator(f"#log-tail a[href='/ui/jobs/{other}']").inner_text() == "Reload"
    finally:
        await context.close()
    assert await ui.page.locator("#log .data", has_text=re.compile("^cancelled$")).count() == 0
    api.api("POST", f"/jobs/{other}/cancel", ADMIN_AUTH, expect=200)
    await expect(ui.page.locator("#log .data", has_text=re.compile("^cancelled$"))).to_have_count(1, timeout=WAIT_MS)
    await expect(ui.page.locator("#job-status")).to_have_text("cancel", timeout=WAIT_MS)
    assert await ui.page.evaluate("() => window.openedOnce === true")


async def test_a_schedule_is_edited_and_a_bad_one_refused_beside_the_field(ui: UI, api: Client) -> None:
    api.api("PUT", "/crons/noop", ADMIN_AUTH, {"schedule": "0 0 3 1 1 *", "parameters": {"seconds": 1},
                                               "enabled": False}, expect=200)
    try:
        await ui.login(ADMIN, ADMIN_PASSWORD)
        await ui.goto("/ui/jobs")
        await ui.page.click("nav.tabs >> text=Schedules and workers")
        row = ui.page.locator("table.crons tr", has=ui.page.locator("th", has_text="noop"))
        assert "0 0 3 1 1 *" in await row.inner_text()
        # the workers and their capacity: this server's own worker at least
        assert await ui.page.locator("table.workers tbody tr").count() >= 1
        assert "noop: 4" in await ui.page.locator("table.workers").inner_text()
        await ui.shot("schedules")
        await row.locator("a", has_text="Edit").click()
        hostile = "<script>alert('cron')</script> * * * * *"
        await ui.page.fill("#f-schedule", hostile)
        await ui.page.click("main button[type=submit]")
        assert "<script>" in await ui.page.locator("#schedule-error").inner_text()
        assert await ui.page.input_value("#f-schedule") == hostile
        assert await ui.page.locator("main script").count() == 0
        assert not ui.watch.dialogs
        await ui.shot("schedule-invalid")
        assert api.api("GET", "/crons/noop", ADMIN_AUTH, expect=200).json()["schedule"] == "0 0 3 1 1 *"
        await ui.page.fill("#f-schedule", "0 30 4 1 1 *")
        await ui.page.click("main button[type=submit]")
        await ui.page.wait_for_url("**/ui/jobs/schedules?saved=noop")
        assert "0 30 4 1 1 *" in await row.inner_text()
        cron = api.api("GET", "/crons/noop", ADMIN_AUTH, expect=200).json()
        assert cron["schedule"] == "0 30 4 1 1 *" and not cron["enabled"] and cron["parameters"] == {"seconds": 1}
    finally:
        api.api("DELETE", "/crons/noop", ADMIN_AUTH)


async def test_a_user_who_is_not_a_site_admin_is_refused(ui: UI, api: Client) -> None:
    job = _queue(api, "noop", {})
    api.api("PUT", "/crons/noop", ADMIN_AUTH, {"schedule": "0 0 3 1 1 *", "enabled": False}, expect=200)
    try:
        user = new_user(api)
        await ui.login(*user)
        nav = await ui.page.locator("header nav").inner_text()
        assert "Jobs" not in nav and "Storage" not in nav
        for path in ("/ui/jobs", f"/ui/jobs/{job}", f"/ui/jobs/{job}/log?after=0", "/ui/jobs/schedules",
                     "/ui/jobs/schedules/noop", "/ui/storage"):
            assert (await ui.goto(path)).status == 403, path
        await ui.shot("jobs-forbidden")
        token = await ui.csrf()
        before = api.api("GET", "/jobs?action=gc", ADMIN_AUTH, expect=200).json()["jobs"]
        for path, form in ((f"/ui/jobs/{job}/cancel", {}), ("/ui/storage/gc", {"mode": "run"}),
                           ("/ui/storage/recount", {}), ("/ui/jobs/schedules/noop", {"schedule": "@every 1s"})):
            r = await ui.context.request.post(ui.base + path, form={"csrf_token": token, **form},
                                              headers={"Origin": ui.base}, max_redirects=0)
            assert r.status == 403, (path, r.status)
        assert api.api("GET", "/jobs?action=gc", ADMIN_AUTH, expect=200).json()["jobs"] == before
        assert api.api("GET", f"/jobs/{job}", ADMIN_AUTH, expect=200).json()["status"] != "cancel"
        assert api.api("GET", "/crons/noop", ADMIN_AUTH, expect=200).json()["schedule"] == "0 0 3 1 1 *"
    finally:
        api.api("DELETE", "/crons/noop", ADMIN_AUTH)


async def test_an_unknown_job_is_not_found(ui: UI) -> None:
    await ui.login(ADMIN, ADMIN_PASSWORD)
    assert (await ui.goto(f"/ui/jobs/{uuid.uuid4()}")).status == 404
    assert (await ui.goto("/ui/jobs/not-a-job")).status == 404
    assert (await ui.goto("/ui/jobs?status=%3Cscript%3E")).status == 400

"""The storage page in a real browser: usage of the pushed repositories (a recount, sizes as the
usage API counts them, bars), and garbage collection: a dry run showing what a run would free,
then the run, each followed live on its job page, and both in the history."""

from __future__ import annotations

import json
import uuid

from playwright.async_api import expect

from dtr.ui.render import size
from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD
from tests.auth.world import push_image
from tests.oci import OCI_MANIFEST
from tests.ui.conftest import UI, new_user

WAIT_MS = 60_000


def _stored(api: Client, repo: str, tags: list[str], auth: tuple[str, str]) -> tuple[int, dict[str, int]]:
    """What ``tags`` of ``repo`` store: their manifests' bytes, and their blobs (config, layers) by digest."""
    manifests, blobs = 0, {}
    for tag in tags:
        r = api.v2("GET", f"{repo}/manifests/{tag}", f"repository:{repo}:pull", auth,
                   headers={"Accept": OCI_MANIFEST})
        assert r.status == 200, r.body
        doc = json.loads(r.body)
        manifests += len(r.body)
        blobs.update({d["digest"]: d["size"] for d in (doc["config"], *doc["layers"])})
    return manifests, blobs


async def _wait_done(ui: UI) -> None:
    await expect(ui.page.locator("#job-status")).to_have_text("done", timeout=WAIT_MS)


async def test_usage_of_pushed_repositories(ui: UI, api: Client) -> None:
    owner = new_user(api)
    repos = [f"{owner[0]}/r{uuid.uuid4().hex[:6]}", f"{owner[0]}/r{uuid.uuid4().hex[:6]}"]
    for repo in repos:
        api.api("POST", f"/repositories/{owner[0]}", owner, {"name": repo.split("/")[1]}, expect=201)
        push_image(api, repo, "v1", owner)
    push_image(api, repos[1], "v2", owner)
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.page.click("header nav >> text=Storage")
    await ui.page.wait_for_url("**/ui/storage")
    await ui.page.click("text=Recount now")
    await ui.page.wait_for_url("**/ui/jobs/*")
    await _wait_done(ui)
    await ui.goto("/ui/storage")
    table = ui.page.locator("table.repositories")
    ns_manifests, ns_blobs = 0, {}
    for repo, tags in ((repos[0], ["v1"]), (repos[1], ["v1", "v2"])):
        manifests, blobs = _stored(api, repo, tags, owner)
        expected = manifests + sum(blobs.values())
        assert api.api("GET", f"/usage/repositories/{repo}", ADMIN_AUTH, expect=200).json()["bytes"] == expected
        row = table.locator("tr", has=ui.page.locator("th", has_text=repo))
        assert await row.locator("td").first.inner_text() == size(expected)
        ns_manifests += manifests
        ns_blobs.update(blobs)
    # the namespace counts the config every image shares once
    expected = ns_manifests + sum(ns_blobs.values())
    assert api.api("GET", f"/usage/namespaces/{owner[0]}", ADMIN_AUTH, expect=200).json()["bytes"] == expected
    row = ui.page.locator("table.namespaces tr", has=ui.page.locator("th", has_text=owner[0]))
    assert await row.locator("td").first.inner_text() == size(expected)
    # a bar for each, drawn as SVG elements (no inline styles)
    assert await ui.page.locator("svg.bars text.bar-label", has_text=repos[0]).count() == 1
    assert await ui.page.locator("svg.bars rect.bar").count() >= 3
    assert await ui.page.locator("[style]").count() == 0
    await ui.shot("storage")


async def test_garbage_collection_dry_run_then_run(ui: UI, api: Client) -> None:
    owner = new_user(api)
    repo = f"{owner[0]}/gc{uuid.uuid4().hex[:6]}"
    api.api("POST", f"/repositories/{owner[0]}", owner, {"name": repo.split("/")[1]}, expect=201)
    push_image(api, repo, "keep", owner)
    push_image(api, repo, "gone", owner)
    kept = _stored(api, repo, ["keep"], owner)[1]
    manifest, blobs = _stored(api, repo, ["gone"], owner)
    garbage = manifest + sum(n for digest, n in blobs.items() if digest not in kept)
    ns, name = repo.split("/")
    api.api("DELETE", f"/repositories/{ns}/{name}/tags/gone", owner, expect=204)
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.goto("/ui/storage")
    # a bad grace period is refused beside its field, what was typed kept
    await ui.page.fill("#f-grace_period", "soon")
    await ui.page.click("button[value=dry-run]")
    assert await ui.page.locator("#grace_period-error").is_visible()
    assert await ui.page.input_value("#f-grace_period") == "soon"
    await ui.page.fill("#f-grace_period", "0s")
    await ui.page.click("button[value=dry-run]")
    await ui.page.wait_for_url("**/ui/jobs/*")
    dry_run = ui.page.url.rsplit("/", 1)[1]
    await expect(ui.page.locator("#log .line", has_text="dry run: would free")).to_have_count(1, timeout=WAIT_MS)
    await _wait_done(ui)
    result = api.api("GET", f"/jobs/{dry_run}", ADMIN_AUTH, expect=200).json()["result"]
    assert result["dry_run"] and result["bytes"] >= garbage > 0  # the config, shared with "keep", stays
    await expect(ui.page.locator("#gc-result")).to_contain_text(f"Would free {size(result['bytes'])}")
    await ui.shot("gc-dry-run")
    assert api.v2("GET", f"{repo}/tags/list", f"repository:{repo}:pull", owner).json()["tags"] == ["keep"]
    ui.watch.accept.add("Delete what this dry run found?")
    await ui.page.click("text=Run garbage collection")
    await ui.page.wait_for_url(lambda url: "/ui/jobs/" in url and not url.endswith(dry_run))
    run = ui.page.url.rsplit("/", 1)[1]
    await expect(ui.page.locator("#log .line", has_text="freed")).to_have_count(1, timeout=WAIT_MS)
    await _wait_done(ui)
    freed = api.api("GET", f"/jobs/{run}", ADMIN_AUTH, expect=200).json()
    assert freed["parameters"] == {"dry_run": False, "grace_period": "0s"}
    assert not freed["result"]["dry_run"] and freed["result"]["bytes"] >= result["bytes"] > 0
    await expect(ui.page.locator("#gc-result")).to_contain_text(f"Freed {size(freed['result']['bytes'])}")
    await ui.shot("gc-run")
    # the history lists both, newest first; the kept image still pulls
    await ui.goto("/ui/storage")
    history = ui.page.locator("table.gc-history tbody tr")
    assert "run" in await history.nth(0).inner_text() and f"Freed {size(freed['result']['bytes'])}" in \
        await history.nth(0).inner_text()
    assert "dry run" in await history.nth(1).inner_text()
    assert await ui.page.locator(f"table.gc-history a[href='/ui/jobs/{dry_run}']").count() == 1
    r = api.v2("GET", f"{repo}/manifests/keep", f"repository:{repo}:pull", owner, headers={"Accept": OCI_MANIFEST})
    assert r.status == 200

"""The image page in a real browser, on an image a real Docker engine built from a Dockerfile of
several instructions and pushed: its tags with platform and scan summary, its layers with those
exact instructions (a hostile LABEL and RUN line rendered inert), its labels and environment, the
components each layer adds and their vulnerabilities (scanned against a feed server's real
advisory), hiding one with a reason, and its SBOM downloaded."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD
from tests.clients.conftest import busybox, docker_engine  # noqa: F401  (a real dockerd, once per worker)
from tests.clients.engines import DockerEngine, rootfs_tar
from tests.scanning.service_data import FAST_JOBS
from tests.scanning.vulnfeeds import FeedServer, osv_zip
from tests.servers import DtrProcess
from tests.ui.conftest import UI, UI_AUTH

#: A real advisory of requests 2.19.1, as OSV publishes it.
REQUESTS_ADVISORY = {
    "id": "GHSA-x84v-xcm2-53pg", "aliases": ["CVE-2018-18074"], "modified": "2024-01-01T00:00:00Z",
    "summary": "Insufficiently Protected Credentials in Requests",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
    "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}]}]}
SITE = "/usr/lib/python3/dist-packages"
LABEL = "<script>alert('label')</script>"
RUN = "echo \"<img src=x onerror=alert('run')>\" > /x.txt"
DOCKERFILE = f"""FROM base:1
LABEL evil="{LABEL}" org.opencontainers.image.title="demo"
ENV GREETING=hello
COPY requests-2.19.1.dist-info {SITE}/requests-2.19.1.dist-info
RUN {RUN}
WORKDIR /app
CMD ["/bin/sh"]
"""


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        server.put("osv/PyPI/all.zip", osv_zip([REQUESTS_ADVISORY]))
        yield server


async def _wait_jobs(api: Client, ids: list[str], within: float = 120) -> None:
    """Wait for the jobs to end (the feed server answers from this event loop: never block it)."""
    deadline = time.monotonic() + within
    for job_id in ids:
        while True:
            job = (await asyncio.to_thread(api.api, "GET", f"/jobs/{job_id}", ADMIN_AUTH, None, 200)).json()
            if job["status"] in ("done", "error"):
                break
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.3)
        assert job["status"] == "done", job


def _build_and_push(docker: DockerEngine, busybox_bin: str, tmp: Path, ref: str) -> None:
    docker.import_image(rootfs_tar(tmp / "base", "base\n", busybox_bin), "base:1")
    context = tmp / "context"
    meta = context / "requests-2.19.1.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: requests\nVersion: 2.19.1\nLicense: Apache 2.0\n")
    (context / "Dockerfile").write_text(DOCKERFILE)
    docker.build(context, ref)
    docker.push(ref)


async def test_a_built_image_shows_its_dockerfile_layers_components_and_vulnerabilities(
        ui_factory: Callable[[str], Any], dtr_factory: Callable[..., DtrProcess], feeds: FeedServer,
        docker_engine: DockerEngine, busybox: str, tmp_path: Path) -> None:  # noqa: F811
    proc = dtr_factory({**UI_AUTH, "jobs": FAST_JOBS, "scanning": {"feeds": {
        "osv": f"{feeds.url}/osv", "osv_ecosystems": ["PyPI"], "debian": "", "alpine": "", "nvd": ""}}})
    api = Client(proc.url)
    api.api("POST", f"/repositories/{ADMIN}", ADMIN_AUTH, {"name": "demo"}, expect=201)
    ref = f"{proc.host}/{ADMIN}/demo:v1"
    rc, out = docker_engine.login(proc.host, *ADMIN_AUTH)
    assert rc == 0, out
    await asyncio.to_thread(_build_and_push, docker_engine, busybox, tmp_path, ref)
    update = api.api("POST", "/imagescan/scan/update", ADMIN_AUTH, expect=202).json()
    await _wait_jobs(api, [update["id"]])
    scans = api.api("POST", f"/imagescan/scan/{ADMIN}/demo/v1", ADMIN_AUTH, expect=202).json()
    await _wait_jobs(api, [j["id"] for j in scans["jobs"]])

    ui: UI = await ui_factory(proc.url)
    await ui.login(ADMIN, ADMIN_PASSWORD)
    await ui.goto(f"/ui/repositories/{ADMIN}/demo")
    row = ui.page.locator("#tags tbody tr", has_text="v1")
    assert await row.locator("td.platforms").inner_text() == "linux/amd64"
    assert await row.locator("td.scan").inner_text() == "1 critical"
    assert await row.locator("td.signed").inner_text() == "No"
    assert await row.locator("td.pulled").inner_text() == "never"
    await ui.shot("repository-tags")

    await row.locator("td.tag a").click()
    await ui.page.wait_for_url(f"**/ui/repositories/{ADMIN}/demo/tags/v1")
    instructions = await ui.page.locator("table.layers td.instruction").all_inner_texts()
    assert instructions[0] == "(not in the history)"  # the imported base layer
    assert instructions[1:3] == [f"LABEL evil={LABEL} org.opencontainers.image.title=demo", "ENV GREETING=hello"]
    assert re.fullmatch(rf"COPY dir:[0-9a-f]{{64}} in {SITE}/requests-2.19.1.dist-info", instructions[3]), instructions
    assert instructions[4:] == [f"RUN {RUN}", "WORKDIR /app", 'CMD ["/bin/sh"]']
    labels = dict(zip(await ui.page.locator("table.labels td:first-child").all_inner_texts(),
                      await ui.page.locator("table.labels td:nth-child(2)").all_inner_texts(), strict=True))
    assert labels == {"evil": LABEL, "org.opencontainers.image.title": "demo"}
    assert "GREETING=hello" in await ui.page.locator("ul.env").inner_text()
    # Nothing hostile ran: no dialog, and the markup is text.
    assert not ui.watch.dialogs and await ui.page.locator("table.layers img, table.labels script").count() == 0

    # The requests component is under the COPY layer, with its advisory (under its CVE).
    copy_row = ui.page.locator("table.layers tbody tr").nth(3)
    await copy_row.locator("summary").first.click()
    assert "requests 2.19.1" in await copy_row.locator(".component").inner_text()
    finding = copy_row.locator("table.vulns tbody tr", has_text="CVE-2018-18074")
    assert "critical" in await finding.inner_text() and "fixed in 2.20.0" in await finding.inner_text()
    await ui.shot("image")

    # Hide it: without a reason the error shows beside the field, the choice kept; then with one.
    await finding.locator("summary", has_text="Hide").click()
    await finding.locator("input[name=scope][value=repository]").check()
    await finding.locator("button[type=submit]").click()
    finding = ui.page.locator("table.vulns tbody tr", has_text="CVE-2018-18074")
    assert "Reason is required" in await finding.locator(".field-error").inner_text()
    assert await finding.locator("input[name=scope][value=repository]").is_checked()
    await finding.locator("input[name=reason]").fill("not reachable: no credentials are sent")
    await finding.locator("button[type=submit]").click()
    await ui.page.wait_for_url("**/tags/v1?hidden=CVE-2018-18074")
    assert "Hidden: not reachable" in str(await ui.page.locator("table.vulns tbody tr").first.text_content())
    assert "1 hidden" in await ui.page.locator(".scan-line").inner_text()

    async with ui.page.expect_download() as info:
        await ui.page.click("text=SPDX")
    download = await info.value
    sbom = json.loads(await asyncio.to_thread(Path(await download.path()).read_text))
    assert sbom["spdxVersion"] == "SPDX-2.3"
    assert any(p["name"] == "requests" and p["versionInfo"] == "2.19.1" for p in sbom["packages"])

"""The scanner end to end on real images: pushed with skopeo to a real ``dtr serve``, scanned through
``/api/v0/imagescan`` by its own job worker, the vulnerability database updated from a feed server
speaking the feeds' real formats (the Debian tracker's JSON with this machine's changelog facts,
OSV ``all.zip`` files with real PyPI and npm advisories), and the images re-matched; the results
checked against what the package managers themselves say (tests/scanning/images.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.clients.engines import APT, Skopeo
from tests.scanning import images
from tests.scanning.images import BuiltImage, BuiltIndex
from tests.scanning.service_data import FAST_JOBS
from tests.scanning.vulnfeeds import FeedServer, changelog_facts, debian_tracker_json, osv_zip
from tests.servers import DtrProcess, require_binary

#: Real advisories of the app image's pip and npm packages, as OSV publishes them (ids, aliases,
#: affected ranges and fixed versions as in the GitHub advisory database).
OSV_PYPI = [
    {"id": "GHSA-x84v-xcm2-53pg", "aliases": ["CVE-2018-18074"], "modified": "2024-01-01T00:00:00Z",
     "summary": "Insufficiently Protected Credentials in Requests",
     "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
     "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                   "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}]}]},
    {"id": "GHSA-mh33-7rrq-662w", "aliases": ["CVE-2019-11324"], "modified": "2024-01-01T00:00:00Z",
     "summary": "Improper Certificate Validation in urllib3",
     "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
     "affected": [{"package": {"ecosystem": "PyPI", "name": "urllib3"},
                   "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.24.2"}]}]}]},
]
OSV_NPM = [
    {"id": "GHSA-p6mc-m468-83gw", "aliases": ["CVE-2020-8203"], "modified": "2024-01-01T00:00:00Z",
     "summary": "Prototype Pollution in lodash",
     "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:H/A:H"}],
     "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                   "ranges": [{"type": "SEMVER", "events": [{"introduced": "3.7.0"}, {"fixed": "4.17.19"}]}]}]},
    {"id": "GHSA-vh95-rmgr-6w4m", "aliases": ["CVE-2020-7598"], "modified": "2024-01-01T00:00:00Z",
     "summary": "Prototype Pollution in minimist",
     "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:L"}],
     "affected": [{"package": {"ecosystem": "npm", "name": "minimist"},
                   "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.2.1"}]},
                              {"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.2.3"}]}]}]},
]
#: A CVE Debian leaves open in bookworm (coreutils' chroot --userspec), in the tracker's shape.
OPEN_IN_BOOKWORM = {"coreutils": {"CVE-2016-2781": {
    "description": "chroot in GNU coreutils, when used with --userspec, allows local users to escape to the "
                   "parent session via a crafted TIOCSTI ioctl call", "scope": "local",
    "releases": {"bookworm": {"status": "open", "repositories": {"bookworm": "9.1-1"}, "urgency": "low"}}}}}


@pytest.fixture(scope="module")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    return Skopeo(tmp_path_factory.mktemp("skopeo"), require_binary("skopeo", f"{APT} skopeo"))


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        server.put("debian/tracker.json", debian_tracker_json(changelog_facts(), extra=OPEN_IN_BOOKWORM))
        server.put("osv/PyPI/all.zip", osv_zip(OSV_PYPI))
        server.put("osv/npm/all.zip", osv_zip(OSV_NPM))
        yield server


async def _api(http: aiohttp.ClientSession, proc: DtrProcess, method: str, path: str, expect: int = 200) -> Any:
    async with http.request(method, f"{proc.url}/api/v0{path}") as r:
        body = await r.text()
        assert r.status == expect, (method, path, r.status, body)
        return json.loads(body) if body else None


async def _finish(http: aiohttp.ClientSession, proc: DtrProcess, job_ids: list[str], within: float = 180) -> None:
    deadline = time.monotonic() + within
    for job_id in job_ids:
        while True:
            job = await _api(http, proc, "GET", f"/jobs/{job_id}")
            if job["status"] in ("done", "error", "cancel", "worker_dead"):
                assert job["status"] == "done", job
                break
            assert time.monotonic() < deadline, f"job {job} did not end within {within}s"
            await asyncio.sleep(0.3)


async def _idle(http: aiohttp.ClientSession, proc: DtrProcess, action: str, within: float = 120) -> None:
    """Wait until no ``action`` job is waiting or running."""
    deadline = time.monotonic() + within
    while (await _api(http, proc, "GET", f"/jobs?action={action}&status=waiting,running"))["jobs"]:
        assert time.monotonic() < deadline, f"{action} jobs still queued after {within}s"
        await asyncio.sleep(0.3)


def _components(result: dict[str, Any]) -> dict[tuple[str, str, str], tuple[int, dict[str, Any]]]:
    """(ecosystem, name, version) -> (layer index, component) of a detailed result."""
    return {(c["ecosystem"], c["component"], c["version"]): (i, c)
            for i, layer in enumerate(result["layer_details"]) for c in layer["components"]}


async def test_real_images_scanned_matched_and_rematched(
        dtr_factory: Any, skopeo: Skopeo, feeds: FeedServer, http: aiohttp.ClientSession) -> None:
    app: BuiltImage = images.debian_app_image()
    multi: BuiltIndex = images.multiarch_index()
    proc = dtr_factory({"jobs": FAST_JOBS, "scanning": {"feeds": {
        "osv": f"{feeds.url}/osv", "osv_ecosystems": ["PyPI", "npm"], "debian": f"{feeds.url}/debian/tracker.json",
        "alpine": "", "nvd": ""}}})
    await asyncio.to_thread(images.push, skopeo, app, f"{proc.host}/e2e/app:v1")
    await asyncio.to_thread(images.push, skopeo, multi, f"{proc.host}/e2e/multi:v1")

    # Scanned before any vulnerability database exists: the software is known, nothing matched.
    answers = [await _api(http, proc, "POST", f"/imagescan/scan{path}", expect=202)
               for path in ("/e2e/app/v1", "/e2e/multi/v1")]
    queued = [j["id"] for a in answers for j in a["jobs"]]
    assert len(queued) == 3, answers  # the app image, and each platform of the index
    await _finish(http, proc, queued)
    result = await _api(http, proc, "GET", "/imagescan/repositories/e2e/app/v1?detailed=true")
    assert result["last_scan_status"] == 6 and (result["critical"], result["major"], result["minor"]) == (0, 0, 0)
    found = _components(result)

    truth = app.truth
    assert sorted((n, v) for (e, n, v) in found if e == "deb") == sorted((n, v) for n, v, *_ in truth["deb"])
    owned = {(n, v) for n, v, _ in truth["pypi_owned"]}
    assert sorted((n, v) for (e, n, v) in found if e == "pypi") == sorted(
        (n, v) for n, v, _ in truth["pypi"] if (n, v) not in owned)
    assert sorted((n, v) for (e, n, v) in found if e == "npm") == sorted((n, v) for n, v, _ in truth["npm"])
    # Each component under the layer that brought it: pip's packages in pip's layer.
    pip_layer = next(i for i, t in enumerate(app.layer_truth) if any(p[0] == "requests" for p in t.get("pypi", [])))
    assert found[("pypi", "requests", "2.19.1")][0] == pip_layer

    for platform, image, kind in (("linux/amd64", multi.platforms["linux/amd64"], "deb"),
                                  ("linux/arm64", multi.platforms["linux/arm64"], "apk")):
        got = await _api(http, proc, "GET", f"/imagescan/repositories/e2e/multi/v1/{platform}?detailed=true")
        assert got["last_scan_status"] == 6 and got["architecture"] == platform.split("/")[1]
        names = sorted((n, v) for (e, n, v) in _components(got) if e == kind)
        assert names == sorted((row[0], row[1]) for row in image.truth[kind])

    # The database arrives: only the images it touches are re-matched, from their rows.
    job = await _api(http, proc, "POST", "/imagescan/scan/update", expect=202)
    await _finish(http, proc, [job["id"]])
    await _idle(http, proc, "rematch")
    status = await _api(http, proc, "GET", "/imagescan/status")
    assert not status["lastDBUpdateFailed"], status

    result = await _api(http, proc, "GET", "/imagescan/repositories/e2e/app/v1?detailed=true")
    found = _components(result)
    findings = {(name, f["vuln"]["cve"]): f for (_, name, _), (_, c) in found.items() for f in c["vulns"]}
    assert findings[("requests", "CVE-2018-18074")]["fixed_version"] == "2.20.0"
    assert findings[("urllib3", "CVE-2019-11324")]["fixed_version"] == "1.24.2"
    assert findings[("lodash", "CVE-2020-8203")]["fixed_version"] == "4.17.19"
    assert ("minimist", "CVE-2020-7598") in findings
    open_cve = findings[("coreutils", "CVE-2016-2781")]
    assert open_cve["fix_state"] == "not_fixed" and open_cve["severity"] == "low" and open_cve["band"] == "minor"
    # Debian's own fixes (this machine's changelogs) are older than the image's versions: no finding.
    assert not [k for k, f in findings.items() if f["fix_state"] == "fixed" and k[0] not in
                ("requests", "urllib3", "lodash", "minimist")], findings.keys()
    assert result["critical"] + result["major"] + result["minor"] == len(findings)

    # "Which of my images has CVE-2020-8203": the app image, not the index's.
    summary = await _api(http, proc, "GET", "/imagescan/scansummary/cve/CVE-2020-8203")
    assert {(i["namespace"], i["reponame"]) for i in summary["images"]} == {("e2e", "app")}
    # The Alpine platform matched nothing: no Alpine feed is configured.
    arm = await _api(http, proc, "GET", "/imagescan/repositories/e2e/multi/v1/linux/arm64")
    assert (arm["critical"], arm["major"], arm["minor"]) == (0, 0, 0)

    sbom = await _api(http, proc, "GET", "/imagescan/sbom/e2e/app/v1?format=cyclonedx")
    purls = {c.get("purl", "") for c in sbom["components"]}
    assert "pkg:pypi/requests@2.19.1" in purls and "pkg:npm/lodash@4.17.15" in purls
    assert {v["id"] for v in sbom["vulnerabilities"]} >= {"CVE-2020-8203", "CVE-2018-18074", "CVE-2016-2781"}

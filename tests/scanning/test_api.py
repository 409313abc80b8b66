"""``/api/v0/imagescan`` over HTTP on the in-process app (auth on, real Postgres): results in DTR's
shapes, multi-platform tags, the summaries (by repository, CVE, component, layer, license) showing
only what the caller may read, CSV, overrides (hidden findings counted apart, audited), scans and
database updates queued, the database's status, an offline bundle refused, scanOnPush, OpenAPI.
The scan results are rows of this machine's real packages (``api_world``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from sqlalchemy import select

from dtr.scanning.results import images
from tests.auth.constants import auth_config
from tests.oci import push_image
from tests.scanning.api_world import LOG4SHELL, LOG4SHELL_CVE, Client, World, build


@pytest.fixture
def app_extra(tmp_path: Path) -> dict[str, Any]:
    """Auth on; no job runner (queued jobs stay waiting); a trusted bundle key."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    pem = tmp_path / "trusted.pem"
    pem.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return {**auth_config(), "jobs": {"worker": False}, "scanning": {"bundle_trusted_keys": [str(pem)]}}


@pytest.fixture
async def world(app_client: Client, app_base: str) -> World:
    return await build(app_client, app_base)


def _counts(w: World, digest: str) -> dict[str, int]:
    """The counts of the findings written for ``digest`` (no override)."""
    out = {"critical": 0, "major": 0, "minor": 0, "hidden": 0}
    for d, _, _, band in w.findings:
        if d == digest:
            out[band] += 1
    return out


async def test_an_image_result_in_dtr_shapes(world: World) -> None:
    _, summary, _ = await world.call("GET", "/imagescan/repositories/acme/app/v1")
    assert {k: summary[k] for k in ("critical", "major", "minor", "hidden")} == _counts(world, world.digests["v1"])
    assert summary["critical"] >= 2 and summary["major"] >= 2 and summary["minor"] >= 2
    assert (summary["namespace"], summary["reponame"], summary["tag"]) == ("acme", "app", "v1")
    assert summary["digest"] == world.digests["v1"] and summary["index_digest"] is None
    assert summary["last_scan_status"] == 6 and summary["check_completed_at"] == "2026-03-01T12:00:00Z"
    assert summary["should_rescan"] is False and summary["has_foreign_layers"] is False
    assert summary["distribution"].startswith("Debian GNU/Linux")
    assert "layer_details" not in summary

    _, detailed, _ = await world.call("GET", "/imagescan/repositories/acme/app/v1?detailed=true")
    layers = detailed["layer_details"]
    assert [x["digest"] for x in layers] == [world.layers[n] for n in ("base", "python", "java")]
    assert all(x["sha256sum"] == x["digest"].removeprefix("sha256:") for x in layers)
    debs = {c["component"]: c for c in layers[0]["components"]}
    assert len(debs) > 50 and all(c["ecosystem"] == "deb" for c in debs.values())
    assert debs["base-files"]["purl"].startswith("pkg:deb/debian/base-files@")
    assert "distro=debian-12" in debs["base-files"]["purl"]
    assert debs["base-files"]["fullpath"] == ["var/lib/dpkg/status"]
    log4j = layers[2]["components"][0]
    assert log4j["component"] == "org.apache.logging.log4j:log4j-core" and log4j["version"] == "2.14.1"
    assert log4j["purl"] == "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
    assert log4j["license"] == {"name": "Apache-2.0", "type": "spdx", "url": "https://spdx.org/licenses/Apache-2.0.html"}
    [vuln] = log4j["vulns"]
    assert vuln["vuln"] == {"id": LOG4SHELL, "cve": LOG4SHELL_CVE, "cvss": 10.0,
                            "summary": "Remote code injection in Log4j"}
    assert (vuln["fix_state"], vuln["fixed_version"], vuln["band"], vuln["hidden"]) == ("fixed", "2.15.0", "critical",
                                                                                        False)
    requests = next(c for c in layers[1]["components"] if c["component"] == "requests")
    assert requests["ecosystem"] == "pypi" and requests["purl"].startswith("pkg:pypi/requests@")
    assert requests["vulns"][0]["fix_state"] == "will_not_fix"
    listed = sum(len(c["vulns"]) for x in layers for c in x["components"])
    assert listed == sum(1 for d, *_ in world.findings if d == world.digests["v1"])


async def test_a_multi_platform_tag_and_missing_things(world: World) -> None:
    _, default, _ = await world.call("GET", "/imagescan/repositories/acme/app/multi")
    assert (default["digest"], default["index_digest"]) == (world.digests["amd64"], world.index_digest)
    assert (default["os"], default["architecture"]) == ("linux", "amd64")
    _, arm, _ = await world.call("GET", "/imagescan/repositories/acme/app/multi/linux/arm64?detailed=true")
    assert arm["digest"] == world.digests["arm64"] and arm["critical"] == 0
    assert [c["component"] for c in arm["layer_details"][0]["components"]] == ["base-files"]
    _, by_digest, _ = await world.call("GET", f"/imagescan/repositories/acme/app/{world.digests['v1']}")
    assert by_digest["critical"] == _counts(world, world.digests["v1"])["critical"]
    for path, code in (("/imagescan/repositories/acme/app/multi/linux/s390x", "NOT_FOUND"),
                       ("/imagescan/repositories/acme/app/nope", "NO_SUCH_TAG"),
                       ("/imagescan/repositories/acme/nope/v1", "NO_SUCH_REPOSITORY")):
        _, err, _ = await world.call("GET", path, expect=404)
        assert world.error(err) == code, path
    _, unscanned, _ = await world.call("GET", "/imagescan/repositories/acme/app/new")
    assert unscanned["last_scan_status"] == 1 and unscanned["should_rescan"] is True
    assert unscanned["check_completed_at"] is None


async def test_who_may_do_what(world: World) -> None:
    result = "/imagescan/repositories/acme/app/v1"
    _, err, headers = await world.call("GET", result, who="anonymous", expect=401)
    assert world.error(err) == "UNAUTHORIZED" and "WWW-Authenticate" in headers
    _, err, _ = await world.call("GET", result, who="carol", expect=404)
    assert world.error(err) == "NO_SUCH_REPOSITORY"
    await world.call("GET", result, who="alice")
    # read-only: no scans, no overrides
    _, err, _ = await world.call("POST", "/imagescan/scan/acme/app/v1", who="alice", expect=403)
    assert world.error(err) == "FORBIDDEN"
    override = {"vulnId": LOG4SHELL_CVE, "scope": "acme/app", "reason": "not reachable"}
    await world.call("POST", "/imagescan/overrides", who="alice", body=override, expect=403)
    await world.call("POST", "/imagescan/overrides", who="bob", body=override, expect=403)
    await world.call("POST", "/imagescan/overrides", who="carol", body=override, expect=404)
    # read-write queues scans: each platform of an index, or one
    _, queued, _ = await world.call("POST", "/imagescan/scan/acme/app/v1", who="bob", expect=202)
    assert queued["jobs"] and all("id" in j for j in queued["jobs"])
    await world.call("POST", "/imagescan/scan/acme/app/multi/linux/arm64", who="bob", expect=202)
    _, err, _ = await world.call("POST", "/imagescan/scan/acme/app/nope", who="bob", expect=404)
    assert world.error(err) == "NO_SUCH_TAG"
    await world.call("POST", "/imagescan/scan/acme/app/v1", who="carol", expect=404)
    # the database: site admins
    for method, path in (("GET", "/imagescan/status"), ("POST", "/imagescan/scan/update")):
        await world.call(method, path, who="dave", expect=403)
        await world.call(method, path, who="anonymous", expect=401)
    # every search needs a user
    for path in ("/imagescan/scansummary/cve/CVE-2021-44228", "/imagescan/scansummary/component/bash",
                 "/imagescan/scansummary/license/MIT", f"/imagescan/scansummary/layer/{world.layers['base']}",
                 "/imagescan/scansummary/repositories/acme/app", "/imagescan/overrides"):
        await world.call("GET", path, who="anonymous", expect=401)


async def test_repository_summary_pages_through_tags(world: World) -> None:
    _, page, headers = await world.call("GET", "/imagescan/scansummary/repositories/acme/app?pageSize=2")
    assert [(i["tag"], i["architecture"]) for i in page["images"]] == [("amd64", "amd64"), ("arm64", "arm64")]
    _, rest, _ = await world.call("GET", "/imagescan/scansummary/repositories/acme/app?pageStart="
                                  + headers["X-Next-Page-Start"])
    tags = [(i["tag"], i["digest"]) for i in rest["images"]]
    assert tags == [("multi", world.digests["amd64"]), ("multi", world.digests["arm64"]),
                    ("new", world.digests["unscanned"]), ("v1", world.digests["v1"])]
    v1 = rest["images"][-1]
    assert {k: v1[k] for k in ("critical", "major", "minor", "hidden")} == _counts(world, world.digests["v1"])
    assert rest["images"][2]["last_scan_status"] == 1
    await world.call("GET", "/imagescan/scansummary/repositories/acme/app", who="carol", expect=404)


async def test_which_of_my_images_has_a_cve(world: World) -> None:
    path = f"/imagescan/scansummary/cve/{LOG4SHELL_CVE.lower()}"  # the alias, in any case
    _, admin, _ = await world.call("GET", path)
    assert sorted((i["namespace"] + "/" + i["reponame"], i["digest"]) for i in admin["images"]) == sorted(
        [("acme/app", world.digests["v1"]), ("acme/other", world.digests["other"])])
    app = next(i for i in admin["images"] if i["reponame"] == "app")
    assert app["tags"] == ["v1"] and app["last_scan_status"] == 6
    assert app["components"] == [{"component": "org.apache.logging.log4j:log4j-core", "version": "2.14.1",
                                  "ecosystem": "maven", "purl": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
                                  "layer": world.layers["java"], "license": "Apache-2.0", "fix_state": "fixed",
                                  "fixed_version": "2.15.0", "band": "critical", "hidden": False}]
    _, alice, _ = await world.call("GET", path, who="alice")
    assert [i["reponame"] for i in alice["images"]] == ["app"]
    _, erin, _ = await world.call("GET", path, who="erin")
    assert [i["reponame"] for i in erin["images"]] == ["other"]
    _, carol, _ = await world.call("GET", path, who="carol")
    assert carol["images"] == []
    _, paged, headers = await world.call("GET", path + "?pageSize=1")
    _, second, _ = await world.call("GET", f"{path}?pageSize=1&pageStart={headers['X-Next-Page-Start']}")
    assert [i["reponame"] for i in paged["images"] + second["images"]] == ["app", "other"]
    deb_cve = next(v for d, n, v, b in world.findings if b == "minor")
    _, found, _ = await world.call("GET", f"/imagescan/scansummary/cve/{deb_cve}")
    assert sorted(i["digest"] for i in found["images"]) == sorted(
        {d for d, _, v, _ in world.findings if v == deb_cve})


async def test_where_is_a_component_and_a_license_and_a_layer(world: World) -> None:
    _, found, _ = await world.call("GET", "/imagescan/scansummary/component/log4j-core?version=2.14")
    assert sorted(i["reponame"] for i in found["images"]) == ["app", "other"]
    assert found["images"][0]["components"][0]["version"] == "2.14.1"
    _, none, _ = await world.call("GET", "/imagescan/scansummary/component/log4j-core?version=2.15")
    assert none["images"] == []
    _, bash, _ = await world.call("GET", "/imagescan/scansummary/component/BASH", who="alice")
    assert sorted(i["digest"] for i in bash["images"]) == sorted([world.digests["v1"], world.digests["amd64"]])
    _, lic, _ = await world.call("GET", "/imagescan/scansummary/license/apache-2.0")
    assert {c["component"] for i in lic["images"] for c in i["components"]} >= {"org.apache.logging.log4j:log4j-core"}
    hexdigest = world.layers["java"].removeprefix("sha256:")
    _, layer, _ = await world.call("GET", f"/imagescan/scansummary/layer/{hexdigest}", who="erin")
    assert layer["digest"] == world.layers["java"] and layer["status"] == "indexed"
    assert [c["component"] for c in layer["components"]] == ["org.apache.logging.log4j:log4j-core"]
    assert [i["reponame"] for i in layer["images"]] == ["other"]
    _, err, _ = await world.call("GET", f"/imagescan/scansummary/layer/{hexdigest}", who="carol", expect=404)
    assert world.error(err) == "NOT_FOUND"


async def test_csv_export(world: World) -> None:
    _, text, headers = await world.call("GET", "/imagescan/repositories/acme/app/v1",
                                        headers={"Accept": "text/csv"})
    assert headers["Content-Type"].startswith("text/csv") and "attachment" in headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == sum(1 for d, *_ in world.findings if d == world.digests["v1"])
    log4j = next(r for r in rows if r["vulnerability"] == LOG4SHELL)
    assert (log4j["component"], log4j["version"], log4j["band"], log4j["fixed_version"], log4j["hidden"]) == (
        "org.apache.logging.log4j:log4j-core", "2.14.1", "critical", "2.15.0", "false")
    assert log4j["layer"] == world.layers["java"] and log4j["cvss"] == "10.0"


async def _stored(world: World, digest: str) -> dict[str, int]:
    async with world.engine.connect() as conn:
        row = (await conn.execute(select(images).where(images.c.digest == digest))).one()
    return {"critical": row.critical, "major": row.major, "minor": row.minor, "hidden": row.hidden}


async def test_overrides_hide_and_count_apart(world: World) -> None:
    v1, other = world.digests["v1"], world.digests["other"]
    before = _counts(world, v1)
    _, made, _ = await world.call("POST", "/imagescan/overrides", who="dave", expect=201, body={
        "vulnId": LOG4SHELL_CVE, "scope": "acme/app", "digest": v1, "reason": "JNDI lookups are disabled"})
    assert (made["vulnId"], made["scope"], made["digest"], made["actor"]) == (LOG4SHELL_CVE, "acme/app", v1, "dave")
    _, after, _ = await world.call("GET", "/imagescan/repositories/acme/app/v1?detailed=true", who="alice")
    assert after["critical"] == before["critical"] - 1 and after["hidden"] == 1
    [vuln] = after["layer_details"][2]["components"][0]["vulns"]
    assert vuln["hidden"] is True and vuln["override_reason"] == "JNDI lookups are disabled"
    assert vuln["override_id"] == made["id"]
    assert await _stored(world, v1) == {**before, "critical": before["critical"] - 1, "hidden": 1}
    assert await _stored(world, other) == _counts(world, other)  # another image, untouched
    _, found, _ = await world.call("GET", f"/imagescan/scansummary/cve/{LOG4SHELL}")
    assert {i["reponame"]: i["components"][0]["hidden"] for i in found["images"]} == {"app": True, "other": False}
    _, text, _ = await world.call("GET", "/imagescan/repositories/acme/app/v1", headers={"Accept": "text/csv"})
    row = next(r for r in csv.DictReader(io.StringIO(text)) if r["vulnerability"] == LOG4SHELL)
    assert (row["hidden"], row["override_reason"]) == ("true", "JNDI lookups are disabled")

    # a namespace-wide override of one component (by its source package) hides it in both repositories
    _, deb_name, deb_vuln, _ = next(f for f in world.findings if f[3] == "minor")
    await world.call("POST", "/imagescan/overrides", who="dave", expect=403,
                     body={"vulnId": deb_vuln, "scope": "acme", "reason": "no"})
    _, ns, _ = await world.call("POST", "/imagescan/overrides", expect=201, body={
        "vulnId": deb_vuln, "scope": "acme", "component": deb_name, "reason": "not used in containers"})
    assert (await _stored(world, other))["hidden"] == sum(1 for d, _, v, _ in world.findings
                                                           if d == other and v == deb_vuln)
    await world.call("POST", "/imagescan/overrides", who="dave", expect=403,
                     body={"vulnId": deb_vuln, "scope": "", "reason": "everywhere"})
    await world.call("POST", "/imagescan/overrides", who="dave", expect=404,
                     body={"vulnId": deb_vuln, "scope": "acme/other", "reason": "not dave's"})
    _, err, _ = await world.call("POST", "/imagescan/overrides", who="dave", expect=400,
                                 body={"vulnId": deb_vuln, "scope": "acme/app", "reason": ""})
    assert world.error(err) == "INVALID_PARAMETER"

    _, listed, _ = await world.call("GET", "/imagescan/overrides?repository=acme/app", who="alice")
    assert [o["id"] for o in listed["overrides"]] == [made["id"], ns["id"]]
    _, one, _ = await world.call("GET", "/imagescan/overrides?repository=acme/app&vulnId=" + LOG4SHELL_CVE.lower(),
                                 who="alice")
    assert [o["id"] for o in one["overrides"]] == [made["id"]]
    await world.call("GET", "/imagescan/overrides", who="alice", expect=403)
    await world.call("GET", f"/imagescan/overrides/{made['id']}", who="carol", expect=404)
    await world.call("DELETE", f"/imagescan/overrides/{made['id']}", who="alice", expect=403)
    await world.call("DELETE", f"/imagescan/overrides/{made['id']}", who="dave", expect=204)
    await world.call("DELETE", f"/imagescan/overrides/{ns['id']}", expect=204)
    await world.call("GET", f"/imagescan/overrides/{made['id']}", expect=404)
    assert await _stored(world, v1) == before
    assert await _stored(world, other) == _counts(world, other)

    _, events, _ = await world.call("GET", "/events?type=scan_override_create")
    assert [(e["actor"], e["object"]["name"]) for e in events["events"]] == [("admin", "acme"), ("dave", "acme/app")]
    assert events["events"][1]["detail"]["reason"] == "JNDI lookups are disabled"
    _, events, _ = await world.call("GET", "/events?type=scan_override_delete")
    assert len(events["events"]) == 2


async def test_database_status_update_and_an_offline_bundle_refused(world: World, tmp_path: Path) -> None:
    _, status, _ = await world.call("GET", "/imagescan/status")
    assert status["dbVersion"] == 1 and status["lastDBUpdateFailed"] is False
    assert status["lastDBUpdate"] == "2026-03-01T12:00:00Z" and status["feeds"][0]["name"] == "osv-debian"
    _, job, _ = await world.call("POST", "/imagescan/scan/update", expect=202)
    assert job["id"] and job["status"] == "waiting"

    garbage = b"PK\x03\x04 this is not a bundle " * 1000
    for who, expect in (("alice", 403), ("admin", 400)):
        form = aiohttp.FormData()
        form.add_field("upload", garbage, filename="vulndb.tar", content_type="application/octet-stream")
        async with world.client.put("/api/v0/imagescan/scan/update?online=false", data=form,
                                    headers=world.auth(who)) as r:
            assert r.status == expect, await r.text()
            if expect == 400:
                assert (await r.json())["errors"][0]["code"] == "INVALID_BUNDLE"
    spool = tmp_path / "app" / "data" / "scanning" / "uploads"
    assert spool.is_dir() and list(spool.iterdir()) == []  # the spooled upload is gone
    async with world.client.put("/api/v0/imagescan/scan/update?online=false", data=b"raw",
                                headers={**world.auth("admin"), "Content-Type": "application/octet-stream"}) as r:
        assert r.status == 415
    form = aiohttp.FormData()
    form.add_field("other", b"x", filename="x")
    async with world.client.put("/api/v0/imagescan/scan/update?online=false", data=form,
                                headers=world.auth("admin")) as r:
        assert r.status == 400 and "upload" in (await r.json())["errors"][0]["message"]
    await world.call("PUT", "/imagescan/scan/update", expect=400)  # online: POST


async def test_scan_on_push_setting(world: World) -> None:
    _, repo, _ = await world.call("GET", "/repositories/acme/app")
    assert repo["scanOnPush"] is False
    _, repo, _ = await world.call("PATCH", "/repositories/acme/app", who="dave", body={"scanOnPush": True})
    assert repo["scanOnPush"] is True
    _, repo, _ = await world.call("PATCH", "/repositories/acme/app", who="dave", body={"shortDescription": "x"})
    assert repo["scanOnPush"] is True
    await world.call("PATCH", "/repositories/acme/app", who="bob", body={"scanOnPush": False}, expect=403)
    _, made, _ = await world.call("POST", "/repositories/acme", expect=201,
                                  body={"name": "scanned", "scanOnPush": True})
    assert made["scanOnPush"] is True


@pytest.mark.parametrize("app_extra", [{"scanning": {"scan_on_push": True}}])
async def test_scan_on_push_defaults_from_the_config(app_client: Client, app_base: str) -> None:
    await push_image(app_client.session, app_base, "acme/pushed", "v1", b"{}", [b"layer"])
    async with app_client.get("/api/v0/repositories/acme/pushed") as r:
        assert (await r.json())["scanOnPush"] is True
    async with app_client.patch("/api/v0/repositories/acme/pushed", json={"visibility": "public"}) as r:
        assert (await r.json())["scanOnPush"] is True
    async with app_client.patch("/api/v0/repositories/acme/pushed", json={"scanOnPush": False}) as r:
        assert (await r.json())["scanOnPush"] is False


async def test_every_imagescan_operation_is_in_the_openapi_document(world: World) -> None:
    _, doc, _ = await world.call("GET", "/docs.json")
    validate(doc, cls=OpenAPIV31SpecValidator)
    paths = {p.removeprefix("/api/v0"): set(ops) for p, ops in doc["paths"].items()
             if p.startswith("/api/v0/imagescan")}
    assert paths == {
        "/imagescan/status": {"get"}, "/imagescan/scan/update": {"post", "put"},
        "/imagescan/scan/{namespace}/{repo}/{tag}": {"post"},
        "/imagescan/scan/{namespace}/{repo}/{tag}/{os}/{arch}": {"post"},
        "/imagescan/repositories/{namespace}/{repo}/{tag}": {"get"},
        "/imagescan/repositories/{namespace}/{repo}/{tag}/{os}/{arch}": {"get"},
        "/imagescan/scansummary/repositories/{namespace}/{repo}": {"get"},
        "/imagescan/scansummary/cve/{cve}": {"get"}, "/imagescan/scansummary/component/{component}": {"get"},
        "/imagescan/scansummary/layer/{layerid}": {"get"}, "/imagescan/scansummary/license/{license}": {"get"},
        "/imagescan/sbom/{namespace}/{repo}/{tag}": {"get", "post"},
        "/imagescan/sbom/{namespace}/{repo}/{tag}/{os}/{arch}": {"get", "post"},
        "/imagescan/overrides": {"get", "post"}, "/imagescan/overrides/{id}": {"get", "delete"},
    }
    result = doc["paths"]["/api/v0/imagescan/repositories/{namespace}/{repo}/{tag}"]["get"]["responses"]["200"]
    assert set(result["content"]) == {"application/json", "text/csv"}
    repo = doc["components"]["schemas"]["Repository"]
    assert "scanOnPush" in repo["properties"]

"""SBOMs of scanned images over ``/api/v0/imagescan/sbom``: SPDX 2.3 JSON valid against the official
SPDX 2.3 JSON schema and by spdx-tools' own validator, CycloneDX 1.6 JSON valid against the
official schema (as ``cyclonedx-python-lib`` ships it); package URLs that packageurl-python parses
back to the package; the layer of each component; overrides as CycloneDX VEX. The image holds
this machine's real packages (``api_world``); purls of every ecosystem checked on their own."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from packageurl import PackageURL
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from dtr.scanning import exports, reports, sbom
from dtr.scanning.purl import image_url, package_url
from dtr.scanning.results import Component, Image, Vuln
from dtr.scanning.types import Distribution
from tests.auth.constants import auth_config
from tests.oci import OCI_EMPTY, OCI_MANIFEST
from tests.scanning.api_world import LOG4SHELL, LOG4SHELL_CVE, Client, World, build, token

SPDX_SCHEMA = Path(__file__).parent / "data" / "spdx-2.3.schema.json"


@pytest.fixture
def app_extra() -> dict[str, Any]:
    return {**auth_config(), "jobs": {"worker": False}}


@pytest.fixture
async def world(app_client: Client, app_base: str) -> World:
    return await build(app_client, app_base)


def _errors(validator: Any, doc: dict[str, Any]) -> Iterator[str]:
    for e in validator.iter_errors(doc):
        yield f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"


def spdx_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(SPDX_SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema, format_checker=jsonschema.Draft201909Validator.FORMAT_CHECKER)
    found = list(_errors(validator, doc))
    document = JsonLikeDictParser().parse(doc)
    found += [m.validation_message for m in validate_full_spdx_document(document, "SPDX-2.3")]
    return found


def cyclonedx_errors(doc: dict[str, Any]) -> list[str]:
    """Against ``bom-1.6.schema.json`` and the schemas it refers to, as cyclonedx-python-lib ships them."""
    res = resources.files("cyclonedx.schema") / "_res"
    registry: Registry[Any] = Registry()
    schema: dict[str, Any] = {}
    for name in ("bom-1.6.SNAPSHOT.schema.json", "spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json",
                 "cryptography-defs.SNAPSHOT.schema.json"):
        content = json.loads((res / name).read_text())
        resource = Resource.from_contents(content, default_specification=DRAFT7)
        registry = registry.with_resource(f"http://cyclonedx.org/schema/{name}", resource)
        if content.get("$id"):
            registry = registry.with_resource(content["$id"], resource)
        if name.startswith("bom-"):
            schema = content
    validator = jsonschema.Draft7Validator(schema, registry=registry,
                                           format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return list(_errors(validator, doc))


async def test_spdx_document_is_valid_and_complete(world: World) -> None:
    _, doc, _ = await world.call("GET", "/imagescan/sbom/acme/app/v1?format=spdx", who="alice")
    assert spdx_errors(doc) == []
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["name"] == "acme/app:v1"
    packages = {p["SPDXID"]: p for p in doc["packages"]}
    image = packages["SPDXRef-Image"]
    assert image["primaryPackagePurpose"] == "CONTAINER" and image["versionInfo"] == world.digests["v1"]
    assert PackageURL.from_string(image["externalRefs"][0]["referenceLocator"]).version == world.digests["v1"]
    assert packages["SPDXRef-OperatingSystem"]["name"] == "debian"
    comps = [p for p in doc["packages"] if p["SPDXID"].startswith("SPDXRef-Package-")]
    _, detailed, _ = await world.call("GET", "/imagescan/repositories/acme/app/v1?detailed=true")
    expected = {(c["component"], c["version"]) for x in detailed["layer_details"] for c in x["components"]}
    assert {(p["name"], p["versionInfo"]) for p in comps} == expected
    for p in comps:
        purl = PackageURL.from_string(p["externalRefs"][0]["referenceLocator"])
        assert purl.version == p["versionInfo"], p
        assert "introduced by layer sha256:" in p["comment"]
    bash = next(p for p in comps if p["name"] == "bash")
    assert world.layers["base"] in bash["comment"] and "var/lib/dpkg/status" in bash["comment"]
    log4j = next(p for p in comps if p["name"].endswith("log4j-core"))
    assert log4j["licenseDeclared"] == "Apache-2.0" and world.layers["java"] in log4j["comment"]
    contained = {r["relatedSpdxElement"] for r in doc["relationships"] if r["relationshipType"] == "CONTAINS"}
    assert contained == {p["SPDXID"] for p in comps} | {"SPDXRef-OperatingSystem"}


async def test_cyclonedx_bom_is_valid_with_layers_and_vex(world: World) -> None:
    _, made, _ = await world.call("POST", "/imagescan/overrides", who="dave", expect=201, body={
        "vulnId": LOG4SHELL_CVE, "scope": "acme/app", "reason": "JNDI lookups are disabled by configuration"})
    _, bom, _ = await world.call("GET", "/imagescan/sbom/acme/app/v1?format=cyclonedx", who="alice")
    assert cyclonedx_errors(bom) == []
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.6")
    image = bom["metadata"]["component"]
    assert image["type"] == "container" and image["name"] == "acme/app" and image["version"] == "v1"
    libs = [c for c in bom["components"] if c["type"] == "library"]
    for c in libs:
        props = {p["name"]: p["value"] for p in c["properties"]}
        assert props["dtr:layer:digest"] in world.layers.values() and props["dtr:layer:index"] in ("0", "1", "2")
        purl = PackageURL.from_string(c["purl"])
        name = re.sub(r"[-_.]+", "-", c["name"]).lower() if purl.type == "pypi" else c["name"]
        assert purl.version == c["version"] and purl.name == name, c
    log4j = next(c for c in libs if c["name"] == "log4j-core")
    assert log4j["group"] == "org.apache.logging.log4j" and log4j["licenses"] == [{"expression": "Apache-2.0"}]
    assert {p["name"]: p["value"] for p in log4j["properties"]}["dtr:layer:digest"] == world.layers["java"]
    requests = next(c for c in libs if c["name"] == "requests")
    assert PackageURL.from_string(requests["purl"]).type == "pypi"
    vulns = {v["id"]: v for v in bom["vulnerabilities"]}
    assert len(bom["vulnerabilities"]) == sum(1 for d, *_ in world.findings if d == world.digests["v1"])
    shell = vulns[LOG4SHELL]
    assert shell["analysis"] == {"state": "not_affected", "detail": "JNDI lookups are disabled by configuration"}
    assert shell["affects"] == [{"ref": log4j["bom-ref"]}] and shell["ratings"][0]["score"] == 10.0
    assert shell["ratings"][0]["method"] == "CVSSv31" and shell["recommendation"].endswith("2.15.0")
    assert shell["references"] == [{"id": LOG4SHELL_CVE, "source": {"name": "CVE"}}]
    assert vulns["CVE-2023-32681"]["analysis"] == {"response": ["will_not_fix"],
                                                   "detail": "the vendor will not fix this"}
    assert all("analysis" not in v for k, v in vulns.items() if k not in (LOG4SHELL, "CVE-2023-32681"))
    await world.call("DELETE", f"/imagescan/overrides/{made['id']}", who="dave", expect=204)
    _, bom, _ = await world.call("GET", "/imagescan/sbom/acme/app/v1?format=cyclonedx")
    assert "analysis" not in {v["id"]: v for v in bom["vulnerabilities"]}[LOG4SHELL]


async def test_sbom_of_a_platform_and_of_nothing(world: World) -> None:
    _, doc, _ = await world.call("GET", "/imagescan/sbom/acme/app/multi/linux/arm64?format=cyclonedx")
    assert cyclonedx_errors(doc) == []
    assert [c["name"] for c in doc["components"] if c["type"] == "library"] == ["base-files"]
    assert "arch=arm64" in doc["components"][1]["purl"] and "vulnerabilities" not in doc
    _, spdx, _ = await world.call("GET", "/imagescan/sbom/acme/app/multi")  # spdx, linux/amd64
    assert spdx_errors(spdx) == [] and spdx["packages"][0]["versionInfo"] == world.digests["amd64"]
    _, err, _ = await world.call("GET", "/imagescan/sbom/acme/app/new", expect=404)
    assert world.error(err) == "NOT_FOUND" and "not been scanned" in err["errors"][0]["message"]
    await world.call("GET", "/imagescan/sbom/acme/app/v1", who="carol", expect=404)
    _, err, _ = await world.call("GET", "/imagescan/sbom/acme/app/v1?format=xml", expect=400)
    assert world.error(err) == "INVALID_PARAMETER"


def test_package_urls_of_every_ecosystem_parse_back() -> None:
    debian = Distribution("debian", "12", "bookworm")
    alpine = Distribution("alpine", "3.19.1")
    rhel = Distribution("rhel", "9.3")
    cases = [
        (("deb", "libssl3", "3.0.11-1~deb12u2", "amd64", debian),
         ("deb", "debian", "libssl3", "3.0.11-1~deb12u2", {"arch": "amd64", "distro": "debian-12"})),
        (("apk", "musl", "1.2.4-r2", "x86_64", alpine),
         ("apk", "alpine", "musl", "1.2.4-r2", {"arch": "x86_64", "distro": "alpine-3.19.1"})),
        (("rpm", "openssl-libs", "1:3.0.7-25.el9_3", "x86_64", rhel),
         ("rpm", "redhat", "openssl-libs", "3.0.7-25.el9_3", {"arch": "x86_64", "distro": "rhel-9.3", "epoch": "1"})),
        (("pypi", "Jinja2", "2.10", "", None), ("pypi", None, "jinja2", "2.10", {})),
        (("pypi", "typing_extensions", "4.9.0", "", None), ("pypi", None, "typing-extensions", "4.9.0", {})),
        (("npm", "@babel/core", "7.23.0", "", None), ("npm", "@babel", "core", "7.23.0", {})),
        (("npm", "lodash", "4.17.15", "", None), ("npm", None, "lodash", "4.17.15", {})),
        (("maven", "org.apache.logging.log4j:log4j-core", "2.14.1", "", None),
         ("maven", "org.apache.logging.log4j", "log4j-core", "2.14.1", {})),
        (("gem", "rack", "2.2.3", "", None), ("gem", None, "rack", "2.2.3", {})),
        (("golang", "github.com/gin-gonic/gin", "v1.9.1", "", None),
         ("golang", "github.com/gin-gonic", "gin", "v1.9.1", {})),
        (("golang", "golang.org/x/net", "v0.17.0", "", None), ("golang", "golang.org/x", "net", "v0.17.0", {})),
        (("cargo", "serde", "1.0.193", "", None), ("cargo", None, "serde", "1.0.193", {})),
    ]
    for (eco, name, version, arch, dist), want in cases:
        made = package_url(eco, name, version, arch=arch, distribution=dist)
        parsed = PackageURL.from_string(made)
        assert (parsed.type, parsed.namespace, parsed.name, parsed.version, parsed.qualifiers or {}) == want, made
    oci = PackageURL.from_string(image_url("acme/app", "sha256:" + "a" * 64, registry="reg.example:5000", tag="v1",
                                           arch="amd64"))
    assert (oci.type, oci.name, oci.version) == ("oci", "app", "sha256:" + "a" * 64)
    assert oci.qualifiers == {"arch": "amd64", "repository_url": "reg.example:5000/acme/app", "tag": "v1"}


def test_declared_licenses_free_text_and_expressions() -> None:
    """Free text stays as the package said it (an SPDX LicenseRef with its text; a CycloneDX
    license name); an SPDX expression is normalised; both documents stay valid."""
    comps = [Component(i, eco, name, "1.0", "", "", "amd64", lic, "var/lib/dpkg/status", "sha256:" + "b" * 64, 0,
                       package_url(eco, name, "1.0", arch="amd64"), ())
             for i, (eco, name, lic) in enumerate((("deb", "bash", "GPL-3+"), ("pypi", "six", "MIT"),
                                                   ("npm", "@types/node", "MIT OR Apache-2.0"),
                                                   ("deb", "zlib1g", "GPL-2.0+"), ("gem", "rack", "")), 1)]
    subject = sbom.Subject("acme/app", "v1", "sha256:" + "c" * 64, "linux", "amd64",
                           Distribution("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)"),
                           "reg.example", dt.datetime(2026, 1, 2, tzinfo=dt.UTC), "0.1.0")
    spdx = sbom.spdx(subject, comps)
    assert spdx_errors(spdx) == []
    declared = {p["name"]: p["licenseDeclared"] for p in spdx["packages"]}
    assert declared == {"acme/app": "NOASSERTION", "debian": "NOASSERTION", "bash": "LicenseRef-1", "six": "MIT",
                        "@types/node": "MIT OR Apache-2.0", "zlib1g": "GPL-2.0-or-later", "rack": "NOASSERTION"}
    assert spdx["hasExtractedLicensingInfos"] == [{"licenseId": "LicenseRef-1", "name": "GPL-3+",
                                                   "extractedText": "GPL-3+"}]
    bom = sbom.cyclonedx(subject, comps)
    assert cyclonedx_errors(bom) == []
    licenses = {c["name"]: c.get("licenses") for c in bom["components"]}
    assert licenses["bash"] == [{"license": {"name": "GPL-3+"}}]
    assert licenses["node"] == [{"expression": "MIT OR Apache-2.0"}] and licenses["rack"] is None
    assert {c["name"]: c.get("group") for c in bom["components"]}["node"] == "@types"


def test_csv_cells_are_never_formulas() -> None:
    comp = Component(1, "npm", "=HYPERLINK(\"http://x\")", "1.0", "", "", "", "", "", "sha256:" + "d" * 64, 0,
                     "pkg:npm/x@1.0", (Vuln("CVE-2024-1", "fixed", "1.1", "major", "", 5.0, "", "-1+1", (), None),))
    image = Image("acme/app", 1, "v1", "sha256:" + "e" * 64, None, "linux", "amd64", ())
    report = reports.ImageReport(image, None, [comp], {})
    [row] = list(csv.DictReader(io.StringIO(exports.result_csv(report))))
    assert row["component"] == "'=HYPERLINK(\"http://x\")" and row["summary"] == "'-1+1"


async def test_an_sbom_attached_to_its_image_is_found_by_referrers(world: World) -> None:
    path = "/imagescan/sbom/acme/app/v1?format=cyclonedx"
    await world.call("POST", path, who="alice", expect=403)
    await world.call("POST", path, who="carol", expect=404)
    _, made, _ = await world.call("POST", path, who="bob", expect=201)
    v1 = world.digests["v1"]
    assert (made["subject"], made["artifactType"]) == (v1, "application/vnd.cyclonedx+json")
    _, spdx, _ = await world.call("POST", "/imagescan/sbom/acme/app/v1", who="bob", expect=201)
    headers = await token(world.client, world.base, "acme/app")
    async with world.client.session.get(f"{world.base}/v2/acme/app/referrers/{v1}", headers=headers) as r:
        assert r.status == 200, await r.text()
        listed = {m["digest"]: m["artifactType"] for m in (await r.json())["manifests"]}
    assert listed == {made["digest"]: "application/vnd.cyclonedx+json", spdx["digest"]: "application/spdx+json"}
    async with world.client.session.get(f"{world.base}/v2/acme/app/manifests/{made['digest']}",
                                        headers={**headers, "Accept": OCI_MANIFEST}) as r:
        manifest = await r.json()
    assert manifest["subject"]["digest"] == v1 and manifest["config"]["mediaType"] == OCI_EMPTY
    async with world.client.session.get(f"{world.base}/v2/acme/app/blobs/{manifest['layers'][0]['digest']}",
                                        headers=headers) as r:
        bom = json.loads(await r.read())
    assert cyclonedx_errors(bom) == [] and bom["metadata"]["component"]["version"] == "v1"


def test_a_license_the_expression_library_chokes_on_is_free_text() -> None:
    """license-expression raises its own AttributeError on some invalid keys ('MIT/X11', as Debian
    copyright files write it): kept as the package's free text, never a 500 (found end to end)."""
    from dtr.scanning import licenses

    lic = licenses.parse("MIT/X11")
    assert (lic.declared, lic.expression, lic.kind) == ("MIT/X11", "", "text")

"""A registry with scan results, for the /api/v0/imagescan tests (``test_api``, ``test_sbom``).

Made through the API where the API can make it (accounts, an organisation, teams and grants,
repositories; images pushed over /v2), and as rows where the scanner would write them: the layers'
packages are this machine's real ones (its dpkg database and ``/etc/os-release``, the PyPI
packages installed in the test venv), and the findings name real CVEs from the Debian changelogs
on this machine, plus Log4Shell (as its GHSA, with the CVE as alias) in a log4j-core 2.14.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import gzip
import importlib.metadata
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any, cast

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.keys import DATABASE
from dtr.scanning import models
from tests.auth.client import basic
from tests.auth.constants import ADMIN_AUTH, PASSWORD
from tests.oci import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    dumps,
    push_blob,
    put_manifest,
)

Client = TestClient[web.Request, web.Application]
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
LOG4SHELL = "GHSA-jfh8-c2jp-5v3q"
LOG4SHELL_CVE = "CVE-2021-44228"

# -- real content of this machine -----------------------------------------------------------------


def os_release() -> dict[str, str]:
    out = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip().strip('"')
    return {"id": out.get("id", ""), "version_id": out.get("version_id", ""),
            "version_codename": out.get("version_codename", ""), "pretty_name": out.get("pretty_name", ""),
            "source": "etc/os-release"}


def dpkg_packages() -> list[dict[str, str]]:
    """The installed packages of this machine's dpkg database, as the dpkg indexer reads them."""
    out = []
    for stanza in Path("/var/lib/dpkg/status").read_text(errors="replace").split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        if "Package" not in fields or "install ok installed" not in fields.get("Status", ""):
            continue
        source, _, rest = fields.get("Source", "").partition(" ")
        out.append({"name": fields["Package"], "version": fields["Version"], "source_name": source,
                    "source_version": rest.strip("()") if rest else "", "arch": fields.get("Architecture", "")})
    return out


def changelog_cves(source: str, binary: str) -> list[str]:
    """CVEs the Debian changelog of an installed package mentions, first first."""
    for name in (binary, source):
        path = Path(f"/usr/share/doc/{name}/changelog.Debian.gz")
        if path.is_file():
            text = gzip.decompress(path.read_bytes()).decode(errors="replace")
            return list(dict.fromkeys(re.findall(r"CVE-\d{4}-\d{4,}", text)))
    return []


def pypi_packages(names: tuple[str, ...] = ("requests", "urllib3", "jinja2")) -> list[dict[str, str]]:
    """Installed PyPI packages of the test venv: name, version, license, METADATA path."""
    out = []
    for name in names:
        d = importlib.metadata.distribution(name)
        meta = d.metadata
        lic = meta.get("License-Expression") or meta.get("License") or ""
        where = f"usr/lib/python3/dist-packages/{d.metadata['Name']}-{d.version}.dist-info/METADATA"
        out.append({"name": meta["Name"], "version": d.version, "license": lic if len(lic) < 100 else "",
                    "location": where})
    return out


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclasses.dataclass(frozen=True)
class Contents:
    """The layers' files and what the indexers would find in them."""

    dist: dict[str, str]
    debs: list[dict[str, str]]
    pypi: list[dict[str, str]]
    base_layer: bytes
    py_layer: bytes
    java_layer: bytes
    arm_layer: bytes

    @classmethod
    def of_this_machine(cls) -> Contents:
        os_release_file = Path("/etc/os-release").read_bytes()
        pypi = pypi_packages()
        pom = b"groupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n"
        return cls(
            os_release(), dpkg_packages(), pypi,
            tar_of({"etc/os-release": os_release_file,
                    "var/lib/dpkg/status": Path("/var/lib/dpkg/status").read_bytes()}),
            tar_of({p["location"]: importlib.metadata.distribution(p["name"]).read_text("METADATA").encode()
                    for p in pypi}),
            tar_of({"app/lib/log4j-core-2.14.1.jar/META-INF/maven/org.apache.logging.log4j/log4j-core/"
                    "pom.properties": pom}),
            tar_of({"etc/os-release": os_release_file, "var/lib/dpkg/status.d/base": b""}))


# -- the world ------------------------------------------------------------------------------------


@dataclasses.dataclass
class World:
    client: Client
    base: str
    #: name -> (user, password) of: admin, alice (read-only on acme/app), bob (read-write),
    #: dave (admin of acme/app), carol (nothing), erin (read-only on acme/other only).
    users: dict[str, tuple[str, str]]
    #: Image manifest digests: ``v1`` (acme/app:v1, one platform), ``amd64``/``arm64`` (acme/app:multi),
    #: ``other`` (acme/other:v1), ``unscanned`` (acme/app:new).
    digests: dict[str, str]
    index_digest: str
    layers: dict[str, str]
    #: The findings written: (image digest, package name, vuln id, band).
    findings: list[tuple[str, str, str, str]]
    engine: AsyncEngine

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": basic(*self.users[who])} if who != "anonymous" else {}

    async def call(self, method: str, path: str, who: str = "admin", expect: int | None = 200,
                   body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        h = {**self.auth(who), **(headers or {})}
        async with self.client.request(method, f"/api/v0{path}", json=body, headers=h) as r:
            raw = await r.read()
            if expect is not None:
                assert r.status == expect, f"{method} {path} as {who}: {r.status} {raw[:500]!r}"
            ctype = r.headers.get("Content-Type", "")
            data = json.loads(raw) if raw and ctype.startswith("application/json") else raw.decode()
            return r.status, data, dict(r.headers)

    def error(self, answer: Any) -> str:
        return str(answer["errors"][0]["code"])


async def _api(client: Client, method: str, path: str, body: Any, expect: tuple[int, ...] = (200, 201, 204)) -> Any:
    async with client.request(method, f"/api/v0{path}", json=body, headers={"Authorization": basic(*ADMIN_AUTH)}) as r:
        assert r.status in expect, f"{method} {path}: {r.status} {await r.text()}"
        return await r.json() if r.status != 204 else None


async def token(client: Client, base: str, repo: str) -> dict[str, str]:
    async with client.session.get(f"{base}/auth/token", params={"scope": f"repository:{repo}:push,pull"},
                                  headers={"Authorization": basic(*ADMIN_AUTH)}) as r:
        assert r.status == 200, await r.text()
        return {"Authorization": f"Bearer {(await r.json())['token']}"}


async def _push(base: str, headers: dict[str, str], repo: str, ref: str, config: bytes, layers: list[bytes],
                platform: dict[str, str] | None = None) -> tuple[str, bytes]:
    async with aiohttp.ClientSession(headers=headers) as http:
        for blob in (config, *layers):
            await push_blob(http, base, repo, blob)
        body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                      "layers": [descriptor(OCI_LAYER, x) for x in layers]})
        status, info = await put_manifest(http, base, repo, ref, body)
        assert status == 201, info
    return digest_of(body), body


async def _push_index(base: str, headers: dict[str, str], repo: str, ref: str,
                      children: list[tuple[bytes, dict[str, str]]]) -> str:
    body = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        descriptor(OCI_MANIFEST, c, platform=p) for c, p in children]})
    async with aiohttp.ClientSession(headers=headers) as http:
        status, info = await put_manifest(http, base, repo, ref, body, OCI_INDEX)
        assert status == 201, info
    return digest_of(body)


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


async def build(client: Client, base: str) -> World:
    users = {"admin": ADMIN_AUTH}
    for name in ("alice", "bob", "carol", "dave", "erin"):
        await _api(client, "POST", "/accounts", {"name": name, "password": PASSWORD})
        users[name] = (name, PASSWORD)
    await _api(client, "POST", "/accounts", {"name": "acme", "isOrg": True})
    for repo in ("app", "other"):
        await _api(client, "POST", "/repositories/acme", {"name": repo, "visibility": "private"})
    for team, member, repo, level in (("readers", "alice", "app", "read-only"), ("writers", "bob", "app", "read-write"),
                                      ("admins", "dave", "app", "admin"), ("others", "erin", "other", "read-only")):
        await _api(client, "POST", "/accounts/acme/teams", {"name": team})
        await _api(client, "PUT", f"/accounts/acme/teams/{team}/members/{member}", {})
        await _api(client, "PUT", f"/repositories/acme/{repo}/teamAccess/{team}", {"accessLevel": level})

    c = await asyncio.to_thread(Contents.of_this_machine)
    dist, debs, pypi = c.dist, c.debs, c.pypi
    base_layer, py_layer, java_layer, arm_layer = c.base_layer, c.py_layer, c.java_layer, c.arm_layer
    layers = {"base": digest_of(base_layer), "python": digest_of(py_layer), "java": digest_of(java_layer),
              "arm": digest_of(arm_layer)}

    app_token, other_token = await token(client, base, "acme/app"), await token(client, base, "acme/other")
    config = dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    arm_config = dumps({"architecture": "arm64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    v1, _ = await _push(base, app_token, "acme/app", "v1", config, [base_layer, py_layer, java_layer])
    amd64, amd64_body = await _push(base, app_token, "acme/app", "amd64", config, [base_layer, py_layer])
    arm64, arm64_body = await _push(base, app_token, "acme/app", "arm64", arm_config, [arm_layer])
    index = await _push_index(base, app_token, "acme/app", "multi",
                              [(amd64_body, {"os": "linux", "architecture": "amd64"}),
                               (arm64_body, {"os": "linux", "architecture": "arm64", "variant": "v8"})])
    new, _ = await _push(base, app_token, "acme/app", "new", dumps({"os": "linux", "n": 1}), [arm_layer])
    other, _ = await _push(base, other_token, "acme/other", "v1", config, [base_layer, java_layer])
    digests = {"v1": v1, "amd64": amd64, "arm64": arm64, "other": other, "unscanned": new}

    engine = client.app[DATABASE].engine
    namespace = f"{dist['id']}:{dist['version_id']}"
    found: list[tuple[str, str, str, str]] = []
    async with engine.begin() as conn:
        for key, digest in layers.items():
            await conn.execute(insert(_table(models.ScanLayer)).values(
                digest=digest, indexer_version=1, status="indexed", distribution=dist if key in ("base", "arm") else
                None, files=2, size=len(base_layer), package_dbs=["var/lib/dpkg/status"] if key == "base" else []))
        #: Per layer: each package row's (name, id); by_name: the first id of each name.
        pkg_ids: dict[str, list[tuple[str, int]]] = {}
        by_name: dict[str, dict[str, int]] = {}

        async def add(layer: str, ecosystem: str, rows: list[dict[str, str]], location: str = "") -> None:
            made = (await conn.execute(insert(_table(models.ScanPackage)).returning(
                _table(models.ScanPackage).c.id, _table(models.ScanPackage).c.name), [
                {"layer_digest": layers[layer], "ecosystem": ecosystem, "location": r.get("location", location),
                 **{k: v for k, v in r.items() if k != "location"}} for r in rows])).all()
            pkg_ids.setdefault(layer, []).extend((m.name, m.id) for m in made)
            for m in made:
                by_name.setdefault(layer, {}).setdefault(m.name, m.id)

        await add("base", "deb", debs, "var/lib/dpkg/status")
        await add("python", "pypi", pypi)
        await add("java", "maven", [{"name": "org.apache.logging.log4j:log4j-core", "version": "2.14.1",
                                     "license": "Apache-2.0",
                                     "location": "app/lib/log4j-core-2.14.1.jar"}])
        await add("arm", "deb", [{"name": "base-files", "version": next(d["version"] for d in debs
                                                                           if d["name"] == "base-files"),
                                  "arch": "arm64"}], "var/lib/dpkg/status.d/base")

        # Findings: the first CVEs the changelogs of three packages name (a band each), Log4Shell,
        # and one for requests.
        picked: list[tuple[dict[str, str], list[str]]] = []
        seen: set[str] = set()
        for d in debs:
            if (d["source_name"] or d["name"]) in seen or d["name"] not in by_name["base"]:
                continue
            cves = [c for c in changelog_cves(d["source_name"] or d["name"], d["name"]) if c not in seen][:2]
            if len(cves) == 2:
                picked.append((d, cves))
                seen.update([*cves, d["source_name"] or d["name"]])
            if len(picked) == 3:
                break
        assert len(picked) == 3, "this machine's changelogs name too few CVEs"
        bands = [("critical", 9.8, "high"), ("major", 5.5, "medium"), ("minor", 3.1, "low")]
        vulns: list[dict[str, Any]] = []
        image_vulns: dict[str, list[dict[str, Any]]] = {"base": [], "python": [], "java": []}
        for (d, cves), (band, score, severity) in zip(picked, bands, strict=True):
            for cve in cves:
                vulns.append({"id": cve, "summary": f"{cve} in {d['source_name'] or d['name']}",
                              "cvss_score": score, "cvss_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                              "aliases": []})
                image_vulns["base"].append({"package_id": by_name["base"][d["name"]], "vuln_id": cve,
                                            "state": "fixed", "fixed_version": d["version"] + "+deb1",
                                            "band": band, "severity": severity, "cvss_score": score,
                                            "name": d["name"]})
        vulns.append({"id": LOG4SHELL, "summary": "Remote code injection in Log4j", "cvss_score": 10.0,
                      "cvss_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "aliases": [LOG4SHELL_CVE]})
        image_vulns["java"].append({"package_id": by_name["java"]["org.apache.logging.log4j:log4j-core"],
                                    "vuln_id": LOG4SHELL, "state": "fixed", "fixed_version": "2.15.0",
                                    "band": "critical", "severity": "critical", "cvss_score": 10.0,
                                    "name": "org.apache.logging.log4j:log4j-core"})
        vulns.append({"id": "CVE-2023-32681", "summary": "Unintended leak of Proxy-Authorization header in requests",
                      "cvss_score": 6.1, "cvss_vector": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N",
                      "aliases": []})
        image_vulns["python"].append({"package_id": by_name["python"]["requests"], "vuln_id": "CVE-2023-32681",
                                      "state": "will_not_fix", "fixed_version": "", "band": "major",
                                      "severity": "medium", "cvss_score": 6.1, "name": "requests"})
        await conn.execute(insert(_table(models.Vulnerability)), vulns)

        images_layers = {v1: ["base", "python", "java"], amd64: ["base", "python"], arm64: ["arm"],
                         other: ["base", "java"]}
        for digest, names in images_layers.items():
            arch = "arm64" if names == ["arm"] else "amd64"
            mine = [v for n in names for v in image_vulns.get(n, [])]
            await conn.execute(insert(_table(models.ScanImage)).values(
                digest=digest, status=6, layers=[layers[n] for n in names], os="linux", architecture=arch,
                distribution=dist, feed_versions={"osv-debian": 1}, scanned_at=NOW, check_completed_at=NOW,
                **{b: sum(1 for v in mine if v["band"] == b) for b in ("critical", "major", "minor")}))
            await conn.execute(insert(_table(models.ScanImagePackage)), [
                {"image_digest": digest, "package_id": pid, "layer_digest": layers[n], "layer_index": i,
                 "namespace": namespace if n in ("base", "arm") else {"python": "pypi", "java": "maven"}[n],
                 "match_name": name, "match_version": ""}
                for i, n in enumerate(names) for name, pid in pkg_ids[n]])
            if mine:
                await conn.execute(insert(_table(models.ScanImageVuln)), [
                    {"image_digest": digest, **{k: v for k, v in f.items() if k != "name"}} for f in mine])
                found += [(digest, f["name"], f["vuln_id"], f["band"]) for f in mine]
        await conn.execute(insert(_table(models.VulnFeed)).values(
            name="osv-debian", url="https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip", version=1,
            records=len(vulns), updated_at=NOW, checked_at=NOW))
    return World(client, base, users, digests, index, layers, found, engine)

"""Vulnerability feeds in their real formats, built from real advisories, and a feed server.

The advisories are this machine's: every ``/usr/share/doc/*/changelog.Debian.gz`` names the CVEs
each upload of a source package fixed (``changelog_facts()``: source package, CVE, the version that
fixed it, the changelog's line about it). From them:

- ``debian_tracker_json(facts)``: the Debian security tracker's JSON (``/tracker/data/json``);
- ``osv_debian_records(facts)`` and ``osv_zip(records)``: OSV's ``Debian/all.zip``;
- ``alpine_secdb(facts)``: an Alpine secdb file (``v3.N/main.json``);
- ``nvd_items(facts)``: CVE API 2.0 ``vulnerabilities[]`` entries (CVSS vectors from a fixed set
  of real ones, assigned per CVE);

and ``FeedServer``: a local aiohttp server on 127.0.0.1 serving files with ETag/Last-Modified and
304s, NVD's paged API, failing on demand (HTTP 500, a truncated body, a malformed document) and
counting requests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import gzip
import hashlib
import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "scanning"

#: Real CVSS vectors with their base scores (FIRST's calculators; NVD publishes these pairs).
CVSS3_VECTORS = [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H", 5.5),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
    ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
    ("CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
]
CVSS2_VECTORS = [
    ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
    ("AV:N/AC:L/Au:N/C:P/I:N/A:N", 5.0),
    ("AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3),
    ("AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0),
    ("AV:L/AC:L/Au:N/C:C/I:C/A:C", 7.2),
]


@dataclasses.dataclass(frozen=True)
class Fact:
    """A source package's changelog saying an upload fixed a CVE."""

    source: str
    version: str
    cve: str
    #: The changelog's text about it (the bullet naming the CVE).
    text: str
    #: The upload's urgency (``low``, ``medium``, ``high``...).
    urgency: str


_HEADER = re.compile(r"^(\S+) \(([^)\s]+)\) [^;]+;.*?\burgency=(\w+)", re.IGNORECASE)
_CVE = re.compile(r"CVE-\d{4}-\d{4,}")


def parse_changelog(text: str) -> list[Fact]:
    """The (source, CVE) facts of one changelog: each CVE once, at the oldest entry naming it; only
    entries of the source package the newest entry names (older ones may be of a renamed source)."""
    facts: dict[str, Fact] = {}
    source = version = urgency = current = ""
    bullet: list[str] = []

    def flush() -> None:
        if not bullet or not source or source != current:
            return
        line = " ".join(s.strip() for s in bullet)
        for cve in _CVE.findall(line):
            facts[cve] = Fact(source, version, cve, line.lstrip("*+- ").strip(), urgency.lower())

    for raw in text.splitlines():
        m = _HEADER.match(raw)
        if m:
            flush()
            bullet = []
            source, version, urgency = m.group(1), m.group(2), m.group(3)
            current = current or source
        elif raw.startswith(" -- "):
            flush()
            bullet = []
        elif re.match(r"^\s+[*+-] ", raw):
            flush()
            bullet = [raw]
        elif bullet and raw.strip():
            bullet.append(raw)
        else:
            flush()
            bullet = []
    flush()
    # The changelog runs newest first: later assignments above are the older entries, kept.
    return sorted(facts.values(), key=lambda f: f.cve)


def changelog_facts() -> list[Fact]:
    """Every (source package, CVE, fixed version) this machine's Debian changelogs state, one
    changelog per source package; cached in ``.cache/scanning/changelog-facts.json``."""
    cache = CACHE / "changelog-facts.json"
    paths = sorted(Path("/usr/share/doc").glob("*/changelog.Debian.gz"))
    stamp = hashlib.sha256("\n".join(f"{p}:{p.stat().st_mtime_ns}" for p in paths).encode()).hexdigest()
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("stamp") == stamp:
            return [Fact(**f) for f in cached["facts"]]
    by_source: dict[str, list[Fact]] = {}
    for path in paths:
        try:
            text = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        except (OSError, EOFError):
            continue
        facts = parse_changelog(text)
        if facts and facts[0].source not in by_source:
            by_source[facts[0].source] = facts
    facts = sorted((f for fs in by_source.values() for f in fs), key=lambda f: (f.source, f.cve))
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{id(facts)}.tmp")
    tmp.write_text(json.dumps({"stamp": stamp, "facts": [dataclasses.asdict(f) for f in facts]}))
    tmp.replace(cache)
    return facts


def _urgency(f: Fact) -> str:
    return f.urgency if f.urgency in ("low", "medium", "high") else "not yet assigned"


def debian_tracker(facts: Iterable[Fact], release: str = "bookworm") -> dict[str, Any]:
    """The tracker document (decoded): each fact resolved in ``release`` at its version."""
    doc: dict[str, Any] = {}
    for f in facts:
        doc.setdefault(f.source, {})[f.cve] = {
            "description": f.text, "scope": "remote",
            "releases": {release: {"status": "resolved", "repositories": {release: f.version},
                                   "fixed_version": f.version, "urgency": _urgency(f)}}}
    return doc


def debian_tracker_json(facts: Iterable[Fact], release: str = "bookworm",
                        extra: dict[str, Any] | None = None) -> bytes:
    """The tracker's JSON for ``facts`` (plus ``extra`` source entries merged in)."""
    doc = debian_tracker(facts, release)
    for source, vulns in (extra or {}).items():
        doc.setdefault(source, {}).update(vulns)
    return json.dumps(doc, indent=None).encode()


def osv_debian_records(facts: Iterable[Fact], release: str = "12") -> list[dict[str, Any]]:
    """OSV records as OSV publishes Debian's (``DEBIAN-CVE-...``, ``upstream`` the CVE), one per CVE."""
    records: dict[str, dict[str, Any]] = {}
    for f in facts:
        record = records.setdefault(f.cve, {
            "schema_version": "1.6.0", "id": f"DEBIAN-{f.cve}", "modified": "2025-01-01T00:00:00Z",
            "published": "2024-01-01T00:00:00Z", "upstream": [f.cve], "details": f.text, "affected": []})
        record["affected"].append({
            "package": {"ecosystem": f"Debian:{release}", "name": f.source,
                        "purl": f"pkg:deb/debian/{f.source}?arch=source"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": f.version}]}],
            "ecosystem_specific": {"urgency": _urgency(f)}})
    return list(records.values())


def osv_zip(records: Iterable[dict[str, Any]]) -> bytes:
    """An OSV ``all.zip``: one ``<id>.json`` entry per record."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for r in records:
            z.writestr(f"{r['id']}.json", json.dumps(r))
    return out.getvalue()


def alpine_version(debian_version: str) -> str:
    """A Debian version as an apk one: the upstream part (no epoch, no revision) and ``-r0``."""
    upstream = debian_version.split(":", 1)[-1].rsplit("-", 1)[0]
    return re.sub(r"[~+].*$", "", upstream) + "-r0"


def alpine_secdb(facts: Iterable[Fact], distroversion: str = "v3.19", reponame: str = "main",
                 not_affected: Sequence[tuple[str, str]] = ()) -> bytes:
    """A secdb file: each fact fixed in ``alpine_version(version)``; ``not_affected`` (origin, CVE)
    pairs under the version ``"0"``."""
    packages: dict[str, dict[str, list[str]]] = {}
    for f in facts:
        packages.setdefault(f.source, {}).setdefault(alpine_version(f.version), []).append(f.cve)
    for origin, cve in not_affected:
        packages.setdefault(origin, {}).setdefault("0", []).append(cve)
    doc = {"apkurl": "{{urlprefix}}/{{distroversion}}/{{reponame}}/{{arch}}/{{pkg.name}}-{{pkg.ver}}.apk",
           "archs": ["aarch64", "x86_64"], "reponame": reponame, "urlprefix": "https://dl-cdn.alpinelinux.org/alpine",
           "distroversion": distroversion,
           "packages": [{"pkg": {"name": name, "secfixes": secfixes}} for name, secfixes in sorted(packages.items())]}
    return json.dumps(doc, indent=2).encode()


def nvd_items(facts: Iterable[Fact], modified: str = "2025-01-01T00:00:00.000") -> list[dict[str, Any]]:
    """CVE API 2.0 ``vulnerabilities[]`` entries, one per CVE: the changelog text as description,
    a v3 vector for most, a v2 one for every fifth (as NVD has for older CVEs)."""
    items: dict[str, dict[str, Any]] = {}
    for f in facts:
        if f.cve in items:
            continue
        n = int(hashlib.sha256(f.cve.encode()).hexdigest()[:8], 16)
        if n % 5 == 0:
            vector, score = CVSS2_VECTORS[n % len(CVSS2_VECTORS)]
            metrics = {"cvssMetricV2": [{"source": "nvd@nist.gov", "type": "Primary",
                                         "cvssData": {"version": "2.0", "vectorString": vector, "baseScore": score}}]}
        else:
            vector, score = CVSS3_VECTORS[n % len(CVSS3_VECTORS)]
            metrics = {"cvssMetricV31": [{"source": "nvd@nist.gov", "type": "Primary",
                                          "cvssData": {"version": "3.1", "vectorString": vector, "baseScore": score}}]}
        items[f.cve] = {"cve": {"id": f.cve, "sourceIdentifier": "cve@mitre.org",
                                "published": "2024-01-01T00:00:00.000", "lastModified": modified,
                                "vulnStatus": "Analyzed",
                                "descriptions": [{"lang": "en", "value": f.text}], "metrics": metrics}}
    return list(items.values())


Failure = Literal["500", "truncate", "malformed"]


@dataclasses.dataclass
class _File:
    body: bytes
    etag: str
    last_modified: str


class FeedServer:
    """Files and NVD's API on 127.0.0.1 (``async with FeedServer() as s``; ``s.url``).

    ``put(path, body)`` serves a file (a new ETag and Last-Modified each time its content changes;
    ``reissue(path)`` gives new ones to the same content); conditional GETs get 304.
    ``fail(path, how, times)`` makes the next ``times`` GETs of ``path`` fail: ``500``, ``truncate``
    (the full Content-Length announced, half the body sent, the connection closed) or
    ``malformed`` (200 with half the document and a fresh ETag); ``fail("nvd", ...)`` answers 503.
    ``requests[path]`` counts GETs, ``not_modified[path]`` the 304s. ``nvd`` (a list of CVE API
    entries) is served paged at ``/nvd`` (``nvd_page_max`` a page); ``nvd_queries`` records each
    query's parameters (and an ``apiKey header``).
    """

    def __init__(self) -> None:
        self.files: dict[str, _File] = {}
        self.failures: dict[str, list[Failure]] = {}
        self.requests: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.nvd: list[dict[str, Any]] = []
        self.nvd_queries: list[dict[str, str]] = []
        #: The most entries a page holds whatever the client asks (NVD's: 2,000).
        self.nvd_page_max = 2000
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._serial = 0

    async def __aenter__(self) -> FeedServer:
        app = web.Application()
        app.router.add_get("/nvd", self._nvd)
        app.router.add_get("/{path:.*}", self._get)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def put(self, path: str, body: bytes) -> None:
        path = path.lstrip("/")
        old = self.files.get(path)
        if old is not None and old.body == body:
            return
        etag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'
        self.files[path] = _File(body, etag, email.utils.formatdate(usegmt=True))

    def reissue(self, path: str) -> None:
        """Serve ``path``'s same content under a new ETag and Last-Modified (a re-published file)."""
        f = self.files[path.lstrip("/")]
        self._serial += 1
        f.etag = f'"{hashlib.sha256(f.body).hexdigest()[:20]}-{self._serial}"'
        f.last_modified = email.utils.formatdate(usegmt=True)

    def fail(self, path: str, how: Failure, times: int = 1) -> None:
        self.failures.setdefault(path.lstrip("/"), []).extend([how] * times)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.requests[path] += 1
        f = self.files.get(path)
        if f is None:
            raise web.HTTPNotFound()
        failures = self.failures.get(path)
        how = failures.pop(0) if failures else None
        if how == "500":
            raise web.HTTPInternalServerError(text="feed server failure")
        if how == "malformed":
            bad = f.body[: len(f.body) // 2]
            return web.Response(body=bad, headers={"ETag": f'"bad-{hashlib.sha256(bad).hexdigest()[:12]}"'})
        if how is None:
            # If-None-Match decides when sent (RFC 9110 13.2.2); else If-Modified-Since.
            inm, ims = request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")
            if inm == f.etag if inm is not None else ims == f.last_modified:
                self.not_modified[path] += 1
                return web.Response(status=304, headers={"ETag": f.etag, "Last-Modified": f.last_modified})
        resp = web.StreamResponse(headers={"ETag": f.etag, "Last-Modified": f.last_modified,
                                           "Content-Type": "application/octet-stream"})
        resp.content_length = len(f.body)
        await resp.prepare(request)
        if how == "truncate":
            await resp.write(f.body[: len(f.body) // 2])
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write(f.body)
        await resp.write_eof()
        return resp

    async def _nvd(self, request: web.Request) -> web.Response:
        self.requests["nvd"] += 1
        query = dict(request.query)
        if "apiKey" in request.headers:
            query["apiKey header"] = request.headers["apiKey"]
        self.nvd_queries.append(query)
        failures = self.failures.get("nvd")
        if failures:
            failures.pop(0)
            raise web.HTTPServiceUnavailable()
        items = self.nvd
        if "lastModStartDate" in query:
            start = dt.datetime.fromisoformat(query["lastModStartDate"])
            end = dt.datetime.fromisoformat(query["lastModEndDate"])
            if end - start > dt.timedelta(days=120):
                raise web.HTTPNotFound(text="the date range cannot exceed 120 days")

            def modified(item: dict[str, Any]) -> dt.datetime:
                return dt.datetime.fromisoformat(item["cve"]["lastModified"]).replace(tzinfo=dt.UTC)

            items = [i for i in items if start <= modified(i) <= end]
        first = int(query.get("startIndex", "0"))
        size = min(int(query.get("resultsPerPage", "2000")), self.nvd_page_max)
        page = items[first: first + size]
        return web.json_response({"resultsPerPage": len(page), "startIndex": first, "totalResults": len(items),
                                  "format": "NVD_CVE", "version": "2.0",
                                  "timestamp": dt.datetime.now(dt.UTC).isoformat(), "vulnerabilities": page})

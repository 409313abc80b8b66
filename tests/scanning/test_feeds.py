"""The feed parsers on documents in each feed's real format, built from this machine's real
Debian changelog advisories (``tests.scanning.vulnfeeds``) and from real published records."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from typing import Any

import pytest

from dtr.scanning.feeds import FeedError, alpine, debian, iter_object_items, nvd, osv, summary_of
from dtr.scanning.feeds.cvss import cvss2_score, cvss3_score, score
from dtr.scanning.types import Advisory
from tests.scanning.vulnfeeds import (
    CVSS2_VECTORS,
    CVSS3_VECTORS,
    Fact,
    alpine_secdb,
    alpine_version,
    changelog_facts,
    debian_tracker_json,
    nvd_items,
    osv_debian_records,
    osv_zip,
)


@pytest.fixture(scope="module")
def facts() -> list[Fact]:
    return changelog_facts()


def test_changelog_facts_are_many_and_well_formed(facts: list[Fact]) -> None:
    assert len(facts) > 500, "this machine's Debian changelogs should name hundreds of fixed CVEs"
    assert len({f.source for f in facts}) > 20
    assert all(f.cve.startswith("CVE-") and f.version and f.source for f in facts)
    assert len({(f.source, f.cve) for f in facts}) == len(facts)


# --- CVSS ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("vector", "expected"), CVSS3_VECTORS)
def test_cvss3_scores(vector: str, expected: float) -> None:
    assert cvss3_score(vector) == expected
    assert score(vector) == expected


@pytest.mark.parametrize(("vector", "expected"), CVSS2_VECTORS)
def test_cvss2_scores(vector: str, expected: float) -> None:
    assert cvss2_score(vector) == expected
    assert score(f"({vector})") == expected


@pytest.mark.parametrize("vector", [
    "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",  # v4: kept unscored
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:X/C:H/I:H/A:H",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",
    "CVSS:3.1/AV:N/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "AV:N/AC:L/Au:N/C:P/I:P",
    "garbage",
])
def test_unscorable_vectors(vector: str) -> None:
    assert score(vector) is None


# --- the streaming JSON object reader --------------------------------------------------------------

def test_iter_object_items_matches_json_load_at_any_chunk_size(facts: list[Fact]) -> None:
    extra = {"zlib": {"CVE-2022-37434": {"description": "inflateGetHeader überläuft 🐛 \u00e9", "releases": {}}}}
    doc = debian_tracker_json(facts[:300], extra=extra)
    expected = list(json.loads(doc).items())
    for chunk in (1, 7, 4096, 1 << 20):
        assert list(iter_object_items(io.BytesIO(doc), name="t", chunk=chunk)) == expected
    assert list(iter_object_items(io.BytesIO(b" {} "), name="t")) == []
    assert list(iter_object_items(io.BytesIO(b'{"a": 1e5, "b": [1, 2]}'), name="t", chunk=3)) == \
        [("a", 1e5), ("b", [1, 2])]


@pytest.mark.parametrize(("doc", "message"), [
    (b"", "not a JSON object"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"a": {"b": 1}', "ends inside the object"),
    (b'{"a": {"b": 1}, "c": [1, 2', "malformed JSON"),
    (b'{"a": 1} trailing', "data after the object"),
    (b'{"a" 1}', "':' expected"),
    (b'{"a": 1 "b": 2}', "',' or '}' expected"),
    (b'{"a": "\xff\xfe"}', "not UTF-8"),
])
def test_iter_object_items_rejects_malformed_documents(doc: bytes, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        list(iter_object_items(io.BytesIO(doc), name="tracker.json", chunk=4))


# --- Debian security tracker -----------------------------------------------------------------------

def test_debian_tracker_real_advisories(facts: list[Fact]) -> None:
    got = list(debian.parse(io.BytesIO(debian_tracker_json(facts)), name="debian"))
    assert len(got) == len(facts)
    by_key = {(a.package, a.vuln_id): a for a in got}
    for f in facts:
        a = by_key[(f.source, f.cve)]
        assert (a.namespace, a.state, a.fixed, a.introduced) == ("debian:12", "fixed", f.version, "")
        assert a.severity == (f.urgency if f.urgency in ("low", "medium", "high") else "unknown")
        assert a.summary == summary_of(f.text)


def test_debian_tracker_fix_states(facts: list[Fact]) -> None:
    """Entries shaped as the tracker publishes them, on real (source, CVE) pairs."""
    f, g = facts[0], facts[1]
    extra = {f.source: {f.cve: {"description": f.text, "releases": {
        "buster": {"status": "open", "repositories": {"buster": "1.0-1"}, "urgency": "unimportant"},
        "bullseye": {"status": "open", "repositories": {"bullseye": "1.0-1"}, "urgency": "low",
                     "nodsa": "Minor issue", "nodsa_reason": ""},
        "bookworm": {"status": "resolved", "repositories": {"bookworm": f.version}, "fixed_version": f.version,
                     "urgency": "medium**"},
        "trixie": {"status": "resolved", "repositories": {"trixie": "2.0-1"}, "fixed_version": "0",
                   "urgency": "not yet assigned"},
        "forky": {"status": "undetermined", "repositories": {"forky": "2.0-1"}, "urgency": "not yet assigned"},
        "sid": {"status": "resolved", "repositories": {"sid": "2.0-1"}, "fixed_version": "1.0-2",
                "urgency": "low"},
    }}}, g.source: {g.cve: {"releases": {
        "buster": {"status": "open", "urgency": "end-of-life"},
        "bullseye": {"status": "open", "urgency": "medium", "nodsa": "Can be fixed in a point release",
                     "nodsa_reason": "postponed"},
        "bookworm": {"status": "open", "urgency": "high", "nodsa": "", "nodsa_reason": "ignored"},
        "trixie": {"status": "open", "urgency": "high"},
    }}}}
    doc = debian_tracker_json([], extra=extra)
    got = {(a.package, a.namespace): a for a in debian.parse(io.BytesIO(doc))}
    assert {k: (a.state, a.fixed, a.severity) for k, a in got.items()} == {
        (f.source, "debian:10"): ("will_not_fix", "", "negligible"),
        (f.source, "debian:11"): ("will_not_fix", "", "low"),
        (f.source, "debian:12"): ("fixed", f.version, "medium"),
        (f.source, "debian:13"): ("not_affected", "", "unknown"),
        (f.source, "debian:14"): ("not_fixed", "", "unknown"),
        (g.source, "debian:10"): ("will_not_fix", "", ""),
        (g.source, "debian:11"): ("not_fixed", "", "medium"),
        (g.source, "debian:12"): ("will_not_fix", "", "high"),
        (g.source, "debian:13"): ("not_fixed", "", "high"),
    }


def test_debian_tracker_malformed(facts: list[Fact]) -> None:
    doc = debian_tracker_json(facts[:50])
    with pytest.raises(FeedError, match=r"debian: malformed JSON|debian: .*ends inside"):
        list(debian.parse(io.BytesIO(doc[: len(doc) // 2]), name="debian"))
    with pytest.raises(FeedError, match="is not an object of vulnerabilities"):
        list(debian.parse(io.BytesIO(b'{"openssl": [1]}'), name="debian"))
    with pytest.raises(FeedError, match="not a vulnerability entry"):
        list(debian.parse(io.BytesIO(b'{"openssl": {"CVE-2023-0001": {"releases": []}}}'), name="debian"))


# --- OSV -------------------------------------------------------------------------------------------

def test_osv_debian_zip_real_advisories(facts: list[Fact]) -> None:
    got = list(osv.parse_zip(io.BytesIO(osv_zip(osv_debian_records(facts))), name="osv:Debian"))
    assert len(got) == len(facts)
    by_key = {(a.package, a.vuln_id): a for a in got}
    for f in facts:
        a = by_key[(f.source, f"DEBIAN-{f.cve}")]
        assert (a.namespace, a.state, a.introduced, a.fixed, a.last_affected) == \
            ("debian:12", "fixed", "", f.version, "")
        assert a.aliases == (f.cve,)
        assert a.severity == (f.urgency if f.urgency in ("low", "medium", "high") else "unknown")


# Records as OSV publishes them (trimmed to the fields the parser reads; ids and ranges are the real ones).
LOG4SHELL = {
    "id": "GHSA-jfh8-c2jp-5v3q", "modified": "2024-03-15T12:00:00Z", "aliases": ["CVE-2021-44228"],
    "summary": "Remote code injection in Log4j",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}],
    "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.13.0"}, {"fixed": "2.15.0"}]},
                             {"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.3.1"}]},
                             {"type": "ECOSYSTEM", "events": [{"introduced": "2.4"}, {"fixed": "2.12.2"}]}]}],
    "database_specific": {"severity": "CRITICAL", "github_reviewed": True},
}
JINJA = {
    "id": "PYSEC-2019-217", "aliases": ["CVE-2019-10906", "GHSA-462w-v97r-4m45"],
    "details": "In Pallets Jinja before 2.10.1, str.format_map allows a sandbox escape.",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "Jinja2", "purl": "pkg:pypi/jinja2"},
                  "ranges": [{"type": "GIT", "repo": "https://github.com/pallets/jinja",
                              "events": [{"introduced": "0"}, {"fixed": "a2a6c930bcca591a25d2b316fcfd2d6793897b26"}]},
                             {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.10.1"}]}],
                  "versions": ["2.10", "2.9.6"]}],
}
LODASH = {
    "id": "GHSA-35jh-r3h4-6jhm", "aliases": ["CVE-2021-23337"], "summary": "Command Injection in lodash",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"}],
    "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                  "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}],
    "database_specific": {"severity": "HIGH"},
}
GO_NET = {
    "id": "GO-2023-2102", "aliases": ["CVE-2023-39325", "GHSA-4374-p667-p6c8"],
    "summary": "HTTP/2 rapid reset can cause excessive work in net/http",
    "affected": [{"package": {"ecosystem": "Go", "name": "golang.org/x/net"},
                  "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.17.0"}]}],
                  "ecosystem_specific": {"imports": [{"path": "golang.org/x/net/http2"}]}}],
}
UBUNTU = {
    "id": "UBUNTU-CVE-2023-4863", "upstream": ["CVE-2023-4863"], "details": "Heap buffer overflow in libwebp",
    "severity": [{"type": "Ubuntu", "score": "high"},
                 {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H"}],
    "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "libwebp"},
                  "ranges": [{"type": "ECOSYSTEM",
                              "events": [{"introduced": "0"}, {"fixed": "1.2.2-2ubuntu0.22.04.2"}]}]},
                 {"package": {"ecosystem": "Ubuntu:Pro:18.04:LTS", "name": "libwebp"},
                  "ranges": [{"type": "ECOSYSTEM",
                              "events": [{"introduced": "0"}, {"fixed": "0.6.1-2ubuntu0.18.04.2+esm1"}]}]}],
}
ALPINE = {
    "id": "ALPINE-CVE-2023-5363", "upstream": ["CVE-2023-5363"],
    "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "openssl"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.4-r0"}]}]}],
}
RUST = {
    "id": "RUSTSEC-2021-0078", "aliases": ["CVE-2021-32715", "GHSA-wr55-mf5c-hhwm"],
    "summary": "Lenient `hyper` header parsing of `Content-Length` could allow request smuggling",
    "severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:L/VA:N/SC:N/SI:N/SA:N"}],
    "affected": [{"package": {"ecosystem": "crates.io", "name": "Hyper"},
                  "ranges": [{"type": "SEMVER", "events": [{"introduced": "0.0.0-0"}, {"fixed": "0.14.10"}]}]}],
}
GEM = {
    "id": "GHSA-xxx-rack", "aliases": [],
    "severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:N/A:N"},
                 {"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"}],
    "affected": [{"package": {"ecosystem": "RubyGems", "name": "rack"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0.0"}, {"last_affected": "2.2.3"},
                                                              {"introduced": "3.0.0"}, {"limit": "3.1.0"}]}]}],
}
ONLY_VERSIONS = {
    "id": "PYSEC-2021-0001",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "Django_Rest.Framework"},
                  "ranges": [{"type": "GIT", "repo": "https://example.invalid/r", "events": [{"introduced": "0"}]}],
                  "versions": ["3.11.0", "3.11.1"]},
                 {"package": {"ecosystem": "Hackage", "name": "aeson"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}],
}
WITHDRAWN = {"id": "GHSA-withdrawn", "withdrawn": "2022-01-01T00:00:00Z",
             "affected": [{"package": {"ecosystem": "npm", "name": "x"},
                           "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]}


def _rows(record: dict[str, Any]) -> list[tuple[str, ...]]:
    return [(a.namespace, a.package, a.state, a.introduced, a.fixed, a.last_affected)
            for a in osv.advisories(record)]


def test_osv_ecosystems_and_ranges() -> None:
    assert _rows(LOG4SHELL) == [
        ("maven", "org.apache.logging.log4j:log4j-core", "fixed", "2.13.0", "2.15.0", ""),
        ("maven", "org.apache.logging.log4j:log4j-core", "fixed", "2.0-beta9", "2.3.1", ""),
        ("maven", "org.apache.logging.log4j:log4j-core", "fixed", "2.4", "2.12.2", "")]
    # The GIT range is skipped; with an ECOSYSTEM range there, the versions list is not used.
    assert _rows(JINJA) == [("pypi", "jinja2", "fixed", "", "2.10.1", "")]
    assert _rows(LODASH) == [("npm", "lodash", "fixed", "", "4.17.21", "")]
    assert _rows(GO_NET) == [("golang", "golang.org/x/net", "fixed", "", "0.17.0", "")]
    assert _rows(UBUNTU) == [("ubuntu:22.04", "libwebp", "fixed", "", "1.2.2-2ubuntu0.22.04.2", "")]
    assert _rows(ALPINE) == [("alpine:3.19", "openssl", "fixed", "", "3.1.4-r0", "")]
    assert _rows(RUST) == [("cargo", "hyper", "fixed", "0.0.0-0", "0.14.10", "")]
    # last_affected closes a range; an introduced left open runs on (limit is ignored).
    assert _rows(GEM) == [("gem", "rack", "not_fixed", "2.0.0", "", "2.2.3"),
                          ("gem", "rack", "not_fixed", "3.0.0", "", "")]
    # Only GIT ranges: the versions list, as exact rows; unknown ecosystems are skipped.
    assert _rows(ONLY_VERSIONS) == [("pypi", "django-rest-framework", "not_fixed", "3.11.0", "", "3.11.0"),
                                    ("pypi", "django-rest-framework", "not_fixed", "3.11.1", "", "3.11.1")]
    assert _rows(WITHDRAWN) == []


def test_osv_severity_cvss_summary_aliases() -> None:
    [a, *_] = osv.advisories(LOG4SHELL)
    assert (a.severity, a.cvss_score, a.cvss_vector) == \
        ("critical", 10.0, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H")
    assert (a.vuln_id, a.aliases, a.summary) == ("GHSA-jfh8-c2jp-5v3q", ("CVE-2021-44228",),
                                                 "Remote code injection in Log4j")
    [a] = osv.advisories(LODASH)
    assert (a.severity, a.cvss_score) == ("high", 7.2)
    [a] = osv.advisories(JINJA)
    assert a.summary == JINJA["details"] and a.cvss_score is None and a.severity == ""
    [a] = osv.advisories(UBUNTU)
    assert (a.severity, a.cvss_score, a.aliases) == ("high", 8.8, ("CVE-2023-4863",))
    [a] = osv.advisories(RUST)  # v4 only: the vector kept, no score
    assert (a.cvss_score, a.cvss_vector) == (None, RUST["severity"][0]["score"])
    a = next(osv.advisories(GEM))  # v2 scored before an unscored v4
    assert (a.cvss_score, a.cvss_vector) == (5.0, "AV:N/AC:L/Au:N/C:P/I:N/A:N")


def test_osv_zip_errors() -> None:
    good = osv_zip([LODASH])
    assert [a.package for a in osv.parse_zip(io.BytesIO(good))] == ["lodash"]
    with pytest.raises(FeedError, match="osv:npm: not a readable zip archive"):
        list(osv.parse_zip(io.BytesIO(good[: len(good) // 2]), name="osv:npm"))
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("GHSA-1.json", json.dumps(LODASH))
        z.writestr("GHSA-2.json", "{not json")
    with pytest.raises(FeedError, match=r"osv:npm: GHSA-2\.json: malformed JSON"):
        list(osv.parse_zip(io.BytesIO(bad.getvalue()), name="osv:npm"))
    with pytest.raises(FeedError, match="without an id"):
        list(osv.parse_record(b'{"affected": []}'))


# --- Alpine secdb ----------------------------------------------------------------------------------

def test_alpine_secdb_real_advisories(facts: list[Fact]) -> None:
    doc = alpine_secdb(facts, "v3.19", not_affected=[(facts[0].source, "CVE-2000-0001")])
    got = list(alpine.parse(io.BytesIO(doc), name="alpine:v3.19:main"))
    assert len(got) == len(facts) + 1
    rows = {(a.package, a.vuln_id): (a.namespace, a.state, a.fixed) for a in got}
    for f in facts:
        assert rows[(f.source, f.cve)] == ("alpine:3.19", "fixed", alpine_version(f.version))
    assert rows[(facts[0].source, "CVE-2000-0001")] == ("alpine:3.19", "not_affected", "")


def test_alpine_secdb_entries_as_published() -> None:
    doc = {"distroversion": "v3.19", "reponame": "main", "packages": [
        {"pkg": {"name": "busybox", "secfixes": {"1.36.1-r6": ["CVE-2023-42363 CVE-2023-42364"],
                                                 "1.35.0-r17": ["CVE-2022-30065 (CVE-2022-48174)"],
                                                 "0": ["CVE-2021-42373"]}}},
        {"pkg": {"name": "zlib"}}]}
    got = [(a.package, a.vuln_id, a.state, a.fixed) for a in alpine.parse(io.BytesIO(json.dumps(doc).encode()))]
    assert got == [("busybox", "CVE-2023-42363", "fixed", "1.36.1-r6"),
                   ("busybox", "CVE-2023-42364", "fixed", "1.36.1-r6"),
                   ("busybox", "CVE-2022-30065", "fixed", "1.35.0-r17"),
                   ("busybox", "CVE-2022-48174", "fixed", "1.35.0-r17"),
                   ("busybox", "CVE-2021-42373", "not_affected", "")]
    with pytest.raises(FeedError, match="distroversion"):
        list(alpine.parse(io.BytesIO(b'{"distroversion": "edge", "packages": []}')))
    with pytest.raises(FeedError, match="malformed JSON"):
        list(alpine.parse(io.BytesIO(json.dumps(doc).encode()[:40])))


# --- NVD -------------------------------------------------------------------------------------------

def test_nvd_page(facts: list[Fact]) -> None:
    items = nvd_items(facts[:100])
    page = {"resultsPerPage": len(items), "startIndex": 0, "totalResults": 5000, "vulnerabilities": items}
    total, count, infos = nvd.parse_page(json.dumps(page).encode())
    assert (total, count, len(infos)) == (5000, len(items), len(items))
    for item, info in zip(items, infos, strict=True):
        [metric] = next(iter(item["cve"]["metrics"].values()))
        assert (info.id, info.cvss_score, info.cvss_vector) == \
            (item["cve"]["id"], metric["cvssData"]["baseScore"], metric["cvssData"]["vectorString"])
        assert info.summary == summary_of(item["cve"]["descriptions"][0]["value"])
        assert info.modified_at == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(FeedError, match=r"not a CVE API 2\.0 response"):
        nvd.parse_page(b'{"vulnerabilities": []}')


def test_nvd_prefers_v31_and_nvd_primary() -> None:
    item = {"cve": {"id": "CVE-2021-44228", "descriptions": [{"lang": "es", "value": "x"},
                                                             {"lang": "en", "value": "Apache Log4j2 JNDI"}],
                    "metrics": {
                        "cvssMetricV31": [
                            {"source": "security@apache.org", "type": "Secondary",
                             "cvssData": {"vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                                          "baseScore": 9.8}},
                            {"source": "nvd@nist.gov", "type": "Primary",
                             "cvssData": {"vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
                                          "baseScore": 10.0}}],
                        "cvssMetricV2": [{"type": "Primary", "cvssData": {"vectorString": "AV:N/AC:M/Au:N/C:C/I:C/A:C",
                                                                          "baseScore": 9.3}}]}}}
    info = nvd.vuln_info(item)
    assert info is not None
    assert (info.summary, info.cvss_score) == ("Apache Log4j2 JNDI", 10.0)


def test_nvd_windows_are_at_most_120_days() -> None:
    until = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    assert nvd.windows(None, until) == [None]
    assert nvd.windows(until, until) == []
    ws = nvd.windows(until - dt.timedelta(days=300), until)
    assert [w[1] - w[0] for w in ws if w] == [dt.timedelta(days=120), dt.timedelta(days=120), dt.timedelta(days=60)]
    assert ws[0] and ws[-1] and ws[0][0] == until - dt.timedelta(days=300) and ws[-1][1] == until


def test_advisory_defaults_are_the_contract() -> None:
    a = Advisory(vuln_id="CVE-1", namespace="debian:12", package="x")
    assert (a.state, a.introduced, a.fixed, a.cvss_score) == ("fixed", "", "", None)


def test_osv_ecosystems_map_to_the_namespaces_images_are_matched_in() -> None:
    from dtr.scanning.feeds.osv import namespace_of

    assert namespace_of("Debian:12") == "debian:12"
    assert namespace_of("Ubuntu:22.04:LTS") == "ubuntu:22.04"
    assert namespace_of("Alpine:v3.19") == "alpine:3.19"
    assert namespace_of("Rocky Linux:8") == "rocky:8"
    assert namespace_of("AlmaLinux:9") == "almalinux:9"
    assert namespace_of("PyPI") == "pypi" and namespace_of("crates.io") == "cargo"
    assert namespace_of("Ubuntu:Pro:18.04:LTS") is None and namespace_of("Nonsense") is None

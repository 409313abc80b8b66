"""The matcher with real advisory facts: this machine's Debian changelogs name the CVEs each source
package version fixed, and its dpkg database says which versions are installed."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from dtr.scanning.matcher import affected, band, match, match_key
from dtr.scanning.types import Advisory, Distribution, Finding, Package
from dtr.scanning.versions import InvalidVersion
from tests.scanning.match_data import ChangelogFact, changelog_facts, dpkg_compare, installed_debs, os_release

DEBIAN_12 = Distribution(id="debian", version_id="12", version_codename="bookworm")


def _debian_advisories(facts: Sequence[ChangelogFact], namespace: str) -> dict[tuple[str, str], list[Advisory]]:
    advisories: dict[tuple[str, str], list[Advisory]] = {}
    for fact in facts:
        advisories.setdefault((namespace, fact.source), []).append(
            Advisory(vuln_id=fact.cve, namespace=namespace, package=fact.source, fixed=fact.fixed))
    return advisories


Keyed = list[tuple[tuple[str, str, str], Package]]


def _keyed(distribution: Distribution | None, packages: Sequence[Package]) -> Keyed:
    keyed = []
    for package in packages:
        key = match_key(distribution, package)
        if key is not None:
            keyed.append((key, package))
    return keyed


def test_installed_packages_against_their_changelogs_cves() -> None:
    """Every package installed here against the ~4k CVE fixes its changelogs record: a package is
    affected exactly where dpkg says its source version is older than the fixing version (only where
    a stable update's changelog lists the newer unstable upload it was made from)."""
    distribution = os_release()
    assert distribution.id == "debian", "this test reads a Debian machine's packages and changelogs"
    packages = installed_debs()
    keyed = _keyed(distribution, packages)
    assert len(keyed) == len(packages)
    namespace = keyed[0][0][0]
    assert namespace == f"debian:{distribution.version_id.split('.')[0]}"
    facts = changelog_facts()
    installed = {key[1]: key[2] for key, _ in keyed}
    assert len(installed.keys() & {f.source for f in facts}) > 50
    pairs = sorted({(f.fixed, installed[f.source]) for f in facts})  # mostly ascending: one dpkg run each
    not_yet = {pair for pair, answer in zip(pairs, dpkg_compare(pairs), strict=True) if answer > 0}
    expected = {(f.source, f.cve, f.fixed) for f in facts if (f.fixed, installed[f.source]) in not_yet}
    assert expected, "some stable update is expected to list a newer unstable upload below it"
    problems: list[str] = []
    findings = match(keyed, _debian_advisories(facts, namespace), problems)
    assert problems == []
    assert {(f.package.source_name or f.package.name, f.vuln_id, f.fixed_version) for f in findings} == expected
    assert len({(f.package.name, f.vuln_id) for f in findings}) == len(findings)


def test_older_versions_are_affected_and_told_their_fix() -> None:
    """The version before each fixing upload (a sample): affected, with the fixing version as the
    fix, wherever dpkg orders it before that upload."""
    facts = random.Random(12).sample(changelog_facts(), 150)
    advisories = _debian_advisories(changelog_facts(), "debian:12")
    answers = dpkg_compare([(f.previous, f.fixed) for f in facts])
    assert answers.count(-1) > 120
    for fact, answer in zip(facts, answers, strict=True):
        package = Package(ecosystem="deb", name=fact.source + "-bin", version=fact.previous,
                          source_name=fact.source, location="var/lib/dpkg/status")
        key = match_key(DEBIAN_12, package)
        assert key == ("debian:12", fact.source, fact.previous)
        findings = {f.vuln_id: f for f in match([(key, package)], advisories)}
        if answer >= 0:
            assert fact.cve not in findings, fact
            continue
        assert fact.cve in findings, fact
        finding = findings[fact.cve]
        assert (finding.state, finding.fixed_version, finding.namespace) == ("fixed", fact.fixed, "debian:12")
        assert finding.package is package


def test_binnmu_is_matched_by_its_source_version() -> None:
    """A binNMU (``+bN``) binary: the advisory's fixed source version is compared with the source
    version, which the binary's own version is newer than by dpkg's rules."""
    binnmus = [p for p in installed_debs() if "+b" in p.version and p.source_version]
    assert binnmus, "a binNMU package is expected among the installed ones"
    package = binnmus[0]
    key = match_key(DEBIAN_12, package)
    assert key == ("debian:12", package.source_name or package.name, package.source_version)
    fixed_here = Advisory("CVE-2099-0001", "debian:12", key[1], fixed=package.source_version)
    fixed_later = Advisory("CVE-2099-0002", "debian:12", key[1], fixed=package.source_version + "+deb12u1")
    findings = match([(key, package)], {("debian:12", key[1]): [fixed_here, fixed_later]})
    assert [(f.vuln_id, f.fixed_version) for f in findings] == [("CVE-2099-0002", package.source_version + "+deb12u1")]
    assert affected("deb", package.version, Advisory("X", "debian:12", key[1], fixed=package.source_version)) is False


def _one(package: Package, *advisories: Advisory, problems: list[str] | None = None) -> list[Finding]:
    key = match_key(DEBIAN_12, package)
    assert key is not None
    return match([(key, package)], {(key[0], key[1]): list(advisories)}, problems)


OPENSSL = Package(ecosystem="deb", name="libssl3", version="3.0.11-1~deb12u2", source_name="openssl",
                  arch="amd64", location="var/lib/dpkg/status")


def test_fix_states() -> None:
    ns = "debian:12"
    assert _one(OPENSSL, Advisory("CVE-2023-5678", ns, "openssl", state="not_affected", fixed="3.0.13-1~deb12u1")) == []
    (finding,) = _one(OPENSSL, Advisory("CVE-2023-6129", ns, "openssl", state="will_not_fix"))
    assert (finding.state, finding.fixed_version, finding.band, finding.severity) == ("will_not_fix", "", "minor",
                                                                                    "unknown")
    (finding,) = _one(OPENSSL, Advisory("CVE-2024-0727", ns, "openssl", state="not_fixed", introduced="3.0.0"))
    assert finding.state == "not_fixed"
    assert _one(OPENSSL, Advisory("CVE-2024-0727", ns, "openssl", state="not_fixed", introduced="3.1.0")) == []
    # last_affected bounds the range inclusively
    assert _one(OPENSSL, Advisory("CVE-2022-0001", ns, "openssl", "not_fixed", last_affected="3.0.11-1~deb12u2"))
    assert not _one(OPENSSL, Advisory("CVE-2022-0001", ns, "openssl", "not_fixed", last_affected="3.0.11-1~deb12u1"))
    # OSV's introduced "0": from the first version, even one dpkg orders before "0" (0~)
    early = Package(ecosystem="deb", name="x", version="0~20200101-1", location="var/lib/dpkg/status")
    assert _one(early, Advisory("CVE-2020-0001", ns, "x", introduced="0", fixed="1.0-1"))


def test_several_advisories_of_one_vulnerability_merge() -> None:
    ns = "debian:12"
    tracker = Advisory("CVE-2024-5535", ns, "openssl", fixed="3.0.15-1~deb12u1", severity="low")
    osv = Advisory("CVE-2024-5535", ns, "openssl", fixed="3.0.14-1~deb12u1", cvss_score=9.1,
                   summary="SSL_select_next_proto")
    other_range = Advisory("CVE-2024-5535", ns, "openssl", introduced="3.1.0", fixed="3.1.7-1")
    no_fix = Advisory("CVE-2024-5535", ns, "openssl", state="not_fixed", severity="medium", cvss_score=5.0)
    (finding,) = _one(OPENSSL, tracker, osv, other_range, no_fix)
    assert finding.fixed_version == "3.0.14-1~deb12u1"  # the lowest fix above the installed version
    assert finding.state == "fixed"
    assert (finding.severity, finding.cvss_score, finding.band) == ("medium", 9.1, "major")  # vendor's first
    assert finding.summary == "SSL_select_next_proto"


def test_records_of_one_cve_merge_under_it() -> None:
    """PyPI's feed has both the GHSA and the PYSEC record of CVE-2023-32681 (requests <2.31.0)."""
    requests = Package(ecosystem="pypi", name="Requests", version="2.28.1",
                       location="usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO")
    key = match_key(None, requests)
    assert key == ("pypi", "requests", "2.28.1")
    ghsa = Advisory("GHSA-j8r2-6x86-q33q", "pypi", "requests", introduced="2.3.0", fixed="2.31.0",
                    severity="medium", cvss_score=6.1, aliases=("CVE-2023-32681",))
    pysec = Advisory("PYSEC-2023-74", "pypi", "requests", introduced="2.3.0", fixed="2.31.0",
                     aliases=("CVE-2023-32681", "GHSA-j8r2-6x86-q33q"))
    other = Advisory("GHSA-9wx4-h78v-vm56", "pypi", "requests", fixed="2.32.0", aliases=("CVE-2024-35195",))
    no_cve = Advisory("GHSA-0000-0000-0000", "pypi", "requests", fixed="2.29.0")
    findings = match([(key, requests)], {("pypi", "requests"): [ghsa, pysec, other, no_cve]})
    assert sorted((f.vuln_id, f.fixed_version, f.band, f.cvss_score) for f in findings) == [
        ("CVE-2023-32681", "2.31.0", "major", 6.1), ("CVE-2024-35195", "2.32.0", "minor", None),
        ("GHSA-0000-0000-0000", "2.29.0", "minor", None)]
    assert match([(("pypi", "requests", "2.31.0"), requests)], {("pypi", "requests"): [ghsa, pysec]}) == []


def test_a_record_of_several_cves_stays_apart() -> None:
    """OSV's Debian/Ubuntu advisories (DSA, USN) name several CVEs: they are not one of them."""
    ns = "debian:12"
    dsa = Advisory("DSA-5764-1", ns, "openssl", fixed="3.0.14-1~deb12u2", aliases=("CVE-2024-5535", "CVE-2024-4741"))
    tracker = Advisory("CVE-2024-5535", ns, "openssl", fixed="3.0.14-1~deb12u2", severity="low")
    debian_cve = Advisory("DEBIAN-CVE-2024-5535", ns, "openssl", fixed="3.0.14-1~deb12u2", aliases=("CVE-2024-5535",))
    findings = _one(OPENSSL, dsa, tracker, debian_cve)
    assert sorted((f.vuln_id, f.severity) for f in findings) == [("CVE-2024-5535", "low"), ("DSA-5764-1", "unknown")]


def test_unorderable_versions_match_nothing_and_are_reported() -> None:
    jar = Package(ecosystem="maven", name="org.apache.logging.log4j:log4j-core", version="2.14.1",
                  location="app/lib/log4j-core-2.14.1.jar")
    egg = Package(ecosystem="pypi", name="weird", version="1.0-custom-build-7", location="x/PKG-INFO")
    log4shell = Advisory("CVE-2021-44228", "maven", jar.name, introduced="2.13.0", fixed="2.15.0", severity="critical")
    bad_bound = Advisory("CVE-2099-1", "pypi", "weird", fixed="not a version")
    problems: list[str] = []
    findings = match([(("maven", jar.name, jar.version), jar), (("pypi", "weird", egg.version), egg),
                      (("pypi", "weird", "1.0"), egg)],
                     {("maven", jar.name): [log4shell], ("pypi", "weird"): [bad_bound, bad_bound]}, problems)
    assert [(f.vuln_id, f.band) for f in findings] == [("CVE-2021-44228", "critical")]
    assert len(problems) == 2
    assert "1.0-custom-build-7" in problems[0] and "CVE-2099-1" in problems[1] and "not a version" in problems[1]
    with pytest.raises(InvalidVersion):
        affected("pypi", "1.0", bad_bound)


@pytest.mark.parametrize(("severity", "cvss", "expected"), [
    ("critical", None, "critical"), ("high", 2.0, "critical"), ("important", None, "critical"),
    ("medium", 9.8, "major"), ("moderate", None, "major"), ("low", 9.8, "minor"), ("negligible", None, "minor"),
    ("unimportant", 7.5, "minor"), ("", 7.0, "critical"), ("unknown", 6.9, "major"), ("", 4.0, "major"),
    ("", 3.9, "minor"), ("", 0.0, "minor"), ("", None, "minor"), ("unknown", None, "minor"), ("HIGH", None, "critical"),
])
def test_band(severity: str, cvss: float | None, expected: str) -> None:
    assert band(severity, cvss) == expected


def test_match_keys() -> None:
    libc = Package(ecosystem="deb", name="libc6", version="2.36-9+deb12u4", source_name="glibc", arch="amd64")
    assert match_key(DEBIAN_12, libc) == ("debian:12", "glibc", "2.36-9+deb12u4")
    testing = Distribution(id="debian", version_codename="trixie")
    assert match_key(testing, libc) == ("debian:13", "glibc", "2.36-9+deb12u4")
    assert match_key(Distribution(id="debian", version_codename="sid"), libc) is None
    binnmu = Package(ecosystem="deb", name="libfoo1", version="1.2-3+b1", source_name="foo", source_version="1.2-3")
    assert match_key(DEBIAN_12, binnmu) == ("debian:12", "foo", "1.2-3")
    assert match_key(Distribution(id="ubuntu", version_id="22.04"), libc) == ("ubuntu:22.04", "glibc", "2.36-9+deb12u4")
    assert match_key(None, libc) is None
    assert match_key(Distribution(id="alpine", version_id="3.19.1"), libc) is None
    busybox = Package(ecosystem="apk", name="ssl_client", version="1.36.1-r15", source_name="busybox")
    alpine = Distribution(id="alpine", version_id="3.19.1")
    assert match_key(alpine, busybox) == ("alpine:3.19", "busybox", "1.36.1-r15")
    assert match_key(Distribution(id="alpine", version_id="3.20.0_alpha20240329"), busybox) == (
        "alpine:3.20", "busybox", "1.36.1-r15")
    assert match_key(DEBIAN_12, busybox) is None
    curl = Package(ecosystem="rpm", name="curl-minimal", version="7.76.1-29.el9_4", source_name="curl")
    for dist, namespace in [("rocky", "rocky:9"), ("amzn", "amzn:2023"), ("rhel", "rhel:8")]:
        version_id = {"rocky": "9.4", "amzn": "2023", "rhel": "8.9"}[dist]
        assert match_key(Distribution(id=dist, version_id=version_id), curl) == (
            namespace, "curl-minimal", "7.76.1-29.el9_4")
    normalised_names = [("Jinja2", "jinja2"), ("zope.interface", "zope-interface"), ("Flask--Login", "flask-login"),
                        ("ruamel.yaml.clib", "ruamel-yaml-clib"), ("typing_extensions", "typing-extensions")]
    for name, normalised in normalised_names:
        assert match_key(DEBIAN_12, Package("pypi", name, "1.0")) == ("pypi", normalised, "1.0")
    assert match_key(None, Package("maven", "org.apache.logging.log4j:log4j-core", "2.14.1")) == (
        "maven", "org.apache.logging.log4j:log4j-core", "2.14.1")
    assert match_key(None, Package("npm", "@babel/core", "7.0.0")) == ("npm", "@babel/core", "7.0.0")
    assert match_key(None, Package("cargo", "Inflector", "0.11.4")) == ("cargo", "inflector", "0.11.4")
    assert match_key(None, Package("golang", "golang.org/x/net", "v0.0.0-20230214200805-d99f623d45a4")) == (
        "golang", "golang.org/x/net", "v0.0.0-20230214200805-d99f623d45a4")

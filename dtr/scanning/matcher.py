"""An image's packages against the advisories: matching keys, affected ranges, fix states, bands.

Pure functions over ``types`` records; the caller loads the advisories of the keys it needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from dtr.scanning import versions
from dtr.scanning.feeds.debian import CODENAMES
from dtr.scanning.types import LANGUAGE_ECOSYSTEMS, Advisory, Distribution, Finding, Package

#: The distributions (os-release ``ID``) whose advisories each OS package family is matched against.
_DEB_DISTROS = frozenset({"debian", "ubuntu"})
_RPM_DISTROS = frozenset({"rhel", "centos", "rocky", "almalinux", "ol", "fedora", "amzn", "sles", "opensuse-leap",
                          "mariner", "azurelinux"})
_OS_DISTROS = {"deb": _DEB_DISTROS, "apk": frozenset({"alpine"}), "rpm": _RPM_DISTROS}
_PEP503 = re.compile(r"[-_.]+")


def match_key(distribution: Distribution | None, package: Package) -> tuple[str, str, str] | None:
    """(namespace, match name, match version) of ``package``, as ``Advisory`` keys them.

    OS packages need the image's distribution, of the package's family: Debian ``debian:<major>``
    (testing, without ``VERSION_ID``: its codename's number; sid: None) and Ubuntu
    ``ubuntu:<VERSION_ID>`` by source package and source version; Alpine ``alpine:<major.minor>``
    by origin; RPM distributions ``<id>:<major>`` by binary name and the stored
    ``epoch:version-release``. Language packages: the ecosystem, the name (PEP 503-normalised for
    PyPI, lower-case for crates; Maven's is ``group:artifact`` already) and the version. None: no
    namespace applies (an OS package without a distribution, or of another family than the
    distribution's)."""
    eco = package.ecosystem
    if eco in LANGUAGE_ECOSYSTEMS:
        name = package.name
        if eco == "pypi":
            name = _PEP503.sub("-", name).lower()
        elif eco == "cargo":
            name = name.lower()
        return eco, name, package.version
    if distribution is None or distribution.id not in _OS_DISTROS.get(eco, frozenset()):
        return None
    dist, version_id = distribution.id, distribution.version_id
    if eco == "deb":
        if dist == "ubuntu":
            release = version_id
        else:
            release = version_id.split(".")[0] or CODENAMES.get(distribution.version_codename, "")
        name = package.source_name or package.name
        version = package.source_version or package.version
    elif eco == "apk":
        release = ".".join(re.findall(r"[0-9]+", version_id)[:2])
        name, version = package.source_name or package.name, package.version
    else:
        release = version_id.split(".")[0]
        name, version = package.name, package.version
    if not release:
        return None
    return f"{dist}:{release}", name, version


def affected(ecosystem: str, version: str, advisory: Advisory) -> bool:
    """Whether ``version`` is in ``advisory``'s affected range (``Advisory``'s semantics; an
    ``introduced`` of ``""`` or ``"0"`` is no lower bound). Raises ``versions.InvalidVersion`` when
    ``version`` or a bound cannot be ordered."""
    if advisory.state == "not_affected":
        return False
    if advisory.introduced not in ("", "0") and versions.compare(ecosystem, version, advisory.introduced) < 0:
        return False
    if advisory.fixed:
        return versions.compare(ecosystem, version, advisory.fixed) < 0
    if advisory.last_affected:
        return versions.compare(ecosystem, version, advisory.last_affected) <= 0
    return True


_SEVERITY_BANDS = {"critical": "critical", "high": "critical", "important": "critical",
                   "medium": "major", "moderate": "major",
                   "low": "minor", "negligible": "minor", "unimportant": "minor"}
# Most severe first, for merging the severities of one vulnerability's advisories.
_SEVERITY_RANK = {s: i for i, s in enumerate(
    ("critical", "important", "high", "moderate", "medium", "low", "negligible", "unimportant"))}


def band(severity: str, cvss: float | None) -> str:
    """DTR's band: the vendor's severity when it has one (critical/high/important: ``critical``,
    medium/moderate: ``major``, low/negligible/unimportant: ``minor``), else the CVSS score
    (>= 7 ``critical``, >= 4 ``major``, else ``minor``), else ``minor`` (nothing says more)."""
    by_severity = _SEVERITY_BANDS.get(severity.lower())
    if by_severity is not None:
        return by_severity
    if cvss is not None:
        return "critical" if cvss >= 7 else "major" if cvss >= 4 else "minor"
    return "minor"


def match(packages: Sequence[tuple[tuple[str, str, str], Package]],
          advisories: Mapping[tuple[str, str], Sequence[Advisory]],
          problems: list[str] | None = None) -> list[Finding]:
    """The findings of ``packages`` (each with its ``match_key``) against ``advisories`` (by
    namespace and package name).

    One finding per package and vulnerability, reported under its CVE when it has one: the
    advisories of one vulnerability that affect the package merge (several ranges, several feeds,
    a GHSA/PYSEC/GO/DEBIAN-CVE record whose aliases name one CVE). Merged: the fixed version is the
    lowest fix above the installed version; the state ``fixed`` when any fix exists, else
    ``not_fixed`` unless every advisory says ``will_not_fix``; the most severe vendor severity
    (``unknown`` when none says) and the highest CVSS. Versions that cannot be ordered match
    nothing and are described in ``problems`` (once each), if given."""
    findings: list[Finding] = []
    seen: dict[str, None] = {}
    for (namespace, name, version), package in packages:
        candidates = advisories.get((namespace, name))
        if not candidates:
            continue
        eco = package.ecosystem
        try:
            versions.sort_key(eco, version)
        except versions.InvalidVersion as exc:
            seen.setdefault(f"{namespace} {name}: {exc}")
            continue
        hits: dict[str, list[Advisory]] = {}
        for advisory in candidates:
            try:
                if affected(eco, version, advisory):
                    hits.setdefault(advisory.vuln_id, []).append(advisory)
            except versions.InvalidVersion as exc:
                seen.setdefault(f"{advisory.vuln_id} for {namespace} {name}: {exc}")
        for vuln_id, group in _alias_groups(hits):
            findings.append(_finding(vuln_id, eco, package, namespace, group))
    if problems is not None:
        problems.extend(seen)
    return findings


def _alias_groups(hits: dict[str, list[Advisory]]) -> Iterable[tuple[str, list[Advisory]]]:
    """The advisories by vulnerability: each under its CVE (its own id if a CVE, else the one CVE
    among its aliases), else its own id. A record of several CVEs (a DSA, a USN) stays apart."""
    groups: dict[str, list[Advisory]] = {}
    for vuln_id, advs in hits.items():
        if not vuln_id.startswith("CVE-"):
            cves = {a for adv in advs for a in adv.aliases if a.startswith("CVE-")}
            if len(cves) == 1:
                vuln_id = cves.pop()
        groups.setdefault(vuln_id, []).extend(advs)
    return groups.items()


def _finding(vuln_id: str, eco: str, package: Package, namespace: str, group: list[Advisory]) -> Finding:
    if len(group) == 1:  # the usual case, made cheap
        (a,) = group
        severity = a.severity.lower() if a.severity.lower() in _SEVERITY_RANK else "unknown"
        return Finding(vuln_id=vuln_id, package=package, namespace=namespace, state=_state(a.fixed, group),
                       fixed_version=a.fixed, band=band(severity, a.cvss_score), severity=severity,
                       cvss_score=a.cvss_score, summary=a.summary)
    fixes = {a.fixed for a in group if a.fixed}
    fixed = min(fixes, key=lambda v: versions.sort_key(eco, v)) if fixes else ""
    severities = [a.severity.lower() for a in group if a.severity.lower() in _SEVERITY_RANK]
    severity = min(severities, key=_SEVERITY_RANK.__getitem__) if severities else "unknown"
    scores = [a.cvss_score for a in group if a.cvss_score is not None]
    cvss = max(scores) if scores else None
    summary = next((a.summary for a in group if a.summary), "")
    return Finding(vuln_id=vuln_id, package=package, namespace=namespace, state=_state(fixed, group),
                   fixed_version=fixed, band=band(severity, cvss), severity=severity, cvss_score=cvss, summary=summary)


def _state(fixed: str, group: list[Advisory]) -> str:
    if fixed:
        return "fixed"
    return "will_not_fix" if all(a.state == "will_not_fix" for a in group) else "not_fixed"

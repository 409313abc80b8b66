"""OSV records (https://ossf.github.io/osv-schema/) as ``Advisory`` rows.

One row per (affected package, range): ``ECOSYSTEM``/``SEMVER`` ranges are walked event by event
(``introduced`` opens a range, ``fixed`` or ``last_affected`` closes it, ``limit`` is ignored);
``GIT`` ranges are skipped; an affected entry without a usable range lists its ``versions`` as
exact rows (``introduced`` = ``last_affected`` = the version). Withdrawn records yield nothing.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, Any

from dtr.scanning.feeds import FeedError, normalise_severity, summary_of
from dtr.scanning.feeds.cvss import score
from dtr.scanning.types import Advisory

_LANGUAGE_NAMESPACES = {
    "PyPI": "pypi", "npm": "npm", "Maven": "maven", "RubyGems": "gem", "Go": "golang", "crates.io": "cargo",
}
#: RPM distributions OSV publishes, by the os-release ID of their images (packages matched by
#: binary rpm name within the major release).
_RPM_DISTROS = {"Rocky Linux": "rocky", "AlmaLinux": "almalinux"}
#: Most bytes of one record in an ``all.zip`` (the largest real ones are a few MB).
RECORD_MAX = 64 << 20


def namespace_of(ecosystem: str) -> str | None:
    """The ``Advisory.namespace`` of an OSV ecosystem, or None for one the scanner does not match
    (``Ubuntu:Pro:...`` streams, unknown ecosystems, a distribution without a release)."""
    if ecosystem in _LANGUAGE_NAMESPACES:
        return _LANGUAGE_NAMESPACES[ecosystem]
    distro, _, release = ecosystem.partition(":")
    if distro == "Debian" and re.fullmatch(r"\d+", release):
        return f"debian:{release}"
    if distro == "Ubuntu":
        m = re.fullmatch(r"(\d+\.\d+)(?::LTS)?", release)
        return f"ubuntu:{m.group(1)}" if m else None
    if distro == "Alpine":
        m = re.fullmatch(r"v?(\d+\.\d+)", release)
        return f"alpine:{m.group(1)}" if m else None
    if distro in _RPM_DISTROS:
        m = re.fullmatch(r"(\d+)(?:\.\d+)*", release)
        return f"{_RPM_DISTROS[distro]}:{m.group(1)}" if m else None
    return None


def package_key(namespace: str, name: str) -> str:
    """The matching key of a package name in ``namespace`` (PEP 503 for PyPI, lower-case crates)."""
    if namespace == "pypi":
        return re.sub(r"[-_.]+", "-", name).lower()
    if namespace == "cargo":
        return name.lower()
    return name


def _cvss(severities: object) -> tuple[float | None, str]:
    """The best CVSS of an OSV ``severity`` list: a v3 or v2 vector scored, else a v4 vector unscored."""
    if not isinstance(severities, list):
        return None, ""
    vectors = {s.get("type"): s.get("score") for s in severities if isinstance(s, dict)}
    for kind in ("CVSS_V3", "CVSS_V2"):
        vector = vectors.get(kind)
        if isinstance(vector, str):
            value = score(vector)
            if value is not None:
                return value, vector
    vector = vectors.get("CVSS_V4")
    return (None, vector) if isinstance(vector, str) else (None, "")


def _vendor_severity(record: dict[str, Any], affected: dict[str, Any]) -> str:
    for specific in (affected.get("ecosystem_specific"), affected.get("database_specific"),
                     record.get("database_specific")):
        if isinstance(specific, dict):
            for key in ("severity", "urgency", "priority"):
                found = normalise_severity(specific.get(key))
                if found:
                    return found
    for severities in (affected.get("severity"), record.get("severity")):
        if isinstance(severities, list):
            for s in severities:
                if isinstance(s, dict) and s.get("type") == "Ubuntu":
                    found = normalise_severity(s.get("score"))
                    if found:
                        return found
    return ""


def _ranges(affected: dict[str, Any]) -> list[tuple[str, str, str]] | None:
    """(introduced, fixed, last_affected) of the affected entry's ECOSYSTEM/SEMVER ranges; None if
    it has none (so its ``versions`` list stands)."""
    ranges = affected.get("ranges")
    out: list[tuple[str, str, str]] = []
    usable = False
    for r in ranges if isinstance(ranges, list) else ():
        if not isinstance(r, dict) or r.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        usable = True
        start: str | None = None
        for event in r.get("events") or ():
            if not isinstance(event, dict):
                continue
            if isinstance(event.get("introduced"), str):
                if start is not None:
                    out.append((start, "", ""))
                start = "" if event["introduced"] == "0" else event["introduced"]
            elif isinstance(event.get("fixed"), str) and start is not None:
                out.append((start, event["fixed"], ""))
                start = None
            elif isinstance(event.get("last_affected"), str) and start is not None:
                out.append((start, "", event["last_affected"]))
                start = None
        if start is not None:
            out.append((start, "", ""))
    return out if usable else None


def advisories(record: dict[str, Any]) -> Iterator[Advisory]:
    """The advisories of one OSV record (nothing if it is withdrawn or affects nothing matched)."""
    vuln_id = record.get("id")
    if not isinstance(vuln_id, str) or not vuln_id:
        raise FeedError("OSV record without an id")
    if record.get("withdrawn"):
        return
    aliases = tuple(dict.fromkeys(
        a for key in ("aliases", "upstream") for a in (record.get(key) or ()) if isinstance(a, str) and a != vuln_id))
    summary = summary_of(record.get("summary") or record.get("details"))
    record_score, record_vector = _cvss(record.get("severity"))
    for affected in record.get("affected") or ():
        if not isinstance(affected, dict) or not isinstance(affected.get("package"), dict):
            continue
        ecosystem, name = affected["package"].get("ecosystem"), affected["package"].get("name")
        if not isinstance(ecosystem, str) or not isinstance(name, str) or not name:
            continue
        namespace = namespace_of(ecosystem)
        if namespace is None:
            continue
        package = package_key(namespace, name)
        cvss_score, cvss_vector = _cvss(affected.get("severity"))
        if not cvss_vector:
            cvss_score, cvss_vector = record_score, record_vector
        base = Advisory(vuln_id=vuln_id, namespace=namespace, package=package,
                        severity=_vendor_severity(record, affected), cvss_score=cvss_score, cvss_vector=cvss_vector,
                        summary=summary, aliases=aliases)
        ranges = _ranges(affected)
        if ranges is None:
            versions = affected.get("versions")
            ranges = [(v, "", v) for v in versions if isinstance(v, str)] if isinstance(versions, list) else []
        for introduced, fixed, last_affected in dict.fromkeys(ranges):
            yield dataclasses.replace(base, state="fixed" if fixed else "not_fixed", introduced=introduced,
                                      fixed=fixed, last_affected=last_affected)


def parse_record(data: bytes, *, name: str = "OSV record") -> Iterator[Advisory]:
    """The advisories of one OSV JSON document."""
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FeedError(f"{name}: malformed JSON: {e}") from None
    if not isinstance(record, dict):
        raise FeedError(f"{name}: not an OSV record (a JSON object)")
    try:
        yield from advisories(record)
    except FeedError as e:
        raise FeedError(f"{name}: {e}") from None


def parse_zip(fp: IO[bytes], *, name: str = "all.zip") -> Iterator[Advisory]:
    """The advisories of every ``*.json`` record in an OSV ``all.zip``, read entry by entry."""
    try:
        with zipfile.ZipFile(fp) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                if info.file_size > RECORD_MAX:
                    raise FeedError(f"{name}: {info.filename} is over {RECORD_MAX >> 20} MiB")
                with archive.open(info) as entry:
                    data = entry.read()
                yield from parse_record(data, name=f"{name}: {info.filename}")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as e:
        raise FeedError(f"{name}: not a readable zip archive: {e}") from None


def parse_records(records: Iterable[dict[str, Any]]) -> Iterator[Advisory]:
    """The advisories of OSV records already decoded."""
    for record in records:
        yield from advisories(record)

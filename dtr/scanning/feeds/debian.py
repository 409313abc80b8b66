"""The Debian security tracker's JSON (``/tracker/data/json``) as ``Advisory`` rows.

Shape: ``{source: {vuln_id: {description, releases: {codename: {status, fixed_version, urgency,
nodsa, nodsa_reason, repositories}}}}}``. Read one source package at a time (the document is
~100 MB). Fix states: ``resolved`` with ``fixed_version`` "0" is not affected, with a version
fixed; ``open``/``undetermined`` not fixed, or will not fix when the urgency is ``unimportant`` or
``end-of-life`` or the release team marked it ``no-dsa``/``ignored`` (``postponed`` stays not fixed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import IO, Any

from dtr.scanning.feeds import FeedError, iter_object_items, normalise_severity, summary_of
from dtr.scanning.types import Advisory

#: Debian release codenames and their versions (``sid``/``experimental`` have none: skipped).
CODENAMES = {
    "buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14", "duke": "15",
}
_WONT_FIX_URGENCIES = ("unimportant", "end-of-life")


def _advisory(source: str, vuln_id: str, version: str, release: dict[str, Any], summary: str) -> Advisory | None:
    status = release.get("status")
    urgency = str(release.get("urgency") or "").rstrip("*").strip()
    severity = "" if urgency == "end-of-life" else normalise_severity(urgency)
    base = Advisory(vuln_id=vuln_id, namespace=f"debian:{version}", package=source, severity=severity,
                    summary=summary)
    if status == "resolved":
        fixed = release.get("fixed_version")
        if not isinstance(fixed, str) or not fixed:
            return None
        if fixed == "0":
            return dataclasses.replace(base, state="not_affected")
        return dataclasses.replace(base, state="fixed", fixed=fixed)
    if status in ("open", "undetermined"):
        nodsa = release.get("nodsa")
        reason = release.get("nodsa_reason")
        wont = urgency in _WONT_FIX_URGENCIES or reason == "ignored" or (bool(nodsa) and reason != "postponed")
        return dataclasses.replace(base, state="will_not_fix" if wont else "not_fixed")
    return None


def advisories_of_source(source: str, vulns: Any, *, name: str = "Debian tracker") -> Iterator[Advisory]:
    """The advisories of one source package's entry."""
    if not isinstance(vulns, dict):
        raise FeedError(f"{name}: {source!r} is not an object of vulnerabilities")
    for vuln_id, vuln in vulns.items():
        if not isinstance(vuln, dict) or not isinstance(vuln.get("releases", {}), dict):
            raise FeedError(f"{name}: {source}/{vuln_id} is not a vulnerability entry")
        summary = summary_of(vuln.get("description"))
        for codename, release in (vuln.get("releases") or {}).items():
            version = CODENAMES.get(codename)
            if version is None or not isinstance(release, dict):
                continue
            advisory = _advisory(source, vuln_id, version, release, summary)
            if advisory is not None:
                yield advisory


def parse(fp: IO[bytes], *, name: str = "Debian tracker") -> Iterator[Advisory]:
    """The advisories of a whole tracker document, streamed source package by source package."""
    for source, vulns in iter_object_items(fp, name=name):
        yield from advisories_of_source(source, vulns, name=name)

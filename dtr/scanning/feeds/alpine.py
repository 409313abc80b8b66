"""Alpine's secdb (``v3.N/main.json``, ``community.json``) as ``Advisory`` rows.

Shape: ``{"distroversion": "v3.19", "packages": [{"pkg": {"name": origin, "secfixes":
{version: [vuln ids]}}}]}``. Each listed id is fixed in that version; the version ``"0"`` means not
affected. Namespace ``alpine:3.19``, package the origin (the APKBUILD's name). A secdb file is a
few hundred KB, so it is read whole (up to ``SECDB_MAX``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

from dtr.scanning.feeds import FeedError
from dtr.scanning.types import Advisory

SECDB_MAX = 64 << 20
_ID = re.compile(r"[A-Z][A-Z0-9]*-[0-9][A-Za-z0-9._:-]*")


def namespace_of(distroversion: str) -> str | None:
    m = re.fullmatch(r"v?(\d+\.\d+)", distroversion.strip())
    return f"alpine:{m.group(1)}" if m else None


def parse_document(doc: Any, *, name: str = "Alpine secdb") -> Iterator[Advisory]:
    """The advisories of a decoded secdb document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("packages"), list):
        raise FeedError(f"{name}: not a secdb document (an object with 'packages')")
    namespace = namespace_of(str(doc.get("distroversion") or ""))
    if namespace is None:
        raise FeedError(f"{name}: no usable 'distroversion' ({doc.get('distroversion')!r})")
    for entry in doc["packages"]:
        pkg = entry.get("pkg") if isinstance(entry, dict) else None
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            raise FeedError(f"{name}: a package entry without 'pkg.name'")
        secfixes = pkg.get("secfixes") or {}
        if not isinstance(secfixes, dict):
            raise FeedError(f"{name}: {pkg['name']}: 'secfixes' is not an object")
        for version, ids in secfixes.items():
            for text in ids if isinstance(ids, list) else ():
                # Entries are ids, sometimes several in one string or with a note after them.
                for vuln_id in dict.fromkeys(_ID.findall(text if isinstance(text, str) else "")):
                    if version == "0":
                        yield Advisory(vuln_id=vuln_id, namespace=namespace, package=pkg["name"],
                                       state="not_affected")
                    else:
                        yield Advisory(vuln_id=vuln_id, namespace=namespace, package=pkg["name"],
                                       state="fixed", fixed=version)


def parse(fp: IO[bytes], *, name: str = "Alpine secdb") -> Iterator[Advisory]:
    """The advisories of one secdb file."""
    data = fp.read(SECDB_MAX + 1)
    if len(data) > SECDB_MAX:
        raise FeedError(f"{name}: over {SECDB_MAX >> 20} MiB")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FeedError(f"{name}: malformed JSON: {e}") from None
    yield from parse_document(doc, name=name)

"""The distribution: ``etc/os-release``, else ``usr/lib/os-release``, else a release file
(``etc/centos-release``, ``etc/redhat-release``, ``etc/alpine-release``, ``etc/debian_version``).

Only regular files count: a symbolic link (Debian's and Alpine's ``etc/os-release`` point to
``usr/lib/os-release``) is never followed, so its target is what is read.
"""

from __future__ import annotations

import re
from typing import ClassVar

from dtr.scanning.indexers.base import Indexer
from dtr.scanning.indexers.limits import KiB
from dtr.scanning.types import Distribution, LayerIndex

#: The files read, best first.
SOURCES = (
    "etc/os-release",
    "usr/lib/os-release",
    "etc/centos-release",
    "etc/redhat-release",
    "etc/alpine-release",
    "etc/debian_version",
)
_LIMIT = 64 * KiB

#: ``ID`` for a ``*-release`` line's product name (its leading words).
_RELEASE_IDS = (
    ("red hat enterprise linux", "rhel"),
    ("centos", "centos"),
    ("fedora", "fedora"),
    ("rocky", "rocky"),
    ("almalinux", "almalinux"),
    ("oracle linux", "ol"),
)
_RELEASE_RE = re.compile(r"^(?P<name>.*?)\s+release\s+(?P<version>\d+(?:\.\d+)*)")


def parse_os_release(text: str) -> dict[str, str]:
    """os-release's ``KEY=value`` lines (values unquoted and unescaped as a shell would)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = re.sub(r'\\([\\"$`])', r"\1", value)
        out[key.strip()] = value
    return out


def _from_os_release(text: str, source: str) -> Distribution | None:
    fields = parse_os_release(text)
    if not fields.get("ID"):
        return None
    return Distribution(
        id=fields["ID"],
        version_id=fields.get("VERSION_ID", ""),
        version_codename=fields.get("VERSION_CODENAME", ""),
        pretty_name=fields.get("PRETTY_NAME", ""),
        source=source,
    )


def _from_release_file(text: str, source: str) -> Distribution | None:
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not line:
        return None
    if source == "etc/alpine-release":
        return Distribution(id="alpine", version_id=line, pretty_name=f"Alpine Linux v{line}", source=source)
    if source == "etc/debian_version":
        # "12.5" (a release: os-release's VERSION_ID is the major number) or "bookworm/sid" (testing).
        if re.fullmatch(r"\d+(\.\d+)*", line):
            return Distribution(
                id="debian", version_id=line.split(".")[0], pretty_name=f"Debian GNU/Linux {line}", source=source
            )
        return Distribution(
            id="debian", version_codename=line.split("/")[0], pretty_name=f"Debian {line}", source=source
        )
    m = _RELEASE_RE.match(line)
    if not m:
        return None
    name = m["name"].lower()
    dist_id = next((i for prefix, i in _RELEASE_IDS if name.startswith(prefix)), name.split()[0] if name else "")
    if not dist_id:
        return None
    version = m["version"]
    # CentOS's os-release says the major version only (7, not 7.9.2009); others major.minor.
    version = version.split(".")[0] if dist_id == "centos" else ".".join(version.split(".")[:2])
    return Distribution(id=dist_id, version_id=version, pretty_name=line, source=source)


class OsIndexer(Indexer):
    """Finds the layer's ``Distribution`` (the best source present in the layer)."""

    name: ClassVar[str] = "os"

    def __init__(self) -> None:
        self._found: dict[str, Distribution] = {}

    def wants(self, path: str, size: int, mode: int) -> bool:
        return path in SOURCES and size <= _LIMIT

    def limit(self, path: str) -> int:
        return _LIMIT

    def add(self, path: str, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        parse = _from_os_release if path in SOURCES[:2] else _from_release_file
        dist = parse(text, path)
        if dist is not None:
            self._found[path] = dist

    def finish(self, index: LayerIndex) -> None:
        for source in SOURCES:
            if source in self._found:
                index.distribution = self._found[source]
                return

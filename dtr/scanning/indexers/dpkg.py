"""Debian packages: ``var/lib/dpkg/status``, and distroless's ``var/lib/dpkg/status.d/*`` (each
file a database of its own, usually one stanza, with ``NAME.md5sums`` beside it).

A package counts when its files are on disk: its ``Status`` state is ``installed``,
``half-configured``, ``unpacked`` or ``triggers-*`` (whatever the wanted action, so a package
selected for removal still counts until it is removed); a stanza without ``Status`` (status.d)
counts. ``Source: name (version)`` gives the source package (name and version default to the
binary's). Owned files come from ``var/lib/dpkg/info/NAME[:ARCH].list`` (and status.d's
``NAME.md5sums``), without the leading ``/``. The license is the ``License`` of the
``Files: *`` paragraph of a machine-readable ``usr/share/doc/NAME/copyright`` (DEP-5), if any.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import ClassVar

from dtr.scanning.indexers.base import Indexer
from dtr.scanning.indexers.limits import PACKAGE_DB_LIMIT, MiB, check_db_size, human_size
from dtr.scanning.types import LayerError, LayerIndex, Package

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
INFO = "var/lib/dpkg/info/"
DOC = "usr/share/doc/"
#: Largest copyright file read (a few, boost's, are over 256 KiB).
COPYRIGHT_LIMIT = 1 * MiB
#: Most bytes of owned-file lists read in one layer, all together (Debian with 1,000 packages: ~10 MB).
LISTS_LIMIT = 128 * MiB
#: ``Status`` states (its third word) of a package whose files are on disk.
INSTALLED_STATES = frozenset({"installed", "half-configured", "unpacked", "triggers-awaited", "triggers-pending"})

_PARAGRAPH_SEP = re.compile(r"\n(?:[ \t]*\n)+")
_SOURCE = re.compile(r"^(\S+)(?:\s+\((\S+)\))?")


def paragraphs(text: str) -> Iterator[dict[str, str]]:
    """The deb822 paragraphs of ``text``: field names lower-cased, first lines only (continuation
    lines and comments are skipped)."""
    for para in _PARAGRAPH_SEP.split(text):
        fields: dict[str, str] = {}
        for line in para.split("\n"):
            if not line or line[0] in " \t#":
                continue
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        if fields:
            yield fields


def _installed(fields: dict[str, str]) -> bool:
    status = fields.get("status")
    if status is None:
        return True
    words = status.split()
    return len(words) == 3 and words[2] in INSTALLED_STATES


def dep5_license(text: str) -> str:
    """The ``License`` of the ``Files: *`` paragraph of a DEP-5 copyright file, or ``""``."""
    first = True
    for fields in paragraphs(text):
        if first:
            first = False
            if "copyright-format" not in fields.get("format", "") and "dep5" not in fields.get("format", ""):
                return ""
        if fields.get("files", "").split()[:1] == ["*"]:
            return fields.get("license", "")
    return ""


class DpkgIndexer(Indexer):
    """Finds dpkg's installed packages."""

    name: ClassVar[str] = "dpkg"

    def __init__(self) -> None:
        self._dbs: list[str] = []
        self._packages: list[Package] = []
        #: Owned files by (package, arch) (arch "" when the list's name has none).
        self._owned: dict[tuple[str, str], tuple[str, ...]] = {}
        self._licenses: dict[str, str] = {}
        self._list_bytes = 0

    def wants(self, path: str, size: int, mode: int) -> bool:
        if path == STATUS:
            check_db_size(path, size)
            return True
        if path.startswith(STATUS_D) and "/" not in path[len(STATUS_D) :]:
            if not path.endswith(".md5sums"):
                check_db_size(path, size)
            return True
        if path.startswith(INFO):
            return path.endswith(".list") and "/" not in path[len(INFO) :]
        if path.startswith(DOC) and path.endswith("/copyright"):
            return path.count("/") == 4 and size <= COPYRIGHT_LIMIT
        return False

    def limit(self, path: str) -> int:
        return COPYRIGHT_LIMIT if path.startswith(DOC) else PACKAGE_DB_LIMIT

    def add(self, path: str, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        if path.startswith(DOC):
            license = dep5_license(text)
            if license:
                self._licenses[path[len(DOC) : -len("/copyright")]] = license
        elif path.endswith((".list", ".md5sums")):
            self._list_bytes += len(data)
            if self._list_bytes > LISTS_LIMIT:
                raise LayerError(f"{path}: dpkg's file lists are over {human_size(LISTS_LIMIT)} in all")
            stem = path.rpartition("/")[2].rpartition(".")[0]
            name, _, arch = stem.partition(":")
            if path.endswith(".list"):
                files = (line.lstrip("/") for line in text.split("\n"))
            else:  # "<md5>  <path>"
                files = (line.partition("  ")[2].lstrip("/") for line in text.split("\n"))
            self._owned[(name, arch)] = tuple(f for f in files if f and f != ".")
        else:
            self._dbs.append(path)
            self._packages.extend(self._parse_db(text, path))

    @staticmethod
    def _parse_db(text: str, location: str) -> Iterator[Package]:
        for fields in paragraphs(text):
            name, version = fields.get("package", ""), fields.get("version", "")
            if not name or not version or not _installed(fields):
                continue
            source_name, source_version = name, version
            m = _SOURCE.match(fields.get("source", ""))
            if m:
                source_name = m[1]
                source_version = m[2] or version
            yield Package(
                ecosystem="deb",
                name=name,
                version=version,
                source_name=source_name,
                source_version=source_version,
                arch=fields.get("architecture", ""),
                location=location,
            )

    def finish(self, index: LayerIndex) -> None:
        index.package_dbs.extend(self._dbs)
        for p in self._packages:
            files = self._owned.get((p.name, p.arch)) or self._owned.get((p.name, ""), ())
            license = self._licenses.get(p.name, "")
            if files or license:
                p = dataclasses.replace(p, files=files, license=license)
            index.packages.append(p)

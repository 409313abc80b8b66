"""Alpine packages: ``lib/apk/db/installed`` (one paragraph per package of ``X:value`` lines:
``P`` name, ``V`` version, ``A`` arch, ``L`` license, ``o`` origin; ``F`` a directory and the
``R`` lines after it the files in it)."""

from __future__ import annotations

from typing import ClassVar

from dtr.scanning.indexers.base import Indexer
from dtr.scanning.indexers.limits import PACKAGE_DB_LIMIT, check_db_size
from dtr.scanning.types import LayerIndex, Package

INSTALLED = "lib/apk/db/installed"


def parse_installed(text: str, location: str = INSTALLED) -> list[Package]:
    """The packages of an apk ``installed`` database."""
    packages: list[Package] = []
    fields: dict[str, str] = {}
    files: list[str] = []
    directory = ""

    def flush() -> None:
        name, version = fields.get("P", ""), fields.get("V", "")
        if name and version:
            packages.append(
                Package(
                    ecosystem="apk",
                    name=name,
                    version=version,
                    source_name=fields.get("o") or name,
                    source_version=version,
                    arch=fields.get("A", ""),
                    license=fields.get("L", ""),
                    location=location,
                    files=tuple(files),
                )
            )

    for line in text.split("\n"):
        if not line.strip():
            if fields:
                flush()
            fields, files, directory = {}, [], ""
            continue
        key, sep, value = line.partition(":")
        if not sep or len(key) != 1:
            continue
        if key == "F":
            directory = value.strip("/")
        elif key == "R":
            files.append(f"{directory}/{value}" if directory else value)
        elif key not in fields:
            fields[key] = value
    if fields:
        flush()
    return packages


class ApkIndexer(Indexer):
    """Finds apk's installed packages."""

    name: ClassVar[str] = "apk"

    def __init__(self) -> None:
        self._packages: list[Package] = []
        self._seen = False

    def wants(self, path: str, size: int, mode: int) -> bool:
        if path != INSTALLED:
            return False
        check_db_size(path, size)
        return True

    def limit(self, path: str) -> int:
        return PACKAGE_DB_LIMIT

    def add(self, path: str, data: bytes) -> None:
        self._seen = True
        self._packages = parse_installed(data.decode("utf-8", "replace"), path)

    def finish(self, index: LayerIndex) -> None:
        if self._seen:
            index.package_dbs.append(INSTALLED)
        index.packages.extend(self._packages)

"""An image's software built from its layers' stored rows, never by reading the layers again.

Layers apply in order. Before a layer's own content, its whiteouts delete a path and everything
under it from the earlier layers, and its opaque directories everything under them. The
distribution is the newest layer's (unless a later whiteout deletes its file). An OS package
database location (``var/lib/dpkg/status``, one ``var/lib/dpkg/status.d/NAME``,
``lib/apk/db/installed``, an rpm database) is one unit: the newest layer that holds it replaces
every package an earlier layer had there, so a package removed in a later layer disappears. A
language package is located by its record's file (a whiteout or opaque directory covering it, or
a later layer's packages at the same location, replace it).

A package is attributed to the first layer of the surviving chain of copies of its location that
held it, with that name, version and architecture, in every copy since: a dpkg status rewritten by
every layer keeps each package at the layer that installed (or last upgraded) it.

Language packages that an OS package owns (their record's file, or the ``*.dist-info``,
``*.egg-info`` or npm package directory holding it, is among the OS package's files) are left out:
they are the OS package, whose distribution backports fixes without changing the upstream version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from dtr.scanning.types import OS_ECOSYSTEMS, Distribution, Package


@dataclasses.dataclass(frozen=True, slots=True)
class LayerRows:
    """What is stored for one layer (``models.ScanLayer`` and its ``models.ScanPackage`` rows)."""

    digest: str
    distribution: Distribution | None
    #: (``scan_packages.id``, the package)
    packages: Sequence[tuple[int, Package]]
    whiteouts: Sequence[str]
    opaque_dirs: Sequence[str]
    package_dbs: Sequence[str]


@dataclasses.dataclass(frozen=True, slots=True)
class ImagePackage:
    """A package of the image and the layer that introduced it (the row is that layer's)."""

    package_id: int
    package: Package
    layer_index: int
    layer_digest: str


@dataclasses.dataclass(slots=True)
class _Held:
    layer_index: int
    package_id: int
    package: Package
    #: The newest copy of the package (its file list is the current one).
    current: Package


_Key = tuple[str, str, str, str]
_Location = dict[_Key, _Held]
#: Directories that merged-/usr images (Debian 12, Ubuntu, Fedora...) link into ``usr/``; dpkg
#: lists files under their old names.
_USRMERGE = ("bin/", "sbin/", "lib/", "lib32/", "lib64/", "libx32/")


def compose(layers: Sequence[LayerRows]) -> tuple[Distribution | None, list[ImagePackage]]:
    """The image's distribution and packages (in layer order, then by location and name)."""
    distribution: Distribution | None = None
    held: dict[str, _Location] = {}  # location -> the packages there, OS databases and language records
    for index, layer in enumerate(layers):
        if layer.whiteouts or layer.opaque_dirs:
            gone = _Deletion(layer.whiteouts, layer.opaque_dirs)
            for location in [loc for loc in held if gone.covers(_file_of(loc))]:
                del held[location]
            if distribution is not None and distribution.source and gone.covers(distribution.source):
                distribution = None
        if layer.distribution is not None:
            distribution = layer.distribution
        arrived: dict[str, list[tuple[int, Package]]] = {loc: [] for loc in layer.package_dbs}
        for package_id, package in layer.packages:
            arrived.setdefault(package.location, []).append((package_id, package))
        for location, rows in arrived.items():
            previous = held.get(location, {})
            copy: _Location = {}
            for package_id, package in rows:
                key = (package.ecosystem, package.name, package.version, package.arch)
                before = previous.get(key)
                if before is not None:
                    before.current = package  # the previous copy is dropped: reuse its record
                    copy[key] = before
                else:
                    copy[key] = _Held(index, package_id, package, package)
            held[location] = copy
    entries = [entry for location in held.values() for entry in location.values()]
    language = {id(e): _owner_paths(e.current.location) for e in entries if e.current.ecosystem not in OS_ECOSYSTEMS}
    owned = _owned({p for paths in language.values() for p in paths},
                   (e.current for e in entries if e.current.ecosystem in OS_ECOSYSTEMS)) if language else set()
    result = [ImagePackage(e.package_id, e.package, e.layer_index, layers[e.layer_index].digest)
              for e in entries if id(e) not in language or owned.isdisjoint(language[id(e)])]
    result.sort(key=lambda p: (p.layer_index, p.package.location, p.package.ecosystem, p.package.name,
                               p.package.version, p.package.arch, p.package_id))
    return distribution, result


class _Deletion:
    """One layer's whiteouts and opaque directories, asked about earlier layers' paths."""

    __slots__ = ("dirs", "paths")

    def __init__(self, whiteouts: Sequence[str], opaque_dirs: Sequence[str]) -> None:
        self.paths = frozenset(_norm(p) for p in whiteouts)
        self.dirs = frozenset(_norm(d) for d in opaque_dirs)

    def covers(self, path: str) -> bool:
        if "" in self.dirs or path in self.paths:
            return True
        parent = path
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            if parent in self.paths or parent in self.dirs:
                return True
        return False


def _norm(path: str) -> str:
    return path.strip("/")


def _file_of(location: str) -> str:
    """The file a location is in (a nested archive's location is ``outer.jar!/inner.jar``)."""
    return _norm(location.split("!/", 1)[0])


def _owner_paths(location: str) -> tuple[str, ...]:
    """The paths whose owner owns a language package: its record's file, and the package
    directory holding it for Python's ``*.dist-info``/``*.egg-info`` and npm's ``package.json``."""
    path = _file_of(location)
    parent, _, name = path.rpartition("/")
    if parent and (name == "package.json" or parent.endswith((".dist-info", ".egg-info"))):
        return path, parent
    return (path,)


def _owned(candidates: set[str], packages: Iterable[Package]) -> set[str]:
    """Those of ``candidates`` that the OS ``packages`` own (dpkg lists paths under their
    pre-merged-/usr names: ``lib/...`` owns ``usr/lib/...``)."""
    found = set()
    for package in packages:
        for file in package.files:
            path = file.strip("/")
            if path in candidates:
                found.add(path)
            elif path.startswith(_USRMERGE) and "usr/" + path in candidates:
                found.add("usr/" + path)
    return found

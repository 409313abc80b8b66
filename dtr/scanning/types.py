"""The records the scanner's parts share. Plain frozen dataclasses: no I/O, no database.

Paths inside a layer are normalised: relative to the image root, ``/``-separated, without a
leading ``/`` or ``./`` and without ``.``/``..`` components (``etc/os-release``).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

#: Where a package comes from. OS packages: ``deb``, ``apk``, ``rpm``; language packages: the rest.
Ecosystem = Literal["deb", "apk", "rpm", "pypi", "npm", "gem", "maven", "golang", "cargo"]
OS_ECOSYSTEMS: frozenset[str] = frozenset({"deb", "apk", "rpm"})
LANGUAGE_ECOSYSTEMS: frozenset[str] = frozenset({"pypi", "npm", "gem", "maven", "golang", "cargo"})

#: Fix states of an advisory for a package (the feeds' vocabulary mapped onto four).
FixState = Literal["fixed", "not_fixed", "will_not_fix", "not_affected"]


class LayerError(Exception):
    """The layer cannot be indexed (corrupt or truncated compression, a path escaping the root, a
    package database over its size limit, ...). The message says what and where, for the job log."""


@dataclasses.dataclass(frozen=True, slots=True)
class Distribution:
    """The OS of an image, from ``etc/os-release`` (or ``usr/lib/os-release``, or a fallback file).

    ``id`` and ``version_id`` are os-release's ``ID`` and ``VERSION_ID`` (``debian``/``12``,
    ``alpine``/``3.19.1``, ``ubuntu``/``22.04``, ``rhel``/``8.9``, ``centos``/``7``...).
    """

    id: str
    version_id: str = ""
    version_codename: str = ""
    pretty_name: str = ""
    #: The file it was read from (``etc/os-release``, ``etc/debian_version``...).
    source: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Package:
    """One installed package as its record says.

    ``location`` is the record it was read from: the package database for OS packages
    (``var/lib/dpkg/status``, ``var/lib/dpkg/status.d/base``, ``lib/apk/db/installed``,
    ``var/lib/rpm/rpmdb.sqlite``) and the package's own metadata file for language packages
    (``usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA``,
    ``app/node_modules/lodash/package.json``, the jar's path, the binary's path; a nested jar is
    ``outer.jar!/BOOT-INF/lib/inner.jar``). Image composition treats each OS package database
    location as one unit (the newest layer's copy wins) and a language package's location as a
    file (a whiteout removes it).
    """

    ecosystem: str
    name: str
    version: str
    #: dpkg ``Source`` (name and version), apk origin, rpm source rpm name/version; empty: same as name/version.
    source_name: str = ""
    source_version: str = ""
    arch: str = ""
    #: As the package declares it (SPDX expression or free text); empty if it declares none.
    license: str = ""
    location: str = ""
    #: Files this package owns (OS packages; from dpkg ``info/*.list``, apk ``R:``, rpm file lists).
    files: tuple[str, ...] = ()


@dataclasses.dataclass(slots=True)
class LayerIndex:
    """What one layer holds, as far as the scanner cares."""

    distribution: Distribution | None = None
    packages: list[Package] = dataclasses.field(default_factory=list)
    #: Paths this layer deletes (``dir/.wh.name`` -> ``dir/name``).
    whiteouts: list[str] = dataclasses.field(default_factory=list)
    #: Directories this layer empties (``dir/.wh..wh..opq`` -> ``dir``).
    opaque_dirs: list[str] = dataclasses.field(default_factory=list)
    #: Every OS package database location present in this layer, even one that lists no package
    #: (so it replaces an older layer's copy).
    package_dbs: list[str] = dataclasses.field(default_factory=list)
    #: Regular files seen, and the uncompressed tar size in bytes.
    files: int = 0
    size: int = 0
    #: Things skipped that a reader of the results should know (a binary over the size limit...).
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class Advisory:
    """One vulnerability's effect on one package of one ecosystem namespace, from one feed.

    ``namespace`` is what packages are matched in: ``debian:12``, ``ubuntu:22.04``,
    ``alpine:3.19``, ``rhel:8`` (OS packages: the distribution's id and its major version, or
    major.minor for Alpine), or the language ecosystem (``pypi``, ``npm``, ``maven``, ``gem``,
    ``golang``, ``cargo``). ``package`` is the matching key in that namespace: the source package
    for Debian and Ubuntu, the origin for Alpine, the binary rpm name for RPM distributions, the
    normalised name for language packages (PEP 503 for PyPI, ``group:artifact`` for Maven).

    Affected versions: ``introduced <= v < fixed`` (or ``<= last_affected``); an empty
    ``introduced`` means from the first version; neither ``fixed`` nor ``last_affected``: every
    version from ``introduced`` on. ``state`` ``fixed`` carries ``fixed``; ``not_affected``
    matches nothing.
    """

    vuln_id: str
    namespace: str
    package: str
    state: str = "fixed"
    introduced: str = ""
    fixed: str = ""
    last_affected: str = ""
    #: The vendor's or advisory's own severity, lower-case (``critical``, ``high``, ``medium``,
    #: ``low``, ``negligible``, ``unknown``); empty if none.
    severity: str = ""
    cvss_score: float | None = None
    cvss_vector: str = ""
    summary: str = ""
    aliases: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """A package of an image affected by a vulnerability."""

    vuln_id: str
    package: Package
    namespace: str
    state: str
    fixed_version: str
    #: DTR's band from the CVSS score: ``critical`` (>= 7), ``major`` (4 to < 7), ``minor`` (< 4).
    band: str
    severity: str
    cvss_score: float | None
    summary: str = ""

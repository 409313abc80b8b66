"""Java archives: jar, war, ear, and Jenkins' jpi/hpi plugins, found by extension, and the
archives nested in them.

An archive is a zip whose central directory is at its end, so it is read whole (up to
``max_archive`` bytes; a bigger one is skipped with a warning). For each archive:

- every ``META-INF/maven/<group>/<artifact>/pom.properties`` (``groupId``, ``artifactId``,
  ``version``) is a package (a shaded jar has several);
- the archive's own package is the pom.properties whose artifact is the file name's
  (``commons-io-2.11.0.jar`` -> ``commons-io``), else the one whose version is the manifest's
  (``Implementation-Version``, else ``Bundle-Version``, numeric parts compared); if none is (no
  pom.properties, or only those of bundled classes), ``META-INF/MANIFEST.MF`` and the file name
  make one: artifact from the file name, version from the manifest, else the file name; group
  from ``Bundle-SymbolicName`` when it ends with ``.<artifact>`` (``org.mongodb.bson`` ->
  ``org.mongodb``), else ``Implementation-Vendor-Id`` (often only the vendor's prefix:
  ``org.apache`` for commons-logging), else none. Without a version, nothing;
- ``Bundle-License`` of the manifest is the own package's license;
- every member that is itself an archive (``WEB-INF/lib/*.jar``, ``BOOT-INF/lib/*.jar``, an ear's
  modules, ...) is read the same way, to ``max_depth`` archives deep; its packages' location is
  ``outer.war!/WEB-INF/lib/inner.jar``.

Everything decompressed for one top-level archive counts against ``max_decompressed`` (a zip
bomb): a member whose declared size exceeds what is left is skipped with a warning (zipfile
never inflates past the declared size). A corrupt archive gives a warning, not an error.
Packages: ecosystem ``maven``, name ``group:artifact`` (just ``artifact`` when no group is known).
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib

from dtr.scanning.indexers.base import FileIndexer, MiB
from dtr.scanning.types import Package

ARCHIVE_EXTENSIONS = (".jar", ".war", ".ear", ".jpi", ".hpi")
MAX_ARCHIVE = 200 * MiB
MAX_DECOMPRESSED = 256 * MiB
MAX_DEPTH = 4
#: Most members an archive may list (each costs a ``ZipInfo`` in memory; a big fat jar has ~30k).
MAX_ENTRIES = 500_000
#: Most bytes read of a manifest or pom.properties.
MAX_METADATA = 1 * MiB

_POM_PROPERTIES = re.compile(r"^META-INF/maven/[^/]+/[^/]+/pom\.properties$")
#: ``artifact-version``: the version starts at the last ``-`` or ``_`` followed by a digit
#: (``log4j-1.2-api-2.19.0``, ``guava-31.1-jre``, ``geronimo-annotation_1.3_spec-1.3``).
_FILE_NAME = re.compile(r"^(?P<artifact>.+)[-_](?P<version>\d[\w.+~-]*)$")
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, RuntimeError,
               NotImplementedError, OSError, ValueError, struct.error)


def declared_entries(data: bytes) -> int:
    """The member count an archive's end-of-central-directory record declares (0 if none found)."""
    eocd = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if eocd < 0 or eocd + 22 > len(data):
        return 0
    count = int.from_bytes(data[eocd + 10:eocd + 12], "little")
    locator = eocd - 20
    if count == 0xFFFF and locator >= 0 and data[locator:locator + 4] == b"PK\x06\x07":
        record = int.from_bytes(data[locator + 8:locator + 16], "little")
        if data[record:record + 4] == b"PK\x06\x06":
            count = int.from_bytes(data[record + 32:record + 40], "little")
    return count


class _Budget:
    """What is left of the decompressed-bytes allowance for one top-level archive."""

    def __init__(self, left: int) -> None:
        self.left = left


def parse_properties(text: str) -> dict[str, str]:
    """A Java ``.properties`` file's ``key=value`` (or ``key: value``) lines; comments skipped."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)", line)
        if m:
            props[m.group(1)] = m.group(2).strip()
    return props


def parse_manifest(text: str) -> dict[str, str]:
    """The main section of a ``MANIFEST.MF`` (continuation lines start with one space)."""
    attrs: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            break
        if line.startswith(" ") and last:
            attrs[last] += line[1:]
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            attrs[last] = value.strip()
    return attrs


def split_file_name(base: str) -> tuple[str, str]:
    """(artifact, version) from an archive's file name; version "" if the name has none."""
    stem = base.rsplit(".", 1)[0]
    m = _FILE_NAME.match(stem)
    if m:
        return m.group("artifact"), m.group("version")
    return stem, ""


class JavaIndexer(FileIndexer):
    name = "java"
    what = "Java archive"

    def __init__(self, max_archive: int = MAX_ARCHIVE, max_decompressed: int = MAX_DECOMPRESSED,
                 max_depth: int = MAX_DEPTH) -> None:
        super().__init__()
        self.max_size = max_archive
        self.max_decompressed = max_decompressed
        self.max_depth = max_depth

    def wants(self, path: str, size: int, mode: int) -> bool:
        if not path.lower().endswith(ARCHIVE_EXTENSIONS):
            return False
        return self.fits(path, size)

    def add(self, path: str, data: bytes) -> None:
        self._archive(path, data, 1, _Budget(self.max_decompressed))

    def _read(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, location: str, budget: _Budget,
              cap: int) -> bytes | None:
        """A member's bytes, if its declared size fits ``cap`` and the budget; else a warning."""
        what = f"{location}!/{info.filename}"
        if info.file_size > cap:
            self._warnings.append(f"{what}: {info.file_size} bytes over the {cap} byte limit, not read")
            return None
        if info.file_size > budget.left:
            self._warnings.append(f"{what}: {info.file_size} bytes would pass the "
                                  f"{self.max_decompressed} byte limit of what one archive may "
                                  "inflate to, not read")
            return None
        budget.left -= info.file_size
        return zf.read(info)

    def _archive(self, location: str, data: bytes, depth: int, budget: _Budget) -> None:
        entries = declared_entries(data)
        if entries > MAX_ENTRIES:
            self._warnings.append(f"{location}: zip archive of {entries} members, over the "
                                  f"{MAX_ENTRIES} member limit, not read")
            return
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except _ZIP_ERRORS as e:
            self._warnings.append(f"{location}: not a readable zip archive ({e}), skipped")
            return
        with zf:
            try:
                infos = zf.infolist()
                poms: list[dict[str, str]] = []
                manifest: dict[str, str] = {}
                for info in infos:
                    if _POM_PROPERTIES.match(info.filename):
                        raw = self._read(zf, info, location, budget, MAX_METADATA)
                        if raw is not None:
                            poms.append(parse_properties(raw.decode("utf-8", "replace")))
                    elif info.filename.upper() == "META-INF/MANIFEST.MF" and not manifest:
                        raw = self._read(zf, info, location, budget, MAX_METADATA)
                        if raw is not None:
                            manifest = parse_manifest(raw.decode("utf-8", "replace"))
            except _ZIP_ERRORS as e:
                self._warnings.append(f"{location}: corrupt zip archive ({e}), skipped")
                return
            self._packages.extend(self._packages_of(location, poms, manifest))
            for info in infos:
                if info.is_dir() or not info.filename.lower().endswith(ARCHIVE_EXTENSIONS):
                    continue
                inner = f"{location}!/{info.filename}"
                if depth >= self.max_depth:
                    self._warnings.append(f"{inner}: archive nested deeper than {self.max_depth} "
                                          "archives, not read")
                    continue
                try:
                    nested = self._read(zf, info, location, budget, self.max_size)
                except _ZIP_ERRORS as e:
                    self._warnings.append(f"{inner}: corrupt member ({e}), skipped")
                    continue
                if nested is not None:
                    self._archive(inner, nested, depth + 1, budget)
                    del nested  # before the next member is read: one nested archive at a time

    @staticmethod
    def _packages_of(location: str, poms: list[dict[str, str]],
                     manifest: dict[str, str]) -> list[Package]:
        file_artifact, file_version = split_file_name(location.rsplit("/", 1)[-1])
        manifest_version = manifest.get("Implementation-Version") or \
            manifest.get("Bundle-Version") or file_version
        found: list[tuple[str, str, str]] = []  # (group, artifact, version)
        for props in poms:
            group, artifact = props.get("groupId", ""), props.get("artifactId", "")
            version = props.get("version", "")
            if group and artifact and version and "${" not in version:
                found.append((group, artifact, version))
        # The archive's own package: the pom.properties named like the file or carrying the
        # manifest's version; if none does (a jar that bundles others' classes and pom files),
        # the one the manifest and file name describe.
        own = next((i for i, (_, artifact, _) in enumerate(found) if artifact == file_artifact),
                   -1)
        if own < 0:
            own = next((i for i, (_, _, version) in enumerate(found)
                        if not manifest_version or same_version(version, manifest_version)), -1)
        if own < 0 and file_artifact and manifest_version:
            symbolic = manifest.get("Bundle-SymbolicName", "").split(";")[0].strip()
            if symbolic.endswith("." + file_artifact):
                group = symbolic[:-len(file_artifact) - 1]
            else:
                group = manifest.get("Implementation-Vendor-Id", "")
            own = len(found)
            found.append((group, file_artifact, manifest_version))
        license = manifest.get("Bundle-License", "").split(";")[0].strip()
        return [Package(ecosystem="maven", name=f"{group}:{artifact}" if group else artifact,
                        version=version, license=license if i == own else "", location=location)
                for i, (group, artifact, version) in enumerate(found)]


def same_version(a: str, b: str) -> bool:
    """Whether two versions agree on their numeric part (``31.1-jre`` and OSGi's ``31.1.0.jre``)."""
    def numeric(v: str) -> tuple[int, ...]:
        m = re.match(r"\d+(?:\.\d+)*", v)
        parts = [int(x) for x in m.group().split(".")] if m else []
        while parts and parts[-1] == 0:
            parts.pop()
        return tuple(parts)

    return a == b or (numeric(a) != () and numeric(a) == numeric(b))

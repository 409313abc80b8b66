"""Go binaries: the build info the Go linker embeds (``go version -m`` shows it).

Any regular file with an exec bit, up to ``MAX_BINARY`` bytes, that is ELF (Mach-O and PE are not
read: images are Linux). The build info is in the ``.go.buildinfo`` section (or, in a file
without section headers, in the first writable, not executable load segment, as
``debug/buildinfo`` does): a 32-byte header starting with ``\\xff Go buildinf:`` (16-byte
aligned), then, in the format of Go >= 1.18 (flags bit ``0x2``), two varint-length strings: the Go
version and the module info (``path``, ``mod``, ``dep`` and ``=>`` lines between 16-byte
sentinels). Older binaries keep pointers to the strings instead; they are skipped with a warning.

Reported, ecosystem ``golang``, location the binary's path: the main module (``mod``) unless its
version is ``(devel)`` (built from a source tree); every ``dep`` (a ``=>`` replacement replaces
its path and version; a replacement by a local directory, version ``(devel)``, is left out: the
code is not the module's release); and the standard library as ``stdlib`` with the Go version in
module form (``go1.19.8`` -> ``v1.19.8``, ``go1.21rc2`` -> ``v1.21.0-rc.2``).
"""

from __future__ import annotations

import re

from dtr.scanning.indexers.elf import Elf, ElfIndexer
from dtr.scanning.types import Package

BUILDINFO_MAGIC = b"\xff Go buildinf:"
HEADER_SIZE = 32
FLAG_INLINE = 0x2


class GoBuildInfoError(ValueError):
    """Build info that cannot be decoded."""


def _uvarint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 64:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    raise GoBuildInfoError("bad varint")


def find_buildinfo(data: bytes, start: int, end: int) -> int:
    """Where the build info header is in ``data[start:end]`` (16-byte aligned from ``start``), or
    -1. Searched in place: a data segment can be megabytes."""
    pos = start
    while True:
        i = data.find(BUILDINFO_MAGIC, pos, end)
        if i < 0:
            return -1
        if (i - start) % 16 == 0 and end - i >= HEADER_SIZE:
            return i
        pos = i + 1


def read_buildinfo(data: bytes, at: int, end: int) -> tuple[str, str]:
    """(Go version, module info) from the build info header at ``data[at]`` (its region ending at
    ``end``), in the inline (Go >= 1.18) format. Raises ``GoBuildInfoError`` for the older pointer
    format or strings past the region."""
    flags = data[at + 15]
    if not flags & FLAG_INLINE:
        raise GoBuildInfoError("build info in the pre-Go 1.18 pointer format is not read")
    strings = []
    pos = at + HEADER_SIZE
    for _ in range(2):
        n, pos = _uvarint(data, pos, end)
        if pos + n > end:
            raise GoBuildInfoError("build info string past the end of its section")
        strings.append(data[pos:pos + n].decode("utf-8", "replace"))
        pos += n
    version, mod = strings
    # The module info sits between two 16-byte sentinels (cmd/go's infoStart/infoEnd).
    mod = mod[16:-16] if len(mod) >= 33 and mod[-17] == "\n" else ""
    return version, mod


def stdlib_version(go_version: str) -> str:
    """``go1.19.8`` -> ``v1.19.8``; ``go1.21`` -> ``v1.21.0``; ``go1.21rc2`` -> ``v1.21.0-rc.2``;
    ``go1.22.1 X:boringcrypto`` -> ``v1.22.1``; "" for what is not a release (``devel ...``)."""
    m = re.match(r"go(\d+)\.(\d+)(?:\.(\d+))?(?:(rc|beta)(\d+))?(?![\w.])", go_version)
    if not m:
        return ""
    major, minor, patch, pre, pre_n = m.groups()
    version = f"v{major}.{minor}.{patch or 0}"
    return f"{version}-{pre}.{pre_n}" if pre else version


def modules(modinfo: str) -> list[tuple[str, str]]:
    """(path, version) of the main module and the dependencies, replacements applied; those
    without a version (``(devel)``: a main module built from source, or a replacement by a local
    directory) are left out."""
    found: list[tuple[str, str]] = []
    for line in modinfo.splitlines():
        fields = line.split("\t")
        if fields[0] in ("mod", "dep") and len(fields) >= 3:
            found.append((fields[1], fields[2]))
        elif fields[0] == "=>" and len(fields) >= 3 and found:
            found[-1] = (fields[1], fields[2])
    return [(path, version) for path, version in found if version and version != "(devel)"]


class GoIndexer(ElfIndexer):
    name = "go"
    looks_for = "Go build info"
    decode_error = GoBuildInfoError

    def read_elf(self, path: str, data: bytes, elf: Elf) -> list[Package]:
        # No section headers (stripped by sstrip): the data segment, as debug/buildinfo does.
        region = elf.section(".go.buildinfo") or (elf.data_segment() if not elf.sections else None)
        if region is None:
            return []
        at = find_buildinfo(data, region.offset, region.end)
        if at < 0:
            return []
        go_version, modinfo = read_buildinfo(data, at, region.end)
        found = [Package(ecosystem="golang", name=mod_path, version=version, location=path)
                 for mod_path, version in modules(modinfo)]
        std = stdlib_version(go_version)
        if std:
            found.append(Package(ecosystem="golang", name="stdlib", version=std, location=path))
        return found

"""Rust binaries built with cargo-auditable: the dependency list in the ELF section ``.dep-v0``,
zlib-compressed JSON ``{"packages": [{"name", "version", "source", "kind"?, "dependencies"?,
"root"?}], "format"?}``.

Any regular file with an exec bit, up to ``MAX_BINARY`` bytes, that is ELF with that section.
Reported, ecosystem ``cargo``, location the binary's path: every package of kind ``runtime``
(the default when ``kind`` is absent), the root crate included; ``build`` packages (build scripts,
proc-macros and their dependencies) are left out, as Trivy and Syft do: their code is not in the
binary. Binaries without the section give nothing; a section that cannot be decoded gives a
warning (a binary is not a package database).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from dtr.scanning.indexers.base import MiB
from dtr.scanning.indexers.elf import Elf, ElfIndexer
from dtr.scanning.types import Package

SECTION = ".dep-v0"
#: Most bytes the section's JSON may inflate to (cargo-auditable's own reader uses 8 MiB).
MAX_JSON = 8 * MiB


class AuditDataError(ValueError):
    """A ``.dep-v0`` section that is not cargo-auditable's format."""


def parse_audit_data(compressed: bytes) -> list[tuple[str, str]]:
    """(name, version) of the runtime packages in a ``.dep-v0`` section's bytes."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, MAX_JSON)
    except zlib.error as e:
        raise AuditDataError(f"not zlib data ({e})") from None
    if inflater.unconsumed_tail:
        raise AuditDataError(f"dependency list over {MAX_JSON} bytes")
    try:
        doc: Any = json.loads(raw)
    except ValueError as e:
        raise AuditDataError(f"not JSON ({e})") from None
    packages = doc.get("packages") if isinstance(doc, dict) else None
    if not isinstance(packages, list):
        raise AuditDataError("no packages list")
    found = []
    for p in packages:
        if not isinstance(p, dict):
            raise AuditDataError("a package is not an object")
        name, version = p.get("name"), p.get("version")
        if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
            raise AuditDataError("a package without name or version")
        if p.get("kind", "runtime") == "runtime":
            found.append((name, version))
    return found


class RustIndexer(ElfIndexer):
    name = "rust"
    looks_for = "cargo-auditable data"
    decode_error = AuditDataError

    def read_elf(self, path: str, data: bytes, elf: Elf) -> list[Package]:
        section = elf.section_data(SECTION)
        if section is None:
            return []
        return [Package(ecosystem="cargo", name=name, version=version, location=path)
                for name, version in parse_audit_data(section)]

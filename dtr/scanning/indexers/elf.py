"""A minimal ELF reader for the binary indexers (Go build info, cargo-auditable data): the
section and program headers of a whole file in memory, 32- or 64-bit, either byte order.

``parse_elf`` returns None for a file that is not ELF and raises ``ElfError`` for an ELF file
whose headers point outside it. ``ElfIndexer`` is what those indexers share: which files they
hold (executables up to ``MAX_BINARY`` bytes that start as ELF) and how they report.
"""

from __future__ import annotations

import abc
import dataclasses
import struct
from typing import ClassVar

from dtr.scanning.indexers.base import FileIndexer, MiB
from dtr.scanning.types import Package

#: The largest executable the binary indexers hold (it is read whole: section headers come last).
MAX_BINARY = 256 * MiB
ELF_MAGIC = b"\x7fELF"
SHT_NOBITS = 8
SHN_XINDEX = 0xFFFF
PT_LOAD = 1
PF_X = 1
PF_W = 2


class ElfError(ValueError):
    """An ELF file whose headers are inconsistent (truncated, pointing outside the file)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Section:
    name: str
    type: int
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    type: int
    flags: int
    offset: int
    filesz: int

    @property
    def end(self) -> int:
        return self.offset + self.filesz


@dataclasses.dataclass(frozen=True, slots=True)
class Elf:
    data: bytes
    sections: tuple[Section, ...]
    segments: tuple[Segment, ...]

    def section(self, name: str) -> Section | None:
        """The first section called ``name`` that occupies file space; None if there is none."""
        return next((s for s in self.sections if s.name == name and s.type != SHT_NOBITS), None)

    def section_data(self, name: str) -> bytes | None:
        """A copy of the file bytes of ``section(name)``."""
        s = self.section(name)
        return None if s is None else self.data[s.offset:s.end]

    def data_segment(self) -> Segment | None:
        """The first writable, not executable ``PT_LOAD`` segment (its file part)."""
        return next((p for p in self.segments
                     if p.type == PT_LOAD and p.flags & (PF_W | PF_X) == PF_W), None)


def parse_elf(data: bytes) -> Elf | None:
    """The headers of the ELF image ``data``, or None if ``data`` is not ELF."""
    if len(data) < 52 or data[:4] != ELF_MAGIC:
        return None
    ei_class, ei_data = data[4], data[5]
    if ei_class not in (1, 2) or ei_data not in (1, 2):
        raise ElfError(f"unknown ELF class {ei_class} or byte order {ei_data}")
    is64 = ei_class == 2
    e = "<" if ei_data == 1 else ">"
    if is64:
        if len(data) < 64:
            raise ElfError("truncated ELF header")
        phoff, shoff = struct.unpack_from(e + "QQ", data, 32)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(e + "HHHHH", data, 54)
    else:
        phoff, shoff = struct.unpack_from(e + "II", data, 28)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(e + "HHHHH", data, 42)

    raw_sections: list[tuple[int, int, int, int, int]] = []  # name offset, type, offset, size, link
    if shoff:
        entry = e + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII")
        if shentsize < struct.calcsize(entry):
            raise ElfError(f"ELF section header entry size {shentsize} too small")

        def section_header(i: int) -> tuple[int, int, int, int, int]:
            pos = shoff + i * shentsize
            if pos + shentsize > len(data):
                raise ElfError("ELF section headers past the end of the file")
            f = struct.unpack_from(entry, data, pos)
            return f[0], f[1], f[4], f[5], f[6]

        if shnum == 0:  # more than 0xff00 sections: the count is in section 0's size
            shnum = section_header(0)[3]
        if shnum * shentsize > len(data):
            raise ElfError(f"ELF section count {shnum} past the end of the file")
        raw_sections = [section_header(i) for i in range(shnum)]
        if shstrndx == SHN_XINDEX and raw_sections:
            shstrndx = raw_sections[0][4]

    names = b""
    if 0 < shstrndx < len(raw_sections):
        _, _, off, size, _ = raw_sections[shstrndx]
        names = data[off:off + size]
    sections = []
    for name_off, sh_type, off, size, _ in raw_sections:
        if sh_type != SHT_NOBITS and off + size > len(data):
            raise ElfError(f"ELF section at {off} (+{size}) past the end of the file")
        end = names.find(b"\0", name_off)
        name = names[name_off:end if end >= 0 else len(names)].decode("latin-1")
        sections.append(Section(name, sh_type, off, size))

    segments = []
    if phoff:
        pentry = e + ("IIQQQQQQ" if is64 else "IIIIIIII")
        if phentsize < struct.calcsize(pentry) or phoff + phnum * phentsize > len(data):
            raise ElfError("ELF program headers past the end of the file")
        for i in range(phnum):
            f = struct.unpack_from(pentry, data, phoff + i * phentsize)
            if is64:
                p_type, p_flags, p_offset, p_filesz = f[0], f[1], f[2], f[5]
            else:
                p_type, p_offset, p_filesz, p_flags = f[0], f[1], f[4], f[6]
            if p_type == PT_LOAD and p_offset + p_filesz > len(data):
                raise ElfError(f"ELF segment at {p_offset} (+{p_filesz}) past the end of the file")
            segments.append(Segment(p_type, p_flags, p_offset, p_filesz))
    return Elf(data, tuple(sections), tuple(segments))


class ElfIndexer(FileIndexer):
    """An indexer of executables: wants files with an exec bit up to ``MAX_BINARY`` bytes (a
    warning names those over it), holds only those whose first bytes are ELF, and hands each one
    parsed to ``read_elf``."""

    #: What it searches executables for, for its warnings ("Go build info").
    looks_for: ClassVar[str]
    what = "executable"
    max_size = MAX_BINARY
    #: The error of records that cannot be decoded (besides ``ElfError``): a warning each.
    decode_error: ClassVar[type[ValueError]]

    def wants(self, path: str, size: int, mode: int) -> bool:
        if not mode & 0o111 or size < 64:
            return False
        return self.fits(path, size, f"not searched for {self.looks_for}")

    def accepts(self, path: str, head: bytes) -> bool:
        return head.startswith(ELF_MAGIC)  # only ELF files are held and searched

    def add(self, path: str, data: bytes) -> None:
        try:
            elf = parse_elf(data)
            if elf is not None:
                self._packages.extend(self.read_elf(path, data, elf))
        except (ElfError, self.decode_error) as e:
            self._warnings.append(f"{path}: {self.looks_for} not read: {e}")

    @abc.abstractmethod
    def read_elf(self, path: str, data: bytes, elf: Elf) -> list[Package]:
        """The packages ``elf`` (the parsed ``data`` of ``path``) records; ``decode_error``
        for records that cannot be decoded (a warning, not a layer error: a binary is no package
        database)."""


"""RPM package databases, read in pure Python (no rpm library).

The databases live in ``var/lib/rpm/``, ``usr/lib/sysimage/rpm/`` or ``usr/share/rpm/``, in one of
three formats, each a store of rpm header blobs (one per installed package):

- ``rpmdb.sqlite`` (rpm >= 4.16): table ``Packages(hnum, blob)``, read with the stdlib ``sqlite3``
  from memory (never a file);
- ``Packages``: a BerkeleyDB hash database (rpm < 4.16), pages walked bucket by bucket;
- ``Packages.db``: rpm's own "ndb" format (SUSE): slot pages pointing at checksummed blob areas.

When one layer holds more than one format in the same directory (a leftover of a conversion), the
newest format is the one reported (sqlite, then ndb, then BerkeleyDB); every database file is
still listed in ``LayerIndex.package_dbs``. ``gpg-pubkey`` pseudo-packages are skipped.

Every count read from a file is checked against the bytes there before it is used, page chains
are followed at most once per page, and any inconsistency raises ``LayerError`` naming the file.
"""

from __future__ import annotations

import posixpath
import sqlite3
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import cast

from dtr.scanning.indexers.base import Indexer, MiB
from dtr.scanning.types import LayerError, LayerIndex, Package

#: The largest database read (a full RHEL install is ~100-200 MiB).
MAX_DB_SIZE = 512 * MiB

DB_DIRS = ("var/lib/rpm", "usr/lib/sysimage/rpm", "usr/share/rpm")
#: File name -> format, in order of preference (newest first).
DB_FORMATS = {"rpmdb.sqlite": "sqlite", "Packages.db": "ndb", "Packages": "bdb"}
DB_PATHS = frozenset(f"{d}/{f}" for d in DB_DIRS for f in DB_FORMATS)


class _Corrupt(Exception):
    """A database or header inconsistency; the indexer turns it into a ``LayerError``."""


# --- rpm headers -------------------------------------------------------------------------------

TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH = 1000, 1001, 1002, 1003
TAG_LICENSE, TAG_ARCH, TAG_OLDFILENAMES, TAG_SOURCERPM = 1014, 1022, 1027, 1044
TAG_DIRINDEXES, TAG_BASENAMES, TAG_DIRNAMES = 1116, 1117, 1118
WANTED_TAGS = frozenset({TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_LICENSE, TAG_ARCH,
                         TAG_OLDFILENAMES, TAG_SOURCERPM, TAG_DIRINDEXES, TAG_BASENAMES, TAG_DIRNAMES})
TYPE_INT32, TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING = 4, 6, 8, 9
#: rpm's own bounds on a header (``hdrblobVerifyInfo``).
MAX_INDEX_ENTRIES, MAX_DATA_SIZE = 0xFFFF, 256 * MiB

_HEADER_START = struct.Struct(">II")
_INDEX_ENTRY = struct.Struct(">IIiI")

TagValue = str | list[str] | list[int]


def parse_header(blob: bytes) -> dict[int, TagValue]:
    """The wanted tags of an rpm header blob (index entry count, data size, 16-byte index
    entries ``(tag, type, offset, count)``, data store; big-endian). Strings decode as UTF-8
    (undecodable bytes replaced); other tags and types are ignored. A later entry of the same
    tag wins (rpm's "dribble" entries override the immutable region)."""
    if len(blob) < 8:
        raise _Corrupt(f"header of {len(blob)} bytes")
    il, dl = _HEADER_START.unpack_from(blob)
    if not 0 < il <= MAX_INDEX_ENTRIES or dl > MAX_DATA_SIZE or 8 + 16 * il + dl != len(blob):
        raise _Corrupt(f"header counts ({il} entries, {dl} data bytes) do not match its {len(blob)} bytes")
    start = 8 + 16 * il
    tags: dict[int, TagValue] = {}
    for i in range(il):
        tag, typ, offset, count = _INDEX_ENTRY.unpack_from(blob, 8 + 16 * i)
        if tag not in WANTED_TAGS or typ not in (TYPE_INT32, TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING):
            continue
        if not 0 <= offset < dl or count == 0:
            raise _Corrupt(f"tag {tag}: offset {offset}, count {count} outside {dl} data bytes")
        pos = start + offset
        if typ == TYPE_INT32:
            if offset + 4 * count > dl:
                raise _Corrupt(f"tag {tag}: {count} integers past the data end")
            tags[tag] = list(struct.unpack_from(f">{count}I", blob, pos))
            continue
        if typ == TYPE_STRING:
            count = 1
        elif count > dl - offset:
            raise _Corrupt(f"tag {tag}: {count} strings in {dl - offset} bytes")
        end = start + dl
        parts = blob[pos:end].split(b"\0", count)
        if len(parts) <= count:
            raise _Corrupt(f"tag {tag}: unterminated string")
        strings = [p.decode("utf-8", "replace") for p in parts[:count]]
        tags[tag] = strings[0] if typ in (TYPE_STRING, TYPE_I18NSTRING) else strings
    return tags


def _string(tags: dict[int, TagValue], tag: int) -> str:
    value = tags.get(tag, "")
    if isinstance(value, list):
        raise _Corrupt(f"tag {tag} is not a string")
    return value


def _strings(tags: dict[int, TagValue], tag: int) -> list[str]:
    value = tags.get(tag, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Corrupt(f"tag {tag} is not a string array")
    return cast(list[str], value)


def _ints(tags: dict[int, TagValue], tag: int) -> list[int]:
    value = tags.get(tag, [])
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise _Corrupt(f"tag {tag} is not an integer array")
    return cast(list[int], value)


def split_source_rpm(srpm: str) -> tuple[str, str]:
    """``bash-4.2.46-34.el7.src.rpm`` -> ``("bash", "4.2.46-34.el7")``; ``("", "")`` if not of that form."""
    for suffix in (".src.rpm", ".nosrc.rpm"):
        if srpm.endswith(suffix):
            parts = srpm[: -len(suffix)].rsplit("-", 2)
            if len(parts) == 3 and all(parts):
                return parts[0], f"{parts[1]}-{parts[2]}"
    return "", ""


def header_package(blob: bytes, location: str) -> Package | None:
    """The package an installed-package header describes; None for a ``gpg-pubkey`` entry.

    ``version`` is ``[epoch:]version-release`` (no epoch when it is absent or 0); the source
    version carries the binary package's epoch (a source rpm's file name has none, and rpm gives
    subpackages their source's epoch).
    """
    tags = parse_header(blob)
    name = _string(tags, TAG_NAME)
    if not name:
        raise _Corrupt("no name")
    if name == "gpg-pubkey":
        return None
    version, release = _string(tags, TAG_VERSION), _string(tags, TAG_RELEASE)
    if not version or not release:
        raise _Corrupt(f"{name}: no version or release")
    epochs = _ints(tags, TAG_EPOCH)
    prefix = f"{epochs[0]}:" if epochs and epochs[0] else ""
    version = f"{prefix}{version}-{release}"
    source_name, source_version = split_source_rpm(_string(tags, TAG_SOURCERPM))
    return Package(
        ecosystem="rpm", name=name, version=version, arch=_string(tags, TAG_ARCH),
        source_name=source_name, source_version=f"{prefix}{source_version}" if source_version else "",
        license=_string(tags, TAG_LICENSE), location=location, files=_files(tags),
    )


def _files(tags: dict[int, TagValue]) -> tuple[str, ...]:
    """The owned paths, without the leading ``/``: DIRNAMES[DIRINDEXES[i]] + BASENAMES[i], or OLDFILENAMES."""
    basenames = _strings(tags, TAG_BASENAMES)
    if not basenames:
        return tuple(p.lstrip("/") for p in _strings(tags, TAG_OLDFILENAMES))
    dirnames, dirindexes = _strings(tags, TAG_DIRNAMES), _ints(tags, TAG_DIRINDEXES)
    if len(dirindexes) != len(basenames) or any(i >= len(dirnames) for i in dirindexes):
        raise _Corrupt("file list: directory indexes do not match the names")
    return tuple((dirnames[i] + b).lstrip("/") for i, b in zip(dirindexes, basenames, strict=True))


# --- rpmdb.sqlite ------------------------------------------------------------------------------


def sqlite_blobs(data: bytes) -> Iterator[bytes]:
    """The header blobs of an ``rpmdb.sqlite`` image, by ``hnum``."""
    if not data.startswith(b"SQLite format 3\0") or len(data) < 100:
        raise _Corrupt("not an SQLite database")
    if data[18:20] == b"\2\2":
        # WAL mode: an in-memory copy cannot open a write-ahead log; rpm checkpoints it on close.
        data = data[:18] + b"\1\1" + data[20:]
    con = sqlite3.connect(":memory:")
    try:
        con.deserialize(data)
        # A hostile schema must not make a query build huge values or loop: Packages must be a
        # plain table, and no value may exceed the file's size.
        con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max(len(data), 1 << 20))
        kind = con.execute("SELECT type FROM sqlite_master WHERE name = 'Packages'").fetchone()
        if kind != ("table",):
            raise _Corrupt("no Packages table")
        for (blob,) in con.execute("SELECT blob FROM Packages ORDER BY hnum"):
            if not isinstance(blob, bytes):
                raise _Corrupt(f"a Packages row holds a {type(blob).__name__}, not a blob")
            yield blob
    except sqlite3.Error as e:
        raise _Corrupt(f"SQLite: {e}") from None
    finally:
        con.close()


# --- BerkeleyDB hash (Packages) ----------------------------------------------------------------

_BDB_HASH_MAGIC = 0x061561
_BDB_PAGE_HEADER = 26
_P_OVERFLOW, _P_HASH_UNSORTED, _P_HASH = 7, 2, 13
_H_KEYDATA, _H_OFFPAGE = 1, 3


def bdb_blobs(data: bytes) -> Iterator[bytes]:
    """The values of a BerkeleyDB hash database (rpm's ``Packages``: key = header number, 4
    bytes; value = header blob), bucket by bucket. Either byte order; no encryption or page
    checksums (rpm never uses them). Record 0 (rpm's next-header-number counter) is skipped."""
    if len(data) < 512:
        raise _Corrupt(f"{len(data)} bytes: shorter than a metadata page")
    for order in "<>":
        if struct.unpack_from(order + "I", data, 12)[0] == _BDB_HASH_MAGIC:
            break
    else:
        raise _Corrupt("not a BerkeleyDB hash database")
    version, pagesize = struct.unpack_from(order + "II", data, 16)
    encrypt_alg, metaflags = data[24], data[26]
    last_pgno = struct.unpack_from(order + "I", data, 32)[0]
    max_bucket = struct.unpack_from(order + "I", data, 72)[0]
    spares = struct.unpack_from(order + "32I", data, 96)
    if not 8 <= version <= 10:
        raise _Corrupt(f"unsupported hash version {version}")
    if pagesize not in {512 << i for i in range(8)}:
        raise _Corrupt(f"page size {pagesize}")
    if encrypt_alg or metaflags & 1:
        raise _Corrupt("encrypted or checksummed pages are not supported")
    if (last_pgno + 1) * pagesize > len(data):
        raise _Corrupt(f"truncated: {last_pgno + 1} pages of {pagesize} bytes in {len(data)} bytes")
    if max_bucket > last_pgno:
        raise _Corrupt(f"{max_bucket + 1} buckets in {last_pgno + 1} pages")
    u16, u32 = struct.Struct(order + "H"), struct.Struct(order + "I")

    def page(pgno: int, types: tuple[int, ...]) -> memoryview:
        if not 0 < pgno <= last_pgno:
            raise _Corrupt(f"page number {pgno} outside 1..{last_pgno}")
        p = memoryview(data)[pgno * pagesize : (pgno + 1) * pagesize]
        if u32.unpack_from(p, 8)[0] != pgno or p[25] not in types:
            raise _Corrupt(f"page {pgno}: bad header (type {p[25]})")
        return p

    def item(p: memoryview, pgno: int, offsets: list[int], i: int) -> bytes:
        off, end = offsets[i], pagesize if i == 0 else offsets[i - 1]
        if not _BDB_PAGE_HEADER + 2 * len(offsets) <= off < end <= pagesize:
            raise _Corrupt(f"page {pgno}: item {i} at {off}..{end}")
        if p[off] == _H_KEYDATA:
            return bytes(p[off + 1 : end])
        if p[off] == _H_OFFPAGE and end - off == 12:
            return overflow(u32.unpack_from(p, off + 4)[0], u32.unpack_from(p, off + 8)[0])
        raise _Corrupt(f"page {pgno}: item {i} of unsupported type {p[off]}")

    def overflow(pgno: int, length: int) -> bytes:
        if not 0 < length <= len(data):
            raise _Corrupt(f"overflow item of {length} bytes")
        parts: list[memoryview] = []
        got, seen = 0, set()
        while got < length:
            if pgno in seen:
                raise _Corrupt(f"overflow page cycle at page {pgno}")
            seen.add(pgno)
            p = page(pgno, (_P_OVERFLOW,))
            size = u16.unpack_from(p, 22)[0]
            if not 0 < size <= min(pagesize - _BDB_PAGE_HEADER, length - got):
                raise _Corrupt(f"overflow page {pgno}: {size} bytes")
            parts.append(p[_BDB_PAGE_HEADER : _BDB_PAGE_HEADER + size])
            got += size
            pgno = u32.unpack_from(p, 16)[0]
        return b"".join(parts)

    seen: set[int] = set()
    for bucket in range(max_bucket + 1):
        pgno = bucket + spares[bucket.bit_length()]
        while pgno:
            if pgno in seen:
                raise _Corrupt(f"hash page cycle at page {pgno}")
            seen.add(pgno)
            p = page(pgno, (_P_HASH, _P_HASH_UNSORTED))
            entries = u16.unpack_from(p, 20)[0]
            if entries % 2 or _BDB_PAGE_HEADER + 2 * entries > pagesize:
                raise _Corrupt(f"page {pgno}: {entries} entries")
            offsets = list(struct.unpack_from(f"{order}{entries}H", p, _BDB_PAGE_HEADER))
            for i in range(0, entries, 2):
                if item(p, pgno, offsets, i) != b"\0\0\0\0":
                    yield item(p, pgno, offsets, i + 1)
            pgno = u32.unpack_from(p, 16)[0]


# --- ndb (Packages.db) -------------------------------------------------------------------------

_NDB_MAGIC, _NDB_SLOT_MAGIC = b"RpmP", b"Slot"
_NDB_BLOB_HEAD, _NDB_BLOB_TAIL = b"BlbS", b"BlbE"
_NDB_PAGE, _NDB_BLOCK = 4096, 16


def ndb_blobs(data: bytes) -> Iterator[bytes]:
    """The blobs of rpm's ndb ``Packages.db``: a 32-byte header (magic, version 0, generation,
    slot page count, next package index; little-endian), then 16-byte slots (``Slot``, package
    index, block offset, block count; offset 0 = free) filling the slot pages, each used slot
    pointing at 16-byte blocks holding a blob head (``BlbS``, package index, generation, length),
    the blob, zero padding and a tail (Adler-32 of all before it, length, ``BlbE``)."""
    if len(data) < 32 or data[:4] != _NDB_MAGIC:
        raise _Corrupt("not an rpm ndb database")
    version, _generation, slot_pages = struct.unpack_from("<III", data, 4)
    if version != 0:
        raise _Corrupt(f"unsupported ndb version {version}")
    if not 0 < slot_pages <= len(data) // _NDB_PAGE:
        raise _Corrupt(f"{slot_pages} slot pages in {len(data)} bytes")
    first_block = slot_pages * _NDB_PAGE // _NDB_BLOCK
    for off in range(32, slot_pages * _NDB_PAGE, 16):
        if data[off : off + 4] != _NDB_SLOT_MAGIC:
            raise _Corrupt(f"bad slot at byte {off}")
        pkgidx, blkoff, blkcnt = struct.unpack_from("<III", data, off + 4)
        if not blkoff:
            continue
        start, end = blkoff * _NDB_BLOCK, (blkoff + blkcnt) * _NDB_BLOCK
        if blkoff < first_block or blkcnt < 2 or end > len(data):
            raise _Corrupt(f"package {pkgidx}: blocks {blkoff}+{blkcnt} outside the blob area")
        head_magic, head_idx, _gen, length = struct.unpack_from("<4sIII", data, start)
        adler, tail_length, tail_magic = struct.unpack_from("<II4s", data, end - 12)
        if (head_magic, tail_magic, head_idx, tail_length) != (_NDB_BLOB_HEAD, _NDB_BLOB_TAIL, pkgidx, length):
            raise _Corrupt(f"package {pkgidx}: bad blob head or tail")
        if (16 + length + 12 + _NDB_BLOCK - 1) // _NDB_BLOCK != blkcnt:
            raise _Corrupt(f"package {pkgidx}: blob of {length} bytes in {blkcnt} blocks")
        if zlib.adler32(memoryview(data)[start : end - 12]) != adler:
            raise _Corrupt(f"package {pkgidx}: checksum mismatch")
        yield data[start + 16 : start + 16 + length]


# --- the indexer -------------------------------------------------------------------------------

_READERS: dict[str, Callable[[bytes], Iterator[bytes]]] = {"sqlite": sqlite_blobs, "bdb": bdb_blobs, "ndb": ndb_blobs}


def read_rpmdb(path: str, data: bytes) -> list[Package]:
    """The packages of the rpm database file ``path`` (a path in ``DB_PATHS``) holding ``data``.
    Raises ``LayerError`` naming the file if it cannot be read."""
    kind = DB_FORMATS[posixpath.basename(path)]
    packages: list[Package] = []
    try:
        for n, blob in enumerate(_READERS[kind](data), 1):
            try:
                package = header_package(blob, path)
            except _Corrupt as e:
                raise _Corrupt(f"header {n}: {e}") from None
            if package is not None:
                packages.append(package)
    except _Corrupt as e:
        raise LayerError(f"{path}: corrupt rpm database ({kind}): {e}") from None
    return packages


class RpmIndexer(Indexer):
    """Installed rpm packages, from the rpm database files of the layer."""

    name = "rpm"

    def __init__(self) -> None:
        self._found: dict[str, list[Package]] = {}

    def wants(self, path: str, size: int, mode: int) -> bool:
        if path not in DB_PATHS:
            return False
        if size > MAX_DB_SIZE:
            raise LayerError(f"{path}: rpm database of {size} bytes is over the limit of {MAX_DB_SIZE} bytes")
        return True

    def limit(self, path: str) -> int:
        return MAX_DB_SIZE

    def add(self, path: str, data: bytes) -> None:
        self._found[path] = read_rpmdb(path, data)

    def finish(self, index: LayerIndex) -> None:
        for path, packages in self._found.items():
            index.package_dbs.append(path)
            directory = posixpath.dirname(path)
            preferred = next(f"{directory}/{f}" for f in DB_FORMATS if f"{directory}/{f}" in self._found)
            if path == preferred:
                index.packages.extend(packages)

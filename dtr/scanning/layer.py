"""One layer blob read as a stream and handed to the indexers (see ``indexers.base``).

``index_stream`` reads a layer (gzip, zstd or plain tar, told apart by their magic numbers) from a
``read(n)`` callable, in one pass and in bounded memory: blocks of at most ``BLOCK`` decompressed
bytes, plus the files the indexers want (each bounded by the indexers' limits). Its own tar
parser understands ustar, GNU (long names, sparse entries: never expanded) and PAX headers.
``index_layer`` feeds it a stored blob from the event loop through a small queue, so a blob of any
size needs a few MiB.

Paths are normalised (``./etc/os-release`` -> ``etc/os-release``). A layer is refused with a
``LayerError`` naming the problem and the entry for: corrupt or truncated compressed data or tar
(a tar without its end-of-archive block is truncated), an absolute path, a ``..`` component, a NUL
in a name, more than ``max_size`` uncompressed bytes, more than ``MAX_WHITEOUTS`` whiteouts, and
whatever an indexer refuses. Symbolic links are never followed; hard links are not handed to the
indexers (their target's content was offered under the target's own path); sparse files are not
handed to them either (a warning says so if one was wanted). Nothing is written anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import zlib
from collections.abc import Callable, Iterator

import zstandard

from dtr.scanning.indexers import all_indexers
from dtr.scanning.indexers.base import Indexer
from dtr.scanning.indexers.limits import GiB, KiB, MiB, human_size
from dtr.scanning.types import LayerError, LayerIndex
from dtr.storage.base import StorageDriver

#: Most uncompressed bytes one layer may hold (past it: a decompression bomb, or too big to scan).
DEFAULT_MAX_SIZE = 64 * GiB
#: Compressed bytes asked of ``read`` at a time.
READ_CHUNK = 256 * KiB
#: Most decompressed bytes produced at a time.
BLOCK = 1 * MiB
#: Largest PAX header or GNU long name accepted.
MAX_META = 1 * MiB
#: Most whiteouts plus opaque directories one layer may hold (they are kept in memory).
MAX_WHITEOUTS = 1_000_000
#: Most warnings the reader itself adds to a layer's index.
MAX_WARNINGS = 100
#: Largest zstd window accepted (zstd's own default limit; ``--long`` archives use at most this).
ZSTD_MAX_WINDOW = 128 * MiB
#: Compressed bytes given to the zstd decompressor at a time (at most 32 MiB out).
ZSTD_PIECE = 1 * KiB
#: Chunks of the stored blob queued for the reader thread (chunks are the driver's; ~1 MiB).
QUEUE_CHUNKS = 4
#: ``progress`` is called each time this many more compressed bytes were read (and at the end).
PROGRESS_EVERY = 8 * MiB

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZERO_BLOCK = bytes(512)
OPAQUE = ".wh..wh..opq"

_REGULAR = frozenset({b"0", b"\0", b"7"})
#: Entry types whose size field is ignored (no data follows), as Go's archive/tar does.
_HEADER_ONLY = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})


# --- decompression -------------------------------------------------------------------------------


def _gunzip(data: bytes, read: Callable[[int], bytes]) -> Iterator[bytes]:
    """Decompressed blocks of a gzip stream (members one after another; NUL padding after the last)."""
    d = zlib.decompressobj(31)
    eof_in = False
    while True:
        if d.eof:
            data = d.unused_data
            while len(data) < 2 and not eof_in:
                more = read(READ_CHUNK)
                eof_in = not more
                data += more
            if not data or not data.strip(b"\0"):
                return
            if data[:2] != GZIP_MAGIC:
                raise LayerError("corrupt gzip data: data after the end of the gzip stream is not gzip")
            d = zlib.decompressobj(31)
        if not data and not eof_in:
            data = read(READ_CHUNK)
            eof_in = not data
        try:
            out = d.decompress(data, BLOCK)
        except zlib.error as e:
            raise LayerError(f"corrupt gzip data: {e}") from None
        data = d.unconsumed_tail
        if out:
            yield out
        elif eof_in and not data and not d.eof:
            raise LayerError("truncated gzip data: the blob ends inside the compressed stream")


def _unzstd(data: bytes, read: Callable[[int], bytes]) -> Iterator[bytes]:
    """Decompressed blocks of a zstd stream (frames one after another).

    Input is fed ``ZSTD_PIECE`` bytes at a time: zstandard's ``decompressobj`` has no output
    bound, and a zstd block of 4 bytes may stand for 128 KiB, so one call gives at most 32 MiB
    (its ``stream_reader`` is bounded but ends silently on a truncated stream).
    """
    dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    d = dctx.decompressobj()
    view = memoryview(data)
    eof_in = False
    while True:
        if not view:
            if eof_in:
                if d.eof:
                    return
                raise LayerError("truncated zstd data: the blob ends inside the compressed stream")
            data = read(READ_CHUNK)
            eof_in = not data
            view = memoryview(data)
            continue
        piece, view = view[:ZSTD_PIECE], view[ZSTD_PIECE:]
        try:
            out = d.decompress(piece)
        except zstandard.ZstdError as e:
            raise LayerError(f"corrupt zstd data: {e}") from None
        if out:
            yield out
        if d.eof:  # the frame ended: another frame may follow
            rest = bytes(d.unused_data) + bytes(view)
            while len(rest) < 4 and not eof_in:
                more = read(READ_CHUNK)
                eof_in = not more
                rest += more
            if not rest.strip(b"\0"):  # nothing more, or NUL padding
                return
            if not _zstd_frame(rest):
                raise LayerError("corrupt zstd data: data after the end of the zstd stream is not zstd")
            d = dctx.decompressobj()
            view = memoryview(rest)


def _zstd_frame(data: bytes) -> bool:
    """Whether ``data`` starts with a zstd frame or a skippable frame (``0x184D2A5?``, little-endian)."""
    return data[:4] == ZSTD_MAGIC or (data[1:4] == b"\x2a\x4d\x18" and data[0] & 0xF0 == 0x50)


def _plain(data: bytes, read: Callable[[int], bytes]) -> Iterator[bytes]:
    while data:
        yield data
        data = read(BLOCK)


def _decompressed(read: Callable[[int], bytes], max_size: int) -> Iterator[bytes]:
    """The blob's uncompressed bytes in blocks, whatever its compression; at most ``max_size``."""
    first = b""
    while len(first) < 4:
        more = read(READ_CHUNK)
        if not more:
            break
        first += more
    if first[:2] == GZIP_MAGIC:
        blocks = _gunzip(first, read)
    elif first[:4] == ZSTD_MAGIC:
        blocks = _unzstd(first, read)
    else:
        blocks = _plain(first, read)
    total = 0
    for block in blocks:
        total += len(block)
        if total > max_size:
            raise LayerError(
                f"over {human_size(max_size)} uncompressed: the layer is too big to scan (or a decompression bomb)"
            )
        yield block
    if first and not total:
        raise LayerError("truncated layer: no tar data in the blob")


# --- tar -----------------------------------------------------------------------------------------


class _TarStream:
    """Exact reads and skips over the decompressed blocks; ``entry`` names the entry for errors."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._buf = b""
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        #: The entry being read ("" between entries), and the last one read.
        self.entry = ""
        self.last = ""

    @property
    def offset(self) -> int:
        return self._base + self._pos

    def _next(self) -> bytes:
        self._base += len(self._buf)
        self._buf, self._pos = b"", 0
        block = next(self._blocks, b"")
        if not block:
            where = f"inside {self.entry!r}" if self.entry else "before its end-of-archive block"
            if not self.entry and self.last:
                where = f"after {self.last!r}, {where}"
            raise LayerError(f"truncated layer: the tar data ends {where} (at byte {self.offset})")
        return block

    def at_end(self) -> bool:
        """Whether no byte is left (only asked before the first header: an empty blob)."""
        if self._pos < len(self._buf):
            return False
        block = next(self._blocks, b"")
        self._base += len(self._buf)
        self._buf, self._pos = block, 0
        return not block

    def read(self, n: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos + n <= len(buf):
            self._pos = pos + n
            return buf[pos : pos + n]
        parts = [buf[pos:]]
        need = n - (len(buf) - pos)
        while need:
            block = self._next()
            take = min(need, len(block))
            parts.append(block[:take] if take < len(block) else block)
            self._buf, self._pos = block, take
            need -= take
        return b"".join(parts)

    def skip(self, n: int) -> None:
        avail = len(self._buf) - self._pos
        if n <= avail:
            self._pos += n
            return
        n -= avail
        while True:
            block = self._next()
            if n <= len(block):
                self._buf, self._pos = block, n
                return
            self._buf, self._pos = block, len(block)
            n -= len(block)


def _padding(size: int) -> int:
    return -size % 512


def _number(field: bytes, what: str, offset: int) -> int:
    """A header's numeric field: octal text, or base-256 (GNU) when the first byte's top bit is set."""
    if field[0] & 0x80:
        n = int.from_bytes(field[1:], "big")
        return n - (1 << (8 * (len(field) - 1))) if field[0] == 0xFF else n
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise LayerError(f"corrupt tar header at byte {offset}: bad {what} field {text[:20]!r}") from None


def _checksum_ok(header: bytes) -> bool:
    field = header[148:156]
    if field[0] & 0x80:
        return False
    try:
        stored = int(field.split(b"\0", 1)[0].strip(b" ") or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(header) - sum(header[148:156]) + 256
    if stored == unsigned:
        return True
    signed = unsigned - sum(2 * b for b in header[:148] if b > 127) - sum(2 * b for b in header[156:] if b > 127)
    return stored == signed


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _cstring(raw: bytes) -> str:
    return _text(raw.split(b"\0", 1)[0])


def _pax(data: bytes, offset: int) -> dict[str, str]:
    """A PAX extended header's records (``%d key=value\\n``)."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        sp = data.find(b" ", pos, pos + 24)
        try:
            length = int(data[pos:sp]) if sp > pos else 0
        except ValueError:
            length = 0
        end = pos + length
        if length <= sp - pos + 1 or end > len(data) or data[end - 1] != 0x0A:
            raise LayerError(f"corrupt PAX header at byte {offset}: bad record {data[pos : pos + 40]!r}")
        key, eq, value = data[sp + 1 : end - 1].partition(b"=")
        if not eq:
            raise LayerError(f"corrupt PAX header at byte {offset}: record without '='")
        out[_text(key)] = _text(value)
        pos = end
    return out


def normalise(name: str) -> str:
    """A tar entry's name as a layer path (``./a//b/`` -> ``a/b``; ``./`` -> ``""``), or
    ``LayerError`` for a NUL, an absolute path or a ``..`` component."""
    if "\0" in name:
        raise LayerError(f"{name!r}: NUL in an entry name")
    if name.startswith("/"):
        raise LayerError(f"{name!r}: absolute path in the layer")
    if "//" not in name and "." not in name and not name.endswith("/"):
        return name
    parts = [p for p in name.split("/") if p and p != "."]
    if ".." in parts:
        raise LayerError(f"{name!r}: '..' in an entry path (escapes the layer root)")
    return "/".join(parts)


def _pax_int(pax: dict[str, str], key: str, name: str) -> int:
    try:
        value = int(pax.get(key, "0"))
    except ValueError:
        value = -1
    if value < 0:
        raise LayerError(f"{name!r}: bad PAX {key} {pax[key][:20]!r}")
    return value


def _offer(
    index: LayerIndex,
    indexers: list[Indexer],
    tar: _TarStream,
    path: str,
    size: int,
    file_size: int,
    mode: int,
    sparse: bool,
) -> bool:
    """Offer a regular file to the indexers; whether its data (and padding) was read."""
    current = indexers[0] if indexers else None
    try:
        wanting = []
        for current in indexers:
            if current.wants(path, file_size, mode):
                wanting.append(current)
        if not wanting:
            return False
        if sparse:
            if len(index.warnings) < MAX_WARNINGS:
                index.warnings.append(f"{path}: a sparse file, not read")
            return False
        limits = []
        for current in wanting:
            limits.append(current.limit(path))
        if size > max(limits):
            return False
        data = tar.read(size)
        tar.skip(_padding(size))
        for current, limit in zip(wanting, limits, strict=True):
            if size <= limit:
                current.add(path, data)
        return True
    except LayerError:
        raise
    except Exception as e:  # an indexer's bug: the layer fails, saying where
        name = current.name if current else "?"
        raise LayerError(f"{path}: the {name} indexer failed: {e!r}") from e


def _finish(index: LayerIndex, indexers: list[Indexer]) -> None:
    for ix in indexers:
        try:
            ix.finish(index)
        except LayerError:
            raise
        except Exception as e:
            raise LayerError(f"the {ix.name} indexer failed: {e!r}") from e


def index_stream(
    read: Callable[[int], bytes], indexers: list[Indexer], *, max_size: int = DEFAULT_MAX_SIZE
) -> LayerIndex:
    """Index one layer read from ``read(n)`` (up to ``n`` bytes of the blob; ``b""`` at its end)."""
    index = LayerIndex()
    tar = _TarStream(_decompressed(read, max_size))
    if tar.at_end():
        _finish(index, indexers)
        return index
    pax: dict[str, str] = {}
    long_name: str | None = None
    whiteouts = 0
    while True:
        if tar.entry:
            tar.last, tar.entry = tar.entry, ""
        offset = tar.offset
        header = tar.read(512)
        if header == ZERO_BLOCK:
            break
        if not _checksum_ok(header):
            where = f"after {tar.last!r}" if tar.last else "at its start"
            raise LayerError(f"not a tar archive, or a corrupt one: bad header checksum at byte {offset} ({where})")
        kind = header[156:157]
        size = _number(header[124:136], "size", offset)
        if size < 0:
            raise LayerError(f"corrupt tar header at byte {offset}: negative size")
        if kind in (b"x", b"g", b"L", b"K"):
            if size > MAX_META:
                raise LayerError(
                    f"a tar extended header of {human_size(size)} at byte {offset} (over {human_size(MAX_META)})"
                )
            data = tar.read(size)
            tar.skip(_padding(size))
            if kind == b"x":
                pax = _pax(data, offset)
            elif kind == b"L":
                long_name = _text(data.rstrip(b"\0"))
            # "g" (global PAX) and "K" (long link name) change nothing indexed: ignored, as Go's tar does.
            continue

        if long_name is not None:
            name = long_name
        elif "path" in pax:
            name = pax["path"]
        else:
            name = _cstring(header[:100])
            if header[257:263] == b"ustar\0" and header[345] != 0:
                name = _cstring(header[345:500]) + "/" + name
        sparse = kind == b"S" or any(k.startswith("GNU.sparse.") for k in pax)
        real = _pax_int(pax, "GNU.sparse.realsize", name) or _pax_int(pax, "GNU.sparse.size", name)
        name = pax.get("GNU.sparse.name", name)
        size = _pax_int(pax, "size", name) if "size" in pax else size
        tar.entry = name
        pax, long_name = {}, None
        path = normalise(name)
        if kind == b"S":
            # GNU sparse: the real size, then extension blocks of the sparse map; ``size`` is the data stored.
            real = _number(header[483:495], "sparse size", offset)
            extended = header[482]
            while extended:
                extended = tar.read(512)[504]
        elif kind == b"\0" and name.endswith("/"):
            kind = b"5"
        if kind in _HEADER_ONLY:
            size = 0
        base = path.rpartition("/")[2]
        if base.startswith(".wh."):
            whiteouts += 1
            if whiteouts > MAX_WHITEOUTS:
                raise LayerError(f"{path}: over {MAX_WHITEOUTS} whiteouts in one layer")
            parent = path[: -len(base) - 1]
            if base == OPAQUE:
                index.opaque_dirs.append(parent)
            elif not base.startswith(".wh..wh."):  # other ``.wh..wh.`` names are aufs's own metadata
                target = base[4:]
                if target in ("", ".", ".."):
                    raise LayerError(f"{path}: a whiteout of {target!r}")
                index.whiteouts.append(f"{parent}/{target}" if parent else target)
        elif path and (kind in _REGULAR or sparse):
            index.files += 1
            mode = _number(header[100:108], "mode", offset) & 0o7777
            if _offer(index, indexers, tar, path, size, real if sparse else size, mode, sparse):
                continue
        if size:
            tar.skip(size + _padding(size))
    index.size = tar.offset
    _finish(index, indexers)
    return index


class _Stopped(Exception):
    """Raised in the reader thread when ``index_layer`` gives up (stop, cancellation, storage error)."""


async def index_layer(
    storage: StorageDriver,
    path: str,
    indexers: list[Indexer] | None = None,
    *,
    check_stop: Callable[[], None] | None = None,
    progress: Callable[[int], None] | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> LayerIndex:
    """Index the layer blob stored at ``path`` (default indexers: ``all_indexers()``; ``max_size``
    as for ``index_stream``).

    The blob is read on the event loop and parsed in a thread, through a queue of ``QUEUE_CHUNKS``
    chunks. ``check_stop()`` is called before each chunk is queued (what it raises ends the
    indexing and is raised here); ``progress(compressed_bytes_read)`` now and then and at the end.
    Whatever ends it early (a stop, cancellation, a storage error, a ``LayerError``) ends the
    thread at its next read; the thread has ended when this returns or raises.
    """
    if indexers is None:
        indexers = all_indexers()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
    stopped = threading.Event()
    rest = b""

    def read(n: int) -> bytes:  # in the thread
        nonlocal rest
        if not rest:
            if stopped.is_set():
                raise _Stopped
            chunk = asyncio.run_coroutine_threadsafe(queue.get(), loop).result()
            if chunk is None:
                if stopped.is_set():
                    raise _Stopped
                return b""
            rest = chunk
        data, rest = (rest, b"") if len(rest) <= n else (rest[:n], rest[n:])
        return data

    async def feed() -> None:
        total = reported = 0
        async with contextlib.aclosing(storage.reader(path)) as chunks:  # type: ignore[type-var]
            async for chunk in chunks:
                if check_stop is not None:
                    check_stop()
                await queue.put(chunk)
                total += len(chunk)
                if progress is not None and total - reported >= PROGRESS_EVERY:
                    progress(total)
                    reported = total
        await queue.put(None)
        if progress is not None and total != reported:
            progress(total)

    worker = asyncio.ensure_future(asyncio.to_thread(index_stream, read, indexers, max_size=max_size))
    feeder = asyncio.ensure_future(feed())
    try:
        await asyncio.wait({worker, feeder}, return_when=asyncio.FIRST_COMPLETED)
        if feeder.done() and feeder.exception() is not None:
            feeder.result()  # raises the stop or storage error (the finally ends the thread)
        return await worker
    finally:
        if not feeder.done():
            feeder.cancel()
            with contextlib.suppress(BaseException):
                await feeder
        if not worker.done():
            stopped.set()
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
            with contextlib.suppress(BaseException):
                await worker

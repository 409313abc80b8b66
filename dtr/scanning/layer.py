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
from collections.abc import Callable

from dtr.scanning.decompress import decompressed
from dtr.scanning.indexers import all_indexers
from dtr.scanning.indexers.base import HEAD, Indexer
from dtr.scanning.indexers.limits import GiB, MiB, human_size
from dtr.scanning.tarformat import (
    ZERO_BLOCK,
    TarStream,
    checksum_ok,
    cstring,
    name_text,
    normalise,
    number,
    padding,
    pax_int,
    pax_records,
)
from dtr.scanning.types import LayerError, LayerIndex
from dtr.storage.base import StorageDriver

#: Most uncompressed bytes one layer may hold (past it: a decompression bomb, or too big to scan).
DEFAULT_MAX_SIZE = 64 * GiB
#: Largest PAX header or GNU long name accepted.
MAX_META = 1 * MiB
#: Most whiteouts plus opaque directories one layer may hold (they are kept in memory).
MAX_WHITEOUTS = 1_000_000
#: Most warnings the reader itself adds to a layer's index.
MAX_WARNINGS = 100
#: Chunks of the stored blob queued for the reader thread (chunks are the driver's; ~1 MiB).
QUEUE_CHUNKS = 4
#: ``progress`` is called each time this many more compressed bytes were read (and at the end).
PROGRESS_EVERY = 8 * MiB

OPAQUE = ".wh..wh..opq"

_REGULAR = frozenset({b"0", b"\0", b"7"})
#: Entry types whose size field is ignored (no data follows), as Go's archive/tar does.
_HEADER_ONLY = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})


def _offer(
    index: LayerIndex,
    indexers: list[Indexer],
    tar: TarStream,
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
        if size > HEAD:
            head = tar.read(HEAD)
            accepting = []
            for current, limit in zip(wanting, limits, strict=True):
                if size <= limit and current.accepts(path, head):
                    accepting.append(current)
            if not accepting:
                tar.skip(size - HEAD + padding(size))
                return True
            data = tar.read_large(head, size - HEAD)
        else:
            accepting = [c for c, limit in zip(wanting, limits, strict=True) if size <= limit]
            data = tar.read(size)
        tar.skip(padding(size))
        for current in accepting:
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
    tar = TarStream(decompressed(read, max_size))
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
        if not checksum_ok(header):
            where = f"after {tar.last!r}" if tar.last else "at its start"
            raise LayerError(f"not a tar archive, or a corrupt one: bad header checksum at byte {offset} ({where})")
        kind = header[156:157]
        size = number(header[124:136], "size", offset)
        if size < 0:
            raise LayerError(f"corrupt tar header at byte {offset}: negative size")
        if kind in (b"x", b"g", b"L", b"K"):
            if size > MAX_META:
                raise LayerError(
                    f"a tar extended header of {human_size(size)} at byte {offset} (over {human_size(MAX_META)})"
                )
            data = tar.read(size)
            tar.skip(padding(size))
            if kind == b"x":
                pax = pax_records(data, offset)
            elif kind == b"L":
                long_name = name_text(data.rstrip(b"\0"))
            # "g" (global PAX) and "K" (long link name) change nothing indexed: ignored, as Go's tar does.
            continue

        if long_name is not None:
            name = long_name
        elif "path" in pax:
            name = pax["path"]
        else:
            name = cstring(header[:100])
            if header[257:263] == b"ustar\0" and header[345] != 0:
                name = cstring(header[345:500]) + "/" + name
        sparse = kind == b"S" or any(k.startswith("GNU.sparse.") for k in pax)
        real = pax_int(pax, "GNU.sparse.realsize", name) or pax_int(pax, "GNU.sparse.size", name)
        name = pax.get("GNU.sparse.name", name)
        size = pax_int(pax, "size", name) if "size" in pax else size
        tar.entry = name
        pax, long_name = {}, None
        path = normalise(name)
        if kind == b"S":
            # GNU sparse: the real size, then extension blocks of the sparse map; ``size`` is the data stored.
            real = number(header[483:495], "sparse size", offset)
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
            mode = number(header[100:108], "mode", offset) & 0o7777
            if _offer(index, indexers, tar, path, size, real if sparse else size, mode, sparse):
                continue
        if size:
            tar.skip(size + padding(size))
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

"""A layer blob's bytes decompressed as a stream, whatever its compression (gzip, zstd, none:
told apart by their magic numbers), in blocks of at most ``BLOCK`` bytes; corrupt or truncated
data is a ``LayerError``. Used by ``dtr.scanning.layer``."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

import zstandard

from dtr.scanning.indexers.limits import KiB, MiB, human_size
from dtr.scanning.types import LayerError

#: Compressed bytes asked of ``read`` at a time.
READ_CHUNK = 256 * KiB
#: Most decompressed bytes produced at a time.
BLOCK = 1 * MiB
#: Largest zstd window accepted (zstd's own default limit; ``--long`` archives use at most this).
ZSTD_MAX_WINDOW = 128 * MiB
#: Compressed bytes given to the zstd decompressor at a time (at most 32 MiB out).
ZSTD_PIECE = 1 * KiB

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


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


def decompressed(read: Callable[[int], bytes], max_size: int) -> Iterator[bytes]:
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

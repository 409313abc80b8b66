"""The tar format as layers use it, read from a stream of blocks: ``TarStream`` (exact reads and
skips), header fields (octal and GNU base-256 numbers, checksums, PAX records) and entry names
normalised to layer paths. Used by ``dtr.scanning.layer``, which walks the entries."""

from __future__ import annotations

from collections.abc import Iterator

from dtr.scanning.types import LayerError

#: A tar block of NULs (two end an archive).
ZERO_BLOCK = bytes(512)


class TarStream:
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

    def read_large(self, head: bytes, n: int) -> bytes:
        """``head`` followed by the next ``n`` bytes, built in one buffer (a big file is held
        once, not once in pieces and again joined)."""
        out = bytearray(len(head) + n)
        out[: len(head)] = head
        at = len(head)
        while at < len(out):
            if self._pos >= len(self._buf):
                self._buf, self._pos = self._next(), 0
            take = min(len(out) - at, len(self._buf) - self._pos)
            out[at : at + take] = memoryview(self._buf)[self._pos : self._pos + take]
            self._pos += take
            at += take
        # A bytearray is a bytes-like object every indexer reads as it reads bytes.
        return out  # type: ignore[return-value]

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


def padding(size: int) -> int:
    return -size % 512


def number(field: bytes, what: str, offset: int) -> int:
    """A header's numeric field: octal text, or base-256 (GNU) when the first byte's top bit is set."""
    if field[0] & 0x80:
        n = int.from_bytes(field[1:], "big")
        return n - (1 << (8 * (len(field) - 1))) if field[0] == 0xFF else n
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise LayerError(f"corrupt tar header at byte {offset}: bad {what} field {text[:20]!r}") from None


def checksum_ok(header: bytes) -> bool:
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


def name_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def cstring(raw: bytes) -> str:
    return name_text(raw.split(b"\0", 1)[0])


def pax_records(data: bytes, offset: int) -> dict[str, str]:
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
        out[name_text(key)] = name_text(value)
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


def pax_int(pax: dict[str, str], key: str, name: str) -> int:
    try:
        value = int(pax.get(key, "0"))
    except ValueError:
        value = -1
    if value < 0:
        raise LayerError(f"{name!r}: bad PAX {key} {pax[key][:20]!r}")
    return value

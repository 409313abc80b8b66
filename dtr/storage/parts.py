"""A resumable writer over numbered parts plus a durable remainder, for object stores (s3, swift).

Bytes fill part-sized pieces that go up as numbered parts (two in flight, so the network and the
caller overlap); what is left below a part when the writer closes is saved by the backend
together with the number of parts before it. A backend resumes by reading that state and the
*contiguous* run of parts 1..n it holds:

- n equal to the saved count: continue after the parts, with the saved remainder;
- n larger: the writer died after sending parts but before saving; the remainder's bytes lead
  part count+1, so continue after the parts with nothing pending;
- n smaller: parts were lost: an error.

A part that failed is never followed by a save (``close`` is then a no-op), so saved state
never claims bytes that are not stored.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib

from dtr.storage.base import FileWriter, StorageError

#: (part number, ETag, size)
Part = tuple[int, str, int]
IN_FLIGHT = 2



def contiguous(found: dict[int, tuple[str, int]]) -> list[Part]:
    """The run of parts 1..n in ``found`` (number -> (etag, size)): only that run counts after a
    crash; a later part is written again on the way."""
    parts: list[Part] = []
    while (n := len(parts) + 1) in found:
        parts.append((n, *found[n]))
    return parts

class PartWriter(FileWriter):
    def __init__(self, path: str, parts: list[Part], buf: bytearray | None, *, tail_size: int = 0,
                 dirty: bool = False) -> None:
        self.path = path
        self.parts = sorted(parts)
        #: Bytes not in a part yet; None until loaded from the saved state (``tail_size`` bytes).
        self._buf, self._tail_size, self._dirty = buf, tail_size, dirty
        self._pending: dict[int, asyncio.Task[Part]] = {}
        self._closed = self._broken = False
        self._size = sum(p[2] for p in parts) + (len(buf) if buf is not None else tail_size)

    # -- backend hooks ---------------------------------------------------------------------

    @abc.abstractmethod
    def part_size(self, number: int) -> int: ...

    @abc.abstractmethod
    async def send_part(self, number: int, data: bytes) -> Part: ...

    @abc.abstractmethod
    async def load_tail(self) -> bytes: ...

    @abc.abstractmethod
    async def save(self, tail: bytes, parts: int) -> None:
        """Durably keep the remainder and the count of parts before it."""

    @abc.abstractmethod
    async def finish(self, parts: list[Part], rest: bytes) -> None:
        """Make parts + rest the object at ``path`` and drop the saved state."""

    @abc.abstractmethod
    async def discard(self) -> None:
        """Drop parts and saved state."""

    # -- FileWriter ------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    def _check(self) -> None:
        if self._closed:
            raise StorageError("writer is closed", path=self.path)
        if self._broken:
            raise StorageError("an earlier part failed; resume the write from storage", path=self.path)

    async def _load(self) -> bytearray:
        if self._buf is None:
            tail = await self.load_tail() if self._tail_size else b""
            if len(tail) != self._tail_size:
                raise StorageError("writer state changed while resuming", path=self.path)
            self._buf = bytearray(tail)
        return self._buf

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check()
        if not len(data):
            return
        buf = await self._load()
        buf += data
        self._size += len(data)
        self._dirty = True
        while len(buf) >= (n := self.part_size(self._next())):
            piece = memoryview(buf)[:n].tobytes()
            del buf[:n]
            await self._start(piece)

    def _next(self) -> int:
        return len(self.parts) + len(self._pending) + 1

    async def _start(self, data: bytes) -> None:
        while len(self._pending) >= IN_FLIGHT:
            await self._reap(asyncio.FIRST_COMPLETED)
        number = self._next()
        self._pending[number] = asyncio.create_task(self.send_part(number, data))

    async def _reap(self, when: str = asyncio.ALL_COMPLETED) -> None:
        if not self._pending:
            return
        done, _ = await asyncio.wait(self._pending.values(), return_when=when)
        for number, task in list(self._pending.items()):
            if task in done:
                del self._pending[number]
                try:
                    self.parts.append(task.result())
                except BaseException:
                    self._broken = True
                    await self._cancel_pending()
                    raise
        self.parts.sort()

    async def _cancel_pending(self) -> None:
        tasks = list(self._pending.values())
        self._pending.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._broken:
            await self._cancel_pending()
            return
        await self._reap()  # a failed part raises here: the caller learns its bytes are not stored
        if self._dirty:
            await self.save(bytes(await self._load()), len(self.parts))

    async def commit(self) -> None:
        self._check()
        await self._reap()
        buf = await self._load()
        await self.finish(self.parts, bytes(buf))
        buf.clear()
        self._closed = True

    async def cancel(self) -> None:
        self._closed = True
        await self._cancel_pending()
        await self.discard()

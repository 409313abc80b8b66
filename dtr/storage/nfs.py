"""The NFS driver: the filesystem driver with rules that hold on a shared NFS mount.

- No flock, no atime, no O_APPEND: writers write at explicit offsets (``pwrite``), which NFS
  clients keep consistent where appends across clients are not.
- An unfinished write lives at a hidden temporary name beside its path
  (``.<name>.partial``); ``close`` fsyncs it so another process or replica resumes it, and
  ``commit`` fsyncs then renames it in the same directory, so readers never see half a file.
- ``put_content`` writes a temporary name, fsyncs and renames (inherited); ``move`` renames
  and fsyncs the directory.
- A stale file handle (``ESTALE``, after another client replaced or removed a file) is retried
  by path, up to ``staleretries`` times.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from dtr.storage.base import FileWriter, PathNotFoundError
from dtr.storage.filesystem import FilesystemDriver, FilesystemParams, _fsync_dir

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class NFSParams(FilesystemParams):
    #: Times an operation is retried after a stale NFS file handle (ESTALE).
    staleretries: int = 3


def partial_path(full: Path) -> Path:
    """Where the unfinished write for ``full`` lives (hidden: listings skip dot names)."""
    return full.with_name(f".{full.name}.partial")


def _retry_stale(fn: Callable[[], T], retries: int) -> T:
    for attempt in range(retries + 1):
        try:
            return fn()
        except OSError as e:
            if e.errno != errno.ESTALE or attempt == retries:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


class _NFSWriter(FileWriter):
    def __init__(self, driver: NFSDriver, fd: int, size: int, partial: Path, final: Path) -> None:
        self._d, self._fd, self._size = driver, fd, size
        self._partial, self._final = partial, final
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def _reopen(self) -> None:
        """After ESTALE: open the partial file again by path."""
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = os.open(self._partial, os.O_WRONLY)

    def _stale_safe(self, fn: Callable[[], T]) -> T:
        for attempt in range(self._d.staleretries + 1):
            try:
                return fn()
            except OSError as e:
                if e.errno != errno.ESTALE or attempt == self._d.staleretries:
                    raise
                self._reopen()
        raise AssertionError("unreachable")  # pragma: no cover

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        start = self._size

        def _write() -> None:
            view = memoryview(data)
            offset = start
            while view:
                n = self._stale_safe(lambda v=view, o=offset: os.pwrite(self._fd, v, o))  # type: ignore[misc]
                view, offset = view[n:], offset + n

        await self._d._run(_write)
        self._size += len(data)

    async def commit(self) -> None:
        def _commit() -> None:
            self._stale_safe(lambda: os.fsync(self._fd))
            os.close(self._fd)
            self._closed = True
            os.replace(self._partial, self._final)
            _fsync_dir(self._final.parent)

        if self._closed:
            raise ValueError("writer is closed")
        await self._d._run(_commit)

    async def cancel(self) -> None:
        await self.close()
        await self._d._run(self._partial.unlink, True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def _close() -> None:
            try:
                os.fsync(self._fd)  # another replica may resume this write next
            except OSError as e:
                if e.errno != errno.ESTALE:
                    raise
            finally:
                os.close(self._fd)

        await self._d._run(_close)


class NFSDriver(FilesystemDriver):
    name: ClassVar[str] = "nfs"
    Params: ClassVar[type[Any]] = NFSParams

    def __init__(self, params: NFSParams) -> None:
        super().__init__(params)
        self.staleretries = params.staleretries

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await super()._run(_retry_stale, lambda: fn(*args), self.staleretries)

    async def delete(self, path: str) -> None:
        """Also removes an unfinished write at ``path``."""
        partial = partial_path(self._full(path))

        def _unlink_partial() -> bool:
            try:
                partial.unlink()
            except (FileNotFoundError, NotADirectoryError):
                return False
            return True

        had_partial = await self._run(_unlink_partial)
        try:
            await super().delete(path)
        except PathNotFoundError:
            if not had_partial:
                raise

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        full = self._full(path)
        partial = partial_path(full)

        def _open() -> tuple[int, int]:
            if append:
                try:
                    fd = os.open(partial, os.O_WRONLY)
                except FileNotFoundError:
                    raise PathNotFoundError("no unfinished write to resume", path=path) from None
                return fd, os.fstat(fd).st_size
            full.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            return fd, 0

        fd, size = await self._run(_open)
        return _NFSWriter(self, fd, size, partial, full)

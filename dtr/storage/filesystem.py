"""The local filesystem driver: objects are files under ``rootdirectory``.

Durability: ``put_content`` and ``move`` write to a temporary name or rename within the tree,
fsync the file and its directory; ``FileWriter.commit`` fsyncs. Blocking calls run in a
bounded thread pool so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import errno
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TypeVar

from dtr.storage.base import FileInfo, FileWriter, InvalidOffsetError, PathNotFoundError, StorageDriver

T = TypeVar("T")
READ_CHUNK = 1 << 20
#: Start flushing written data to disk in the background every this many bytes.
SYNC_EVERY = 32 << 20
#: A writer closed with at least this much unflushed data starts flushing it in the background.
SYNC_ON_CLOSE = 1 << 20


@dataclasses.dataclass(frozen=True)
class FilesystemParams:
    rootdirectory: str = "/var/lib/dtr/registry"
    #: Threads doing blocking file I/O.
    maxthreads: int = 32


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileWriter(FileWriter):
    """Appends to a file. Dirty pages are flushed in the background as data arrives
    (``fdatasync`` every SYNC_EVERY bytes, overlapping later writes), so ``commit``'s
    final fsync is short and durability costs little throughput."""

    def __init__(self, driver: FilesystemDriver, fd: int, size: int, file: Path) -> None:
        self._d, self._fd, self._size, self._file = driver, fd, size, file
        self._closed = False
        self._unsynced = 0
        self._sync: asyncio.Future[None] | None = None

    @property
    def size(self) -> int:
        return self._size

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        fd = self._fd

        def _write() -> None:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]

        await self._d._run(_write)
        self._size += len(data)
        self._unsynced += len(data)
        if self._unsynced >= SYNC_EVERY and (self._sync is None or self._sync.done()):
            if self._sync is not None:
                self._sync.result()
            self._unsynced = 0
            self._sync = asyncio.ensure_future(self._d._run(os.fdatasync, self._fd))

    async def _settle(self) -> None:
        if self._sync is not None:
            sync, self._sync = self._sync, None
            await sync

    async def commit(self) -> None:
        await self._settle()
        await self._d._run(os.fsync, self._fd)
        self._unsynced = 0  # just synced: nothing for close() to flush in the background
        await self.close()

    async def cancel(self) -> None:
        self._unsynced = 0  # about to be deleted: not worth a flush
        await self.close()
        await self._d._run(self._file.unlink, True)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                await self._settle()
            finally:
                if self._unsynced >= SYNC_ON_CLOSE:
                    # A chunked upload writes a piece per request: flush this piece in the
                    # background so the fsync at commit has only the last one left to wait for.
                    self._d._background_sync(os.dup(self._fd))
                await self._d._run(os.close, self._fd)


class FilesystemDriver(StorageDriver):
    name: ClassVar[str] = "filesystem"
    Params: ClassVar[type[Any]] = FilesystemParams

    def __init__(self, params: FilesystemParams) -> None:
        self.root = Path(params.rootdirectory)
        self.root.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(params.maxthreads, thread_name_prefix="dtr-fs")

    def _background_sync(self, fd: int) -> None:
        """fdatasync ``fd`` (a dup this takes over) without waiting for it."""

        def sync() -> None:
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)

        self._pool.submit(sync)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _full(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    async def get_content(self, path: str) -> bytes:
        try:
            return await self._run(self._full(path).read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFoundError("not found", path=path) from None

    async def put_content(self, path: str, data: bytes) -> None:
        full = self._full(path)

        def _put() -> None:
            full.parent.mkdir(parents=True, exist_ok=True)
            tmp = full.with_name(f".{full.name}.{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, full)
            _fsync_dir(full.parent)

        await self._run(_put)

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:  # type: ignore[override]
        full = self._full(path)
        try:
            f: BinaryIO = await self._run(open, full, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFoundError("not found", path=path) from None
        try:
            size = os.fstat(f.fileno()).st_size
            if offset < 0 or offset > size:
                raise InvalidOffsetError(f"offset {offset} outside 0..{size}", path=path)
            f.seek(offset)
            while chunk := await self._run(f.read, READ_CHUNK):
                yield chunk
        finally:
            f.close()

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        full = self._full(path)

        def _open() -> tuple[int, int]:
            if append:
                try:
                    fd = os.open(full, os.O_WRONLY | os.O_APPEND)
                except FileNotFoundError:
                    raise PathNotFoundError("no unfinished write to resume", path=path) from None
                return fd, os.fstat(fd).st_size
            full.parent.mkdir(parents=True, exist_ok=True)
            return os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644), 0

        fd, size = await self._run(_open)
        return _FileWriter(self, fd, size, full)

    async def stat(self, path: str) -> FileInfo:
        try:
            st = await self._run(os.stat, self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFoundError("not found", path=path) from None
        is_dir = (st.st_mode & 0o170000) == 0o040000
        return FileInfo(path, 0 if is_dir else st.st_size, is_dir, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC))

    async def list(self, path: str) -> list[str]:
        try:
            names = await self._run(os.listdir, self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFoundError("not found", path=path) from None
        base = path.rstrip("/")
        return sorted(f"{base}/{n}" for n in names if not n.startswith("."))

    async def move(self, src: str, dst: str) -> None:
        s, d = self._full(src), self._full(dst)

        def _move() -> None:
            d.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(s, d)
            except FileNotFoundError:
                if not s.exists():
                    raise PathNotFoundError("not found", path=src) from None
                raise
            _fsync_dir(d.parent)

        await self._run(_move)

    async def delete(self, path: str) -> None:
        full = self._full(path)

        def _delete() -> None:
            try:
                if full.is_dir() and not full.is_symlink():
                    shutil.rmtree(full)
                else:
                    full.unlink()
            except FileNotFoundError:
                raise PathNotFoundError("not found", path=path) from None
            except OSError as e:
                if e.errno == errno.ENOENT:
                    raise PathNotFoundError("not found", path=path) from None
                raise

        await self._run(_delete)

    def local_path(self, path: str) -> Path | None:
        return self._full(path)

    async def close(self) -> None:
        self._pool.shutdown(wait=False)

"""What every driver needs, done once: path checks, error wrapping, metrics, a concurrency cap."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from prometheus_client import Counter, Histogram

from dtr.storage.base import FileInfo, FileWriter, InvalidPathError, StorageDriver, StorageError

T = TypeVar("T")

_COMPONENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")

OP_SECONDS = Histogram(
    "dtr_storage_operation_seconds", "Storage driver operation latency", ["driver", "op"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
OP_ERRORS = Counter("dtr_storage_errors_total", "Storage driver operation failures", ["driver", "op"])


def check_path(path: str) -> str:
    """Return ``path`` if it is absolute, normalised and free of ``.``/``..``; else InvalidPathError."""
    if path == "/":
        return path
    if not path.startswith("/") or path.endswith("/"):
        raise InvalidPathError("storage paths are absolute and do not end with /", path=path)
    for part in path[1:].split("/"):
        if not _COMPONENT.match(part) or part in (".", ".."):
            raise InvalidPathError("invalid path component", path=path)
    return path


class _WrappedWriter(FileWriter):
    def __init__(self, wrapper: StorageWrapper, inner: FileWriter, path: str) -> None:
        self._w, self._inner, self._path = wrapper, inner, path

    @property
    def size(self) -> int:
        return self._inner.size

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self._w._call("write", self._path, lambda: self._inner.write(data))

    async def commit(self) -> None:
        await self._w._call("commit", self._path, self._inner.commit)

    async def cancel(self) -> None:
        await self._w._call("cancel", self._path, self._inner.cancel)

    async def close(self) -> None:
        await self._w._call("close", self._path, self._inner.close)


class StorageWrapper(StorageDriver):
    """Wraps a driver; the rest of dtr only ever talks to this."""

    Params = object

    def __init__(self, driver: StorageDriver, max_concurrency: int = 64) -> None:
        self.driver = driver
        self.name = driver.name  # type: ignore[misc]
        self._sem = asyncio.Semaphore(max_concurrency)

    async def _call(self, op: str, path: str, fn: Callable[[], Awaitable[T]]) -> T:
        start = time.perf_counter()
        try:
            async with self._sem:
                return await fn()
        except StorageError as e:
            OP_ERRORS.labels(self.name, op).inc()
            e.driver, e.op, e.path = e.driver or self.name, e.op or op, e.path or path
            raise
        except (TimeoutError, OSError, ConnectionError) as e:
            OP_ERRORS.labels(self.name, op).inc()
            raise StorageError(f"{type(e).__name__}: {e}", driver=self.name, op=op, path=path) from e
        finally:
            OP_SECONDS.labels(self.name, op).observe(time.perf_counter() - start)

    async def get_content(self, path: str) -> bytes:
        return await self._call("get_content", path, lambda: self.driver.get_content(check_path(path)))

    async def put_content(self, path: str, data: bytes) -> None:
        await self._call("put_content", path, lambda: self.driver.put_content(check_path(path), data))

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:  # type: ignore[override]
        check_path(path)
        it = self.driver.reader(path, offset).__aiter__()
        while True:
            try:
                chunk = await self._call("read", path, it.__anext__)
            except StopAsyncIteration:
                return
            yield chunk

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        inner = await self._call("writer", path, lambda: self.driver.writer(check_path(path), append))
        return _WrappedWriter(self, inner, path)

    async def stat(self, path: str) -> FileInfo:
        return await self._call("stat", path, lambda: self.driver.stat(check_path(path)))

    async def list(self, path: str) -> list[str]:
        return await self._call("list", path, lambda: self.driver.list(check_path(path)))

    async def move(self, src: str, dst: str) -> None:
        check_path(dst)
        await self._call("move", src, lambda: self.driver.move(check_path(src), dst))

    async def delete(self, path: str) -> None:
        await self._call("delete", path, lambda: self.driver.delete(check_path(path)))

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        check_path(path)
        it = self.driver.walk(path).__aiter__()
        while True:
            try:
                info = await self._call("walk", path, it.__anext__)
            except StopAsyncIteration:
                return
            yield info

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        return await self._call("redirect_url", path, lambda: self.driver.redirect_url(check_path(path), method))

    def local_path(self, path: str) -> Path | None:
        return self.driver.local_path(check_path(path))

    async def close(self) -> None:
        await self.driver.close()

"""The storage driver interface: every backend (filesystem, S3, GCS, Swift, Azure, ...) implements it.

Paths are absolute, ``/``-separated, made of components matching ``[A-Za-z0-9._-]+`` (no ``.``
or ``..``); ``StorageWrapper`` checks that before a driver sees a path, so drivers hold only
backend logic. Drivers raise the typed errors below; anything else is wrapped into
``StorageError`` with the driver's name and the operation.

Metadata lives in Postgres; a driver stores bytes only. Writes become visible at their path
only through ``FileWriter.commit`` or ``put_content`` (never half-written); ``move`` is how an
upload becomes a blob.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar


class StorageError(Exception):
    """A backend operation failed. ``retryable`` says whether trying again later may work."""

    retryable = True

    def __init__(self, message: str, *, driver: str = "", op: str = "", path: str = "") -> None:
        super().__init__(message)
        self.driver, self.op, self.path = driver, op, path

    def __str__(self) -> str:
        where = " ".join(p for p in (self.driver, self.op, self.path) if p)
        return f"{where}: {self.args[0]}" if where else str(self.args[0])


class PathNotFoundError(StorageError):
    """Nothing is stored at the path."""

    retryable = False


class InvalidPathError(StorageError):
    """The path is not a valid storage path."""

    retryable = False


class InvalidOffsetError(StorageError):
    """A read or resumed write was asked for at an offset the object does not have."""

    retryable = False


@dataclasses.dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    is_dir: bool
    modified: dt.datetime | None = None


class FileWriter(abc.ABC):
    """An append-only writer; ``size`` counts every byte written so far, across resumptions.

    ``close`` keeps what was written so a later ``driver.writer(path, append=True)`` (in any
    process or replica) continues it; ``commit`` makes it durable and readable at its path;
    ``cancel`` discards it.
    """

    @property
    @abc.abstractmethod
    def size(self) -> int: ...

    @abc.abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; the caller reuses its buffer afterwards, so keep no reference to it."""

    @abc.abstractmethod
    async def commit(self) -> None: ...

    @abc.abstractmethod
    async def cancel(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class StorageDriver(abc.ABC):
    """One storage backend. Subclasses set ``name`` and ``Params`` and register themselves."""

    name: ClassVar[str]
    #: A dataclass of the driver's config keys (those under ``storage.<name>``).
    Params: ClassVar[type[Any]]

    @abc.abstractmethod
    async def get_content(self, path: str) -> bytes:
        """The whole object (for small objects only)."""

    @abc.abstractmethod
    async def put_content(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path`` atomically, replacing what was there."""

    @abc.abstractmethod
    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        """Stream the object from ``offset``; PathNotFoundError / InvalidOffsetError on the first read."""

    @abc.abstractmethod
    async def writer(self, path: str, append: bool = False) -> FileWriter:
        """A writer for ``path``; with ``append`` it resumes an unfinished one (PathNotFoundError if none)."""

    @abc.abstractmethod
    async def stat(self, path: str) -> FileInfo: ...

    @abc.abstractmethod
    async def list(self, path: str) -> list[str]:
        """Full paths of the direct children of the directory ``path``."""

    @abc.abstractmethod
    async def move(self, src: str, dst: str) -> None:
        """Move a committed object, replacing ``dst``; atomic where the backend allows."""

    @abc.abstractmethod
    async def delete(self, path: str) -> None:
        """Delete the object or the whole tree under ``path``."""

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """Every object under ``path``, recursively (default: built on list and stat)."""
        for child in await self.list(path):
            info = await self.stat(child)
            if info.is_dir:
                async for sub in self.walk(child):
                    yield sub
            else:
                yield info

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        """A URL the client can fetch the object from directly, or None where there is none."""
        return None

    def local_path(self, path: str) -> Path | None:
        """The object's file on a local filesystem, for zero-copy sendfile, or None."""
        return None

    async def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections and threads."""

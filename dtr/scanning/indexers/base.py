"""The indexer interface: one indexer per kind of installed-software record.

The layer reader (``dtr.scanning.layer``) makes a fresh instance of every indexer for each layer,
then, for each regular file of the layer in tar order:

1. calls ``wants(path, size, mode)`` on every indexer (cheap: called for every file);
2. for a file over ``HEAD`` bytes, reads its first ``HEAD`` bytes and asks ``accepts(path, head)``
   of those that wanted it (a binary indexer checks the magic number there), so a big file none
   of them accepts is streamed past, never held;
3. reads the file's bytes once (never more than ``max(limit(...))`` of the indexers that want it)
   and calls ``add(path, data)`` on each indexer that wanted (and accepted) it;

and at the end calls ``finish(index)``, which adds what the indexer found to the layer's
``LayerIndex`` (packages, distribution, package database locations, warnings).

An indexer holds at most what it was given (bounded by its limits) and raises ``LayerError`` for a
record it must read but cannot (a package database over its size limit, a corrupt database); it
skips, with a warning, what it may ignore (an executable over the limit). Indexers never touch
disk or the network; they are synchronous and run in the layer reader's thread.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from dtr.scanning.types import LayerIndex, Package

MiB = 1 << 20
#: How much of a file ``Indexer.accepts`` is shown before the rest is read.
HEAD = 4096


class Indexer(abc.ABC):
    """Finds one kind of installed software in a layer's files."""

    #: Short name (``os``, ``dpkg``, ``apk``, ``rpm``, ``python``, ``npm``, ``gem``, ``java``, ``go``, ``rust``).
    name: ClassVar[str]

    @abc.abstractmethod
    def wants(self, path: str, size: int, mode: int) -> bool:
        """Whether to read the regular file ``path`` (``size`` bytes, permission bits ``mode``).
        May raise ``LayerError`` for a record it needs that is over its limit."""

    def limit(self, path: str) -> int:
        """Most bytes of ``path`` this indexer needs (a wanted file over it is not read)."""
        return 64 * MiB

    def accepts(self, path: str, head: bytes) -> bool:
        """Whether, having seen its first ``HEAD`` bytes, this indexer still wants the file
        (only asked for files over ``HEAD`` bytes)."""
        return True

    @abc.abstractmethod
    def add(self, path: str, data: bytes) -> None:
        """A wanted file's content (whole, as ``wants`` allowed)."""

    @abc.abstractmethod
    def finish(self, index: LayerIndex) -> None:
        """Add what was found to ``index``."""


class FileIndexer(Indexer):
    """An indexer whose records are files of their own (language packages' metadata, archives,
    binaries): it keeps the packages found and its warnings until ``finish``, and skips, with a
    warning, a wanted file over ``max_size`` bytes (``fits``)."""

    #: What its files are, for warnings ("package.json", "executable").
    what: ClassVar[str]
    #: The largest file it reads.
    max_size: int

    def __init__(self) -> None:
        self._packages: list[Package] = []
        self._warnings: list[str] = []

    def fits(self, path: str, size: int, skipped: str = "not read") -> bool:
        """Whether ``size`` is within ``max_size``; if not, a warning saying so (and ``skipped``)."""
        if size <= self.max_size:
            return True
        self._warnings.append(f"{path}: {self.what} of {size} bytes over the {self.max_size} byte limit, {skipped}")
        return False

    def limit(self, path: str) -> int:
        return self.max_size

    def finish(self, index: LayerIndex) -> None:
        index.packages.extend(self._packages)
        index.warnings.extend(self._warnings)

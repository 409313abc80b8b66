"""Indexers: see ``base.Indexer``. ``all_indexers()`` is the one list of them, in the order their
findings are reported; ``INDEXER_VERSION`` changes whenever any indexer finds more or different
things, so layers indexed by an older version are re-indexed when next needed."""

from __future__ import annotations

from dtr.scanning.indexers.apk import ApkIndexer
from dtr.scanning.indexers.base import Indexer
from dtr.scanning.indexers.dpkg import DpkgIndexer
from dtr.scanning.indexers.gem import GemIndexer
from dtr.scanning.indexers.go import GoIndexer
from dtr.scanning.indexers.java import JavaIndexer
from dtr.scanning.indexers.npm import NpmIndexer
from dtr.scanning.indexers.os import OsIndexer
from dtr.scanning.indexers.python import PythonIndexer
from dtr.scanning.indexers.rust import RustIndexer

#: Bump when an indexer's output changes for the same layer.
INDEXER_VERSION = 1


def all_indexers() -> list[Indexer]:
    """A fresh instance of every indexer (one set per layer)."""
    return [
        OsIndexer(),
        DpkgIndexer(),
        ApkIndexer(),
        PythonIndexer(),
        NpmIndexer(),
        GemIndexer(),
        JavaIndexer(),
        GoIndexer(),
        RustIndexer(),
    ]

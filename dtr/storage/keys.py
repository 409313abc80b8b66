"""Storage paths as object names under a root prefix, and back: shared by the object-store drivers."""

from __future__ import annotations


class ObjectKeys:
    """``/a/b`` <-> ``<root>/a/b``; ``/`` is the root itself. Paths are already checked (wrapper.py)."""

    def __init__(self, rootdirectory: str) -> None:
        root = rootdirectory.strip("/")
        #: The root with a trailing ``/``, or empty: every object name starts with it.
        self.prefix = f"{root}/" if root else ""

    def key(self, path: str) -> str:
        """The object name of ``path``."""
        return self.prefix + path.lstrip("/") if path != "/" else self.prefix.rstrip("/")

    def dir(self, path: str) -> str:
        """The name prefix of everything under the directory ``path``."""
        return self.prefix if path == "/" else self.key(path) + "/"

    def path(self, key: str) -> str:
        """The storage path of the object name ``key`` (which starts with ``prefix``)."""
        return "/" + key[len(self.prefix):]

"""Storage paths as object names under a root prefix, and back: shared by the object-store drivers."""

from __future__ import annotations

#: Suffix of the hidden object where a resumable writer keeps its state beside its path.
STATE_SUFFIX = ".dtr-writer"


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

    def state_key(self, path: str) -> str:
        """The hidden object ``<dir>/.<name>.dtr-writer`` holding a resumable writer's state for ``path``."""
        head, _, name = path.rpartition("/")
        return self.key(f"{head}/.{name}{STATE_SUFFIX}")

    def path(self, key: str) -> str:
        """The storage path of the object name ``key`` (which starts with ``prefix``)."""
        return "/" + key[len(self.prefix):]

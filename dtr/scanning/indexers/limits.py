"""Size limits the OS indexers share, and the error for a package database over its limit."""

from __future__ import annotations

from dtr.scanning.types import LayerError

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

#: Largest package database read (dpkg ``status``, apk ``installed``, rpm databases).
PACKAGE_DB_LIMIT = 256 * MiB


def human_size(n: int) -> str:
    """``n`` bytes for a message: ``3 GiB``, ``256 MiB``, ``1.5 KiB``, ``100 bytes``."""
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if n >= unit:
            value = n / unit
            return f"{value:.0f} {name}" if value >= 10 or value == int(value) else f"{value:.1f} {name}"
    return f"{n} bytes"


def check_db_size(path: str, size: int, limit: int = PACKAGE_DB_LIMIT) -> None:
    """``LayerError`` if the package database ``path`` is over ``limit``."""
    if size > limit:
        raise LayerError(f"{path}: {human_size(size)} is over the {human_size(limit)} limit for package databases")

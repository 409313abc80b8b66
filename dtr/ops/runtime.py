"""Process tuning applied once at ``dtr serve`` start: the event loop and the allocator."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("dtr.runtime")

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc() -> None:
    """Keep RSS flat under streaming: buffers of 256 KiB and up are mmapped and returned to the
    OS when freed (glibc would otherwise raise its threshold and keep them in per-thread arenas),
    and the I/O threads share a few arenas instead of one each."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)
        libc.mallopt(_M_ARENA_MAX, 4)
    except (OSError, AttributeError) as e:  # not glibc: nothing to tune
        log.debug("malloc tuning unavailable: %s", e)


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return
    uvloop.install()

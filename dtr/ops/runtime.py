"""Process tuning applied once at ``dtr serve`` start: the event loop and the allocator; and the
``Server`` header (``create_app``)."""

from __future__ import annotations

import asyncio
import ctypes
import logging
from typing import Any

log = logging.getLogger("dtr.runtime")

_M_ARENA_MAX = -8
#: What every response says the server is: no versions.
SERVER_NAME = "dtr"


def name_the_server() -> None:
    """``Server: dtr`` on every response, aiohttp's own error pages included. aiohttp has no
    setting for it: it sends its module default (naming Python's and its own versions) unless a
    response sets the header, so that default is replaced once here, which costs no request
    anything (a header set per response cost ~1% of a manifest GET)."""
    from aiohttp import web_response

    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]


def _libc_function(name: str) -> Any:
    """``name`` from the C library already loaded in this process (glibc), or None elsewhere.
    (``CDLL(None)`` looks in the process itself: no ``find_library``, which runs ``ldconfig``.)"""
    return getattr(ctypes.CDLL(None), name, None)


def tune_malloc() -> None:
    """Keep RSS down under many I/O threads: they share a few malloc arenas instead of one each.
    (A fixed low mmap threshold would return streaming buffers to the OS too, but the page
    faults of fresh mappings halved push throughput: measured, so not done.)"""
    mallopt = _libc_function("mallopt")
    if mallopt is None:  # not glibc: nothing to tune
        log.debug("malloc tuning unavailable")
        return
    mallopt(_M_ARENA_MAX, 4)


async def trim_memory_periodically(interval: float = 10.0) -> None:
    """Give freed heap memory back to the OS every ``interval`` seconds (glibc ``malloc_trim``):
    after a burst of concurrent uploads RSS falls back instead of staying at the peak."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return
    while True:
        await asyncio.sleep(interval)
        trim(0)


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return
    uvloop.install()

"""Tasks: in the background for the life of a context (``background``), or many at a time with a
bound (``bounded``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


@contextlib.asynccontextmanager
async def background(coro: Coroutine[Any, Any, Any]) -> AsyncIterator[asyncio.Task[Any]]:
    """Run ``coro`` as a task for the life of the ``async with`` block; cancel and await it after."""
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def bounded(items: Iterable[T], act: Callable[[T], Awaitable[None]], limit: int) -> None:
    """``act`` on every item, ``limit`` at a time; the first failure cancels the others and is raised."""
    slots = asyncio.Semaphore(limit)

    async def one(item: T) -> None:
        async with slots:
            await act(item)

    try:
        async with asyncio.TaskGroup() as group:
            for item in items:
                group.create_task(one(item))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None

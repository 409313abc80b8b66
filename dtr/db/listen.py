"""LISTEN on Postgres channels for the life of a task, outside the pool: one connection of its own
(``asyncpg``, made as the pool's are: ``connect_args``), reconnected with back-off after it is lost.
A process holds one (``Notifications``): the caches and the job worker subscribe to it.

``connected`` runs once the connection listens (each time: notifications sent while it was away
are lost, so a caller that must not miss one acts as if it got one), ``lost`` each time it is gone
or could not be made."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg

from dtr.db.engine import connect_args

log = logging.getLogger("dtr.db.listen")


async def listen(dsn: str, channels: Mapping[str, Callable[[str], None]], *,
                 connected: Callable[[], None] = lambda: None, lost: Callable[[], None] = lambda: None) -> None:
    """Call ``channels[channel](payload)`` for each notification on each of ``channels`` until cancelled."""
    names = ", ".join(channels)
    delay = 0.5
    while True:
        conn: Any = None
        try:
            conn = await asyncpg.connect(**connect_args(dsn))
            gone = asyncio.Event()
            conn.add_termination_listener(lambda _c, ev=gone: ev.set())
            for channel, notified in channels.items():
                await conn.add_listener(channel, lambda _c, _pid, _ch, payload, call=notified: call(payload))
            connected()
            delay = 0.5
            await gone.wait()
            log.warning("lost the connection listening on %s; reconnecting", names)
        except asyncio.CancelledError:
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InternalClientError) as e:
            log.warning("cannot listen on %s: %s", names, e)
        finally:
            lost()
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10)


class Notifications:
    """The process's one listening connection, shared: each part ``subscribe``s the channels it
    needs before ``run`` starts (its ``connected`` and ``lost`` run as ``listen`` says)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._channels: dict[str, list[Callable[[str], None]]] = {}
        self._connected: list[Callable[[], None]] = []
        self._lost: list[Callable[[], None]] = []
        self._running = False

    def subscribe(self, channel: str, notified: Callable[[str], None], *,
                  connected: Callable[[], None] | None = None, lost: Callable[[], None] | None = None) -> None:
        if self._running:
            raise RuntimeError("subscribe before the notifications run")
        self._channels.setdefault(channel, []).append(notified)
        if connected is not None:
            self._connected.append(connected)
        if lost is not None:
            self._lost.append(lost)

    async def run(self) -> None:
        """Listen on every channel subscribed until cancelled (nothing to do when none is)."""
        self._running = True
        if not self._channels:
            return

        await listen(self.dsn, {channel: _all(calls) for channel, calls in self._channels.items()},
                     connected=_all(self._connected), lost=_all(self._lost))


def _all(calls: Sequence[Callable[..., None]]) -> Callable[..., None]:
    """One callback that calls each of ``calls`` with its arguments, in order."""

    def call_all(*args: str) -> None:
        for call in calls:
            call(*args)

    return call_all

"""The systemd notify protocol (``sd_notify``), written directly: one datagram per message to
``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace).

``Notifier.from_environ()`` takes ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` out of
the environment, so children (the embedded PostgreSQL) neither inherit nor speak for dtr. Without
``NOTIFY_SOCKET`` (not under systemd, or not ``Type=notify``) every call does nothing. A message
that cannot be sent is logged once and otherwise ignored: serving never depends on systemd.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import MutableMapping

log = logging.getLogger("dtr")


class Notifier:
    """Tells systemd about dtr's state: ready, reloading, stopping, a status line, watchdog pings."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        """``address``: the socket (``@`` for the abstract namespace) or None (do nothing);
        ``watchdog_usec``: the unit's ``WatchdogSec`` in microseconds, or None."""
        self._address = "\0" + address[1:] if address and address.startswith("@") else address
        self.watchdog_usec = watchdog_usec
        self._warned = False

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] = os.environ) -> Notifier:
        """The notifier systemd's variables describe (removed from ``environ``). The watchdog is
        dtr's only when ``WATCHDOG_PID`` is absent or this process's id."""
        address = environ.pop("NOTIFY_SOCKET", None) or None
        usec, pid = environ.pop("WATCHDOG_USEC", ""), environ.pop("WATCHDOG_PID", "")
        watchdog = int(usec) if usec.isdigit() and int(usec) > 0 and pid in ("", str(os.getpid())) else None
        return cls(address, watchdog)

    def send(self, *fields: str) -> None:
        """Send ``fields`` (``KEY=value``) as one message; nothing without a socket."""
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(fields).encode(), self._address)
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd", extra={"socket": self._address, "error": str(e)})

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def reloading(self) -> None:
        """Reloading starts; ``ready`` again when it is done (``MONOTONIC_USEC`` as systemd >= 253 wants)."""
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                  "STATUS=reloading TLS certificates")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    async def watchdog(self) -> None:
        """``WATCHDOG=1`` every half ``WatchdogSec``, from the event loop (so a stalled loop stops
        the pings and systemd restarts dtr); returns at once when the unit has no watchdog."""
        if self.watchdog_usec is None or self._address is None:
            return
        interval = self.watchdog_usec / 2e6
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(interval)

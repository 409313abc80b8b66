"""A TCP proxy on 127.0.0.1 counting the bytes clients send upstream, able to cut a connection
once after a number of bytes (an interrupted transfer) or hold it there until released, then
cut it (a transfer in flight when its sender is killed), in threads: tests stay synchronous."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.servers import free_port


class Proxy:
    """Forwards ``127.0.0.1:port`` to ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.sent = 0  # bytes clients sent upstream
        self.cuts = 0
        self._cut_after: int | None = None
        self._hold_after: int | None = None
        #: Set once a connection is held (``hold_after``); ``release`` lets it go on.
        self.held = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_once_after(self, n: int) -> None:
        """Cut the connection carrying the ``n``-th byte sent upstream from now on (once)."""
        with self._lock:
            self._cut_after = self.sent + n

    def hold_after(self, n: int) -> None:
        """Stop forwarding the connection carrying the ``n``-th byte sent upstream from now on
        (once, that byte not sent) until ``release``, which cuts it."""
        with self._lock:
            self._hold_after = self.sent + n

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                if upstream:
                    with self._lock:
                        self.sent += len(data)
                        cut = self._cut_after is not None and self.sent >= self._cut_after
                        if cut:
                            self._cut_after = None
                            self.cuts += 1
                        hold = self._hold_after is not None and self.sent >= self._hold_after
                        if hold:
                            self._hold_after = None
                    if cut:
                        break
                    if hold:  # until released; then cut, the bytes in flight lost
                        self.held.set()
                        self._released.wait()
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

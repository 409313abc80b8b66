"""nginx and HAProxy run from the shipped templates (``deploy/nginx.conf``, ``deploy/haproxy.cfg``)
as real processes on 127.0.0.1, in front of dtr replicas."""

from __future__ import annotations

import csv
import re
import socket
import subprocess
import time
from pathlib import Path

from tests.clients.engines import APT
from tests.servers import ROOT, free_port, require_binary, stop_processes

DEPLOY = ROOT / "deploy"


def render(template: Path, **values: str) -> str:
    """``template`` with each ``{{ name }}`` replaced (as the documented sed does); every
    placeholder must be given."""
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"{{{{ {name} }}}}", value)
    left = re.findall(r"\{\{ \w+ \}\}", text)
    assert not left, f"{template.name}: placeholders left: {left}"
    return text


class Balancer:
    """A load balancer on a free port in front of ``replicas`` (``host:port`` each)."""

    def __init__(self, kind: str, workdir: Path, replicas: list[str]) -> None:
        assert kind in ("nginx", "haproxy") and len(replicas) <= 3
        self.kind, self.workdir = kind, workdir
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        # Fewer than three replicas: the others are a port nobody listens on (a dead replica).
        self.replicas = [*replicas, *(f"127.0.0.1:{free_port()}" for _ in range(3 - len(replicas)))]
        self.log = workdir / f"{kind}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        servers = {f"replica{i + 1}": r for i, r in enumerate(self.replicas)}
        binary = require_binary(self.kind, f"{APT} {'nginx-light' if self.kind == 'nginx' else 'haproxy'}")
        conf = self.workdir / f"{self.kind}.conf"
        if self.kind == "nginx":
            conf.write_text(render(DEPLOY / "nginx.conf", listen=self.host, server_name="localhost",
                                   log_dir=str(self.workdir), **servers))
            return [binary, "-p", str(self.workdir), "-c", str(conf), "-g",
                    f"daemon off; pid {self.workdir}/nginx.pid; error_log {self.log} info;"]
        conf.write_text(render(DEPLOY / "haproxy.cfg", bind=self.host, **servers))
        # The test's own additions in a second file: the stats socket that shows each server's state.
        extra = self.workdir / "stats.cfg"
        extra.write_text(f"global\n    stats socket {self.workdir}/stats.sock mode 600 level admin\n")
        return [binary, "-db", "-f", str(conf), "-f", str(extra)]

    def start(self, timeout: float = 20) -> Balancer:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not listen within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def server_states(self) -> dict[str, str]:
        """HAProxy's view of each backend server (``UP``, ``DOWN``, ``UP 1/2``, ...) by replica address."""
        assert self.kind == "haproxy"
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.workdir / "stats.sock"))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        rows = csv.DictReader(data.decode().lstrip("# ").splitlines())
        names = {f"dtr{i + 1}": r for i, r in enumerate(self.replicas)}
        return {names[r["svname"]]: r["status"] for r in rows if r["svname"] in names}

    def stop(self) -> None:
        stop_processes(self.proc)

"""Storage servers for tests, each started once per session on 127.0.0.1 by its fixture.

- ``SwiftAIO``: OpenStack Swift all-in-one (account, container, object and proxy servers from
  Debian's packages, tempauth, tempurl, SLO and the s3api middleware): one server that speaks
  both the Swift API (``auth_url``) and the S3 API (``url``, path-style, ``test:tester`` /
  ``testing``).
- ``Moto``: the moto S3 server (in memory, any credentials).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.servers import free_port, stop_processes

INSTALL_SWIFT = ("apt-get install -y swift swift-proxy swift-account swift-container swift-object memcached "
                 "(or scripts/install-test-deps.sh)")
INSTALL_MOTO = "pip install 'moto[server]>=5' (or scripts/install-test-deps.sh)"

_RING_SCRIPT = """
import sys
from swift.common.ring import RingBuilder
swift_dir, *pairs = sys.argv[1:]
for pair in pairs:
    name, port = pair.split("=")
    b = RingBuilder(8, 1, 1)
    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port), "device": "d1",
               "weight": 100})
    b.rebalance()
    b.get_ring().save(f"{swift_dir}/{name}.ring.gz")
"""

_PIPELINE = ("catch_errors gatekeeper healthcheck proxy_logging cache listing_formats bulk tempurl s3api tempauth "
             "copy slo dlo versioned_writes symlink proxy_logging proxy-server")


class _S3Target:
    url: str
    access_key: str
    secret_key: str
    region: str

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name`` if it is not there yet; returns the name."""
        import contextlib

        import boto3

        s3 = boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.access_key,
                          aws_secret_access_key=self.secret_key, region_name=self.region)
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            s3.create_bucket(Bucket=name)
        return name


def _wait_http(url: str, procs: list[subprocess.Popen[bytes]], log: Path, timeout: float = 60) -> None:
    """Return once ``url`` answers below 500; otherwise stop ``procs`` and raise with the log's tail."""
    try:
        _poll_http(url, procs, log, timeout)
    except BaseException:
        stop_processes(*procs)
        raise


def _poll_http(url: str, procs: list[subprocess.Popen[bytes]], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args!r} exited with {p.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{_tail(log)}")


def _tail(log: Path, n: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class SwiftAIO(_S3Target):
    access_key = "test:tester"
    secret_key = "testing"
    user = "test:tester"
    key = "testing"
    region = "us-east-1"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth_url = f"{self.url}/auth/v1.0"
        self.log = workdir / "swift.log"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> SwiftAIO:
        from tests.servers import require_binary

        for binary in ("swift-proxy-server", "swift-object-server", "swift-container-server",
                       "swift-account-server", "memcached"):
            require_binary(binary, INSTALL_SWIFT)
        swift_dir, devices = self.workdir / "etc", self.workdir / "srv"
        (devices / "d1").mkdir(parents=True, exist_ok=True)
        swift_dir.mkdir(parents=True, exist_ok=True)
        probe = devices / "d1" / ".xattr"
        probe.write_bytes(b"")
        try:
            os.setxattr(probe, "user.dtr", b"1")
        except OSError as e:
            raise RuntimeError(f"Swift needs user xattrs on {devices}: {e}") from None
        ports = {"object": free_port(), "container": free_port(), "account": free_port()}
        memcached_port = free_port()
        subprocess.run(["/usr/bin/python3", "-c", _RING_SCRIPT, str(swift_dir),
                        *(f"{k}={v}" for k, v in ports.items())], check=True, capture_output=True)
        common = f"""
            [DEFAULT]
            bind_ip = 127.0.0.1
            workers = 0
            user = {_user()}
            swift_dir = {swift_dir}
            devices = {devices}
            mount_check = false
            log_udp_host = 127.0.0.1
            log_udp_port = {free_port()}
            log_level = WARNING
        """
        for kind, port in ports.items():
            (swift_dir / f"{kind}-server.conf").write_text(textwrap.dedent(common) + textwrap.dedent(f"""
                bind_port = {port}
                [pipeline:main]
                pipeline = {kind}-server
                [app:{kind}-server]
                use = egg:swift#{kind}
                [{kind}-replicator]
                [{kind}-auditor]
                [{kind}-updater]
                """) + ("[container-sync]\n" if kind == "container" else ""))
        filters = "".join(f"[filter:{f}]\nuse = egg:swift#{f}\n" for f in (
            "catch_errors", "gatekeeper", "healthcheck", "proxy_logging", "listing_formats", "bulk", "tempurl",
            "copy", "slo", "dlo", "versioned_writes", "symlink"))
        (swift_dir / "proxy-server.conf").write_text(textwrap.dedent(common) + textwrap.dedent(f"""
            bind_port = {self.port}
            [pipeline:main]
            pipeline = {_PIPELINE}
            [app:proxy-server]
            use = egg:swift#proxy
            account_autocreate = true
            [filter:tempauth]
            use = egg:swift#tempauth
            user_test_tester = testing .admin
            [filter:s3api]
            use = egg:swift#s3api
            location = us-east-1
            s3_acl = false
            allow_multipart_uploads = true
            [filter:cache]
            use = egg:swift#memcache
            memcache_servers = 127.0.0.1:{memcached_port}
            """) + filters)
        log = open(self.log, "ab")  # noqa: SIM115  (kept open for the children)
        try:
            mc = [shutil.which("memcached") or "memcached", "-l", "127.0.0.1", "-p", str(memcached_port), "-U", "0",
                  "-m", "32"]
            if os.geteuid() == 0:
                mc += ["-u", "root"]
            self.procs.append(subprocess.Popen(mc, stdout=log, stderr=subprocess.STDOUT))
            for kind in ("account", "container", "object", "proxy"):
                self.procs.append(subprocess.Popen([f"/usr/bin/swift-{kind}-server",
                                                    str(swift_dir / f"{kind}-server.conf")],
                                                   stdout=log, stderr=subprocess.STDOUT))
        finally:
            log.close()
        for port in ports.values():
            _wait_http(f"http://127.0.0.1:{port}/recon/version", self.procs, self.log)
        _wait_http(f"{self.url}/healthcheck", self.procs, self.log)
        return self

    def stop(self) -> None:
        stop_processes(*self.procs)


class Moto(_S3Target):
    access_key = "moto-access"
    secret_key = "moto-secret"
    region = "us-east-1"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "moto.log"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> Moto:
        binary = Path(sys.executable).parent / "moto_server"
        if not binary.exists():
            import pytest

            pytest.fail(f"moto_server is not installed; install it with: {INSTALL_MOTO}", pytrace=False)
        with open(self.log, "ab") as log:
            self.procs.append(subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
                                               stdout=log, stderr=subprocess.STDOUT))
        _wait_http(f"{self.url}/moto-api/", self.procs, self.log)
        return self

    def stop(self) -> None:
        stop_processes(*self.procs)


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name

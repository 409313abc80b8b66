"""Real container clients for tests: a private Docker engine, podman, skopeo, umoci, the reference
registry, and small busybox-static images built locally (no network).

Each client runs with its own state directory so tests never touch the machine's images or
credentials. ``CommandError`` carries the command's output, so a failed push says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import bcrypt

from tests.oci import ALL_MANIFEST_TYPES, OCI_INDEX, digest_of
from tests.servers import stop_processes

APT = "apt-get install -y"
#: Debian's docker client, not a newer one that may be earlier in PATH.
DOCKER_CLI = "/usr/bin/docker"



class CommandError(AssertionError):
    pass


def run(args: list[str], *, env: dict[str, str] | None = None, input: str | None = None,
        timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a client command; on failure raise with its stdout and stderr."""
    full_env = {**os.environ, **(env or {})}
    p = subprocess.run(args, env=full_env, input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise CommandError(f"{' '.join(args)} exited with {p.returncode}\nstdout:\n{p.stdout[-4000:]}\n"
                           f"stderr:\n{p.stderr[-4000:]}")
    return p


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, timeout: float = 20) -> None:
    """SIGTERM ``pid``, wait for it, SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# -- images ----------------------------------------------------------------------------------


def make_rootfs(dest: Path, content: str, busybox: str = "/usr/bin/busybox") -> Path:
    """A minimal rootfs: static busybox as /bin/sh and /bin/cat, and ``content`` in /id.txt."""
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    for applet in ("sh", "cat", "ls", "test"):
        (dest / "bin" / applet).symlink_to("busybox")
    (dest / "id.txt").write_text(content)
    return dest


def rootfs_tar(workdir: Path, content: str, busybox: str = "/usr/bin/busybox") -> Path:
    """``make_rootfs`` as an uncompressed tar (for ``docker import`` / ``podman import``)."""
    root = make_rootfs(workdir / "rootfs", content, busybox)
    out = workdir / "rootfs.tar"
    with tarfile.open(out, "w") as tar:
        for child in sorted(root.iterdir()):
            tar.add(child, arcname=child.name)
    return out


def read_layer_file(layer: Path, name: str) -> bytes:
    """A file's bytes from a (possibly gzipped) layer tarball."""
    with tarfile.open(layer, "r:*") as tar:
        for member in tar.getmembers():
            if member.name.removeprefix("./").lstrip("/") == name:
                f = tar.extractfile(member)
                assert f is not None
                return f.read()
    raise AssertionError(f"{name} not in layer {layer}")


# -- the Docker engine -----------------------------------------------------------------------


class DockerEngine:
    """A private dockerd (vfs, no bridge, no iptables) with its own socket, state and client config."""

    def __init__(self, workdir: Path, dockerd: str) -> None:
        self.dir = workdir
        self.dockerd = dockerd
        self.socket = workdir / "docker.sock"
        self.pidfile = workdir / "dockerd.pid"
        self.log_path = workdir / "dockerd.log"
        self.env = {"DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(workdir / "config"),
                    "DOCKER_BUILDKIT": "0"}

    def start(self, timeout: float = 60) -> DockerEngine:
        (self.dir / "config").mkdir(parents=True, exist_ok=True)
        (self.dir / "config" / "config.json").write_text("{}")
        (self.dir / "daemon.json").write_text("{}")
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                [self.dockerd, "--config-file", str(self.dir / "daemon.json"),
                 "--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none",
                 "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
                 "--pidfile", str(self.pidfile), "--host", f"unix://{self.socket}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._proc = proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {proc.returncode}:\n{self.log_tail()}")
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"dockerd did not answer within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run([DOCKER_CLI, *args], env=self.env, check=check, timeout=timeout)

    def stop(self) -> None:
        """Stop dockerd by the PID in its pidfile (its containerd exits with it)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = self._proc.pid
        stop_pid(pid, timeout=30)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5)

    def login(self, host: str, user: str, secret: str) -> tuple[int, str]:
        """``docker login`` (the secret on stdin); (exit code, output)."""
        p = run([DOCKER_CLI, "login", "-u", user, "--password-stdin", host], env=self.env, input=secret + "\n",
                check=False)
        return p.returncode, p.stdout + p.stderr

    # images

    def build(self, context: Path, ref: str) -> str:
        """``docker build`` (the classic builder, no network) of ``context`` as ``ref``; its output."""
        return self.docker("build", "--network", "none", "-t", ref, str(context)).stdout

    def import_image(self, tar: Path, ref: str) -> str:
        """``docker import`` a rootfs tar as ``ref``; returns the image id."""
        return self.docker("import", "-c", 'CMD ["/bin/sh"]', str(tar), ref).stdout.strip()

    def push(self, ref: str) -> tuple[str, str]:
        """Push ``ref``; returns (manifest digest docker reports, its output)."""
        out = self.docker("push", ref).stdout
        m = re.search(r"digest: (sha256:[0-9a-f]{64})", out)
        assert m, out
        return m.group(1), out

    def pull(self, ref: str) -> str:
        out = self.docker("pull", ref).stdout
        m = re.search(r"Digest: (sha256:[0-9a-f]{64})", out)
        assert m, out
        return m.group(1)

    def inspect(self, ref: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.docker("image", "inspect", ref).stdout)
        return data[0]

    def run_sh(self, ref: str, script: str) -> str:
        return self.docker("run", "--rm", "--network", "none", ref, "/bin/sh", "-c", script).stdout

    def remove(self, ref: str) -> None:
        """Remove the image and every tag of it, so the next pull really downloads."""
        image_id = self.inspect(ref)["Id"]
        self.docker("rmi", "-f", image_id)


# -- podman, skopeo, umoci ---------------------------------------------------------------------


class Podman:
    """Root podman on vfs with its own storage, run dir and auth file."""

    def __init__(self, workdir: Path, binary: str) -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "tmp").mkdir(exist_ok=True)
        self.base = [binary, "--root", str(workdir / "root"), "--runroot", str(workdir / "run"),
                     "--tmpdir", str(workdir / "tmp"), "--storage-driver", "vfs",
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        self.env = {"REGISTRY_AUTH_FILE": str(workdir / "auth.json"), "TMPDIR": str(workdir / "tmp")}
        (workdir / "auth.json").write_text('{"auths": {}}')

    def podman(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run([*self.base, *args], env=self.env, check=check, timeout=timeout)

    def push(self, ref: str) -> str:
        digestfile = self.dir / "tmp" / "push.digest"
        self.podman("push", "--tls-verify=false", "--digestfile", str(digestfile), ref)
        return digestfile.read_text().strip()

    def pull(self, ref: str, *extra: str) -> str:
        """Pull ``ref``; returns the image id."""
        return self.podman("pull", "-q", "--tls-verify=false", *extra, ref).stdout.strip().splitlines()[-1]

    def inspect(self, ref: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.podman("image", "inspect", ref).stdout)
        return data[0]

    def run_sh(self, ref: str, script: str) -> str:
        return self.podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
                           "--ulimit", "nproc=1024:1024", ref, "/bin/sh", "-c", script).stdout

    def storage_ref(self, ref: str) -> str:
        """``ref`` in this podman's image store, as a containers-storage transport name (for skopeo)."""
        return f"containers-storage:[vfs@{self.dir / 'root'}+{self.dir / 'run'}]{ref}"

    def remove(self, ref: str) -> None:
        self.podman("rmi", "-f", self.inspect(ref)["Id"])


class Skopeo:
    def __init__(self, workdir: Path, binary: str) -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.env = {"REGISTRY_AUTH_FILE": str(workdir / "auth.json"), "TMPDIR": str(workdir)}
        (workdir / "auth.json").write_text('{"auths": {}}')

    def skopeo(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run([self.binary, *args], env=self.env, check=check, timeout=timeout)

    def copy(self, src: str, dest: str, *extra: str) -> str:
        """``skopeo copy`` without TLS checks; returns the manifest digest written."""
        digestfile = self.dir / f"copy-{time.monotonic_ns()}.digest"
        self.skopeo("copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                    "--digestfile", str(digestfile), *extra, src, dest)
        digest = digestfile.read_text().strip()
        digestfile.unlink()
        return digest

    def list_tags(self, ref: str, *args: str) -> list[str]:
        """``skopeo list-tags`` of ``docker://ref``; ``args``: more options (``--creds``)."""
        tags: list[str] = json.loads(self.skopeo("list-tags", "--tls-verify=false", *args,
                                                 f"docker://{ref}").stdout)["Tags"]
        return tags


class Umoci:
    """Builds OCI image layouts from directories."""

    def __init__(self, binary: str) -> None:
        self.binary = binary

    def umoci(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([self.binary, *args])

    def build(self, layout: Path, tag: str, rootfs: Path, arch: str = "amd64",
              top: dict[str, str | None] | None = None) -> None:
        """Image ``layout:tag`` with ``rootfs`` as its first layer (layout created if missing) and, with
        ``top``, a second layer that writes (text) or deletes (None, a whiteout) the files it names.

        unpack + repack, not ``umoci insert``: umoci 0.4.7's insert writes a tar without its padding
        and end-of-archive blocks.
        """
        if not (layout / "index.json").exists():
            self.umoci("init", "--layout", str(layout))
        image = f"{layout}:{tag}"
        bundle = rootfs.with_name(f"{rootfs.name}.bundle")
        self.umoci("new", "--image", image)
        self.umoci("unpack", "--image", image, str(bundle))
        shutil.copytree(rootfs, bundle / "rootfs", symlinks=True, dirs_exist_ok=True)
        self.umoci("repack", "--refresh-bundle", "--image", image, str(bundle))
        if top:
            for name, text in top.items():
                path = bundle / "rootfs" / name
                if text is None:
                    path.unlink()
                else:
                    path.write_text(text)
            self.umoci("repack", "--image", image, str(bundle))
        shutil.rmtree(bundle)
        self.umoci("config", "--image", image, "--config.cmd", "/bin/sh", "--os", "linux",
                   "--architecture", arch)


def add_index(layout: Path, tag: str, children: dict[str, tuple[str, str]]) -> str:
    """Tag an OCI image index in ``layout`` over images tagged there; ``children``: tag -> (os, arch).

    Returns the index digest.
    """
    top = json.loads((layout / "index.json").read_text())
    by_tag = {d.get("annotations", {}).get("org.opencontainers.image.ref.name"): d for d in top["manifests"]}
    manifests = []
    for child_tag, (os_, arch) in children.items():
        d = by_tag[child_tag]
        manifests.append({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
                          "platform": {"os": os_, "architecture": arch}})
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": manifests}).encode()
    digest = digest_of(body)
    (layout / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(body)
    top["manifests"].append({"mediaType": OCI_INDEX, "digest": digest,
                             "size": len(body), "annotations": {"org.opencontainers.image.ref.name": tag}})
    (layout / "index.json").write_text(json.dumps(top))
    return digest


def verify_dir_image(out: Path, digest: str) -> dict[str, Any]:
    """Check a ``skopeo copy ... dir:OUT`` copy: manifest digest and every blob's digest; returns the manifest."""
    raw = (out / "manifest.json").read_bytes()
    assert digest_of(raw) == digest
    manifest: dict[str, Any] = json.loads(raw)
    for desc in [manifest["config"], *manifest["layers"]]:
        path = out / desc["digest"].split(":")[1]
        assert path.stat().st_size == desc["size"], desc
        assert sha256_file(path) == desc["digest"], desc
    return manifest


# -- the reference registry ------------------------------------------------------------------


def htpasswd_file(path: Path, user: str, password: str) -> Path:
    """An htpasswd file of one bcrypt line (Go distribution's basic auth), bcrypt's cheapest cost."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"{user}:{hashed}\n")
    return path


class ReferenceRegistry:
    """Go distribution's ``registry serve`` (Debian's docker-registry), filesystem storage; no auth
    unless ``htpasswd`` (a file of bcrypt lines) is given, plain HTTP unless ``tls`` (cert, key)."""

    def __init__(self, workdir: Path, binary: str, port: int, htpasswd: Path | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.dir = workdir
        self.binary = binary
        self.host = f"127.0.0.1:{port}"
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        workdir.mkdir(parents=True, exist_ok=True)
        http: dict[str, object] = {"addr": self.host}
        if tls:
            http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
        self.config_path.write_text(json.dumps({
            "version": 0.1,
            "log": {"accesslog": {"disabled": False}, "level": "info", "formatter": "json"},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}, "delete": {"enabled": True}},
            "http": http,
            **({"auth": {"htpasswd": {"realm": "reference", "path": str(htpasswd)}}} if htpasswd else {}),
        }))

    def start(self, timeout: float = 30) -> ReferenceRegistry:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "serve", str(self.config_path)],
                                         stdout=log, stderr=subprocess.STDOUT)
        unverified = ssl._create_unverified_context()  # readiness only
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2, context=unverified) as r:
                    if r.status == 200:
                        return self
            except urllib.error.HTTPError as e:
                if e.code == 401:  # up, with auth
                    return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"registry did not answer within {timeout}s")

    def stop(self) -> None:
        stop_processes(self.proc)


# -- a synchronous /v2 reader ----------------------------------------------------------------


class V2:
    """Just enough of the /v2 API, over urllib, to check what a client pushed."""

    def __init__(self, url: str) -> None:
        self.url = url

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, data: bytes | None = None
                ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def manifest(self, repo: str, reference: str) -> tuple[str, str, bytes]:
        """(digest, media type, bytes) of a manifest, any type accepted."""
        status, headers, body = self.request("GET", f"/v2/{repo}/manifests/{reference}",
                                             {"Accept": ALL_MANIFEST_TYPES})
        assert status == 200, (status, body[:500])
        digest = headers["Docker-Content-Digest"]
        assert digest == digest_of(body)
        return digest, headers["Content-Type"], body

    def blob(self, repo: str, digest: str) -> bytes:
        status, _, body = self.request("GET", f"/v2/{repo}/blobs/{digest}")
        assert status == 200, (status, body[:500])
        assert digest_of(body) == digest
        return body

    def check_image(self, repo: str, reference: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """Every blob of an image manifest is there with its digest; returns (digest, manifest, config)."""
        digest, _, raw = self.manifest(repo, reference)
        manifest: dict[str, Any] = json.loads(raw)
        config: dict[str, Any] = json.loads(self.blob(repo, manifest["config"]["digest"]))
        for layer in manifest["layers"]:
            assert len(self.blob(repo, layer["digest"])) == layer["size"]
        return digest, manifest, config


def access_log(path: Path, url: str, within: float = 60) -> list[dict[str, Any]]:
    """dtr's JSON access-log lines (``msg == "request"``) of every request answered so far.

    dtr writes access lines in batches, in order, a moment after each request: this sends a marker
    request (``GET /v2/`` with an ``X-Request-Id`` of its own) to the server at ``url``, whose log is
    ``path``, and reads the log once the marker's line is there (the marker's line is left out)."""
    marker = f"access-log-marker-{os.urandom(8).hex()}"
    request = urllib.request.Request(f"{url}/v2/", headers={"X-Request-Id": marker})
    with contextlib.suppress(urllib.error.HTTPError):  # a 401 is logged as well
        urllib.request.urlopen(request, timeout=30).close()
    deadline = time.monotonic() + within
    while True:
        records = []
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and rec.get("msg") == "request":
                    records.append(rec)
        if any(rec.get("request_id") == marker for rec in records):
            return [rec for rec in records if rec.get("request_id") != marker]
        if time.monotonic() >= deadline:
            raise AssertionError(f"the marker request's access line is not in {path} after {within}s")
        time.sleep(0.1)

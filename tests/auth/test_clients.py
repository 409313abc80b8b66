"""Real clients log in and push/pull as users of each level: Docker engine, podman, skopeo.

rw (read-write) may push and pull; ro (read-only) may pull, and its push is denied; a wrong
password fails the login with 401; a personal access token works as the password.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH
from tests.auth.world import World
from tests.clients.engines import DockerEngine, Podman, Skopeo, rootfs_tar, run
from tests.servers import DtrProcess


def _docker(engine: DockerEngine, *args: str) -> str:
    return engine.docker(*args).stdout


def _docker_rmi(engine: DockerEngine, ref: str) -> None:
    engine.docker("rmi", "-f", _docker(engine, "image", "inspect", "-f", "{{.Id}}", ref).strip())


def test_docker_login_push_pull_by_level(docker_engine: DockerEngine, auth_dtr: DtrProcess, world: World,
                                         client: Client, busybox: str, tmp_path: Path) -> None:
    host = auth_dtr.host
    rw, ro = world.users["rw"], world.users["ro"]
    assert rw is not None and ro is not None
    rc, out = docker_engine.login(host, rw[0], "wrong-password")
    assert rc != 0 and ("401 Unauthorized" in out or "invalid username or password" in out), out
    rc, out = docker_engine.login(host, rw[0], rw[1])
    assert rc == 0 and "Login Succeeded" in out, out
    tag = uuid.uuid4().hex[:8]
    ref = f"{host}/{world.app}:docker-{tag}"
    _docker(docker_engine, "import", "-c", 'CMD ["/bin/sh"]', str(rootfs_tar(tmp_path, f"docker {tag}", busybox)),
            ref)
    m = re.search(r"digest: (sha256:[0-9a-f]{64})", _docker(docker_engine, "push", ref))
    assert m
    digest = m.group(1)
    _docker_rmi(docker_engine, ref)
    assert digest in _docker(docker_engine, "pull", ref)
    assert _docker(docker_engine, "run", "--rm", "--network", "none", ref, "cat", "/id.txt") == f"docker {tag}"
    # read-only: pull yes, push denied with DTR's reason.
    rc, out = docker_engine.login(host, ro[0], ro[1])
    assert rc == 0, out
    _docker_rmi(docker_engine, ref)
    assert digest in _docker(docker_engine, "pull", ref)
    ref2 = f"{host}/{world.app}:ro-{tag}"
    docker_engine.docker("tag", ref, ref2)
    p = docker_engine.docker("push", ref2, check=False)
    assert p.returncode != 0 and "denied" in (p.stdout + p.stderr), p.stdout + p.stderr
    # An access token is a password.
    token = client.api("POST", "/api_tokens", rw, {"tokenLabel": "docker"}, expect=201).json()["token"]
    rc, out = docker_engine.login(host, rw[0], token)
    assert rc == 0, out
    _docker(docker_engine, "push", ref2)
    # Logged out: the private repository is closed, the public one is open.
    docker_engine.docker("logout", host)
    p = docker_engine.docker("pull", ref, check=False)
    assert p.returncode != 0 and ("unauthorized" in p.stderr or "denied" in p.stderr), p.stderr


def test_podman_login_push_pull_by_level(podman: Podman, auth_dtr: DtrProcess, world: World, busybox: str,
                                         tmp_path: Path) -> None:
    host = auth_dtr.host
    rw, ro = world.users["rw"], world.users["ro"]
    assert rw is not None and ro is not None

    def login(user: str, secret: str) -> tuple[int, str]:
        p = run([*podman.base, "login", "--tls-verify=false", "-u", user, "--password-stdin", host],
                env=podman.env, input=secret + "\n", check=False)
        return p.returncode, p.stdout + p.stderr

    rc, out = login(rw[0], "wrong-password")
    assert rc != 0 and "invalid username/password" in out, out
    rc, out = login(rw[0], rw[1])
    assert rc == 0 and "Login Succeeded" in out, out
    tag = uuid.uuid4().hex[:8]
    ref = f"{host}/{world.app}:podman-{tag}"
    podman.podman("import", "-q", "-c", 'CMD ["/bin/sh"]', str(rootfs_tar(tmp_path, f"podman {tag}", busybox)), ref)
    podman.podman("push", "--tls-verify=false", ref)
    rc, out = login(ro[0], ro[1])
    assert rc == 0, out
    podman.podman("rmi", "-f", ref)
    podman.podman("pull", "-q", "--tls-verify=false", ref)
    out = podman.podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit",
                        "nproc=1024:1024", ref, "cat", "/id.txt").stdout
    assert out == f"podman {tag}"
    p = podman.podman("push", "--tls-verify=false", ref, f"docker://{host}/{world.app}:ro-{tag}", check=False)
    assert p.returncode != 0 and "denied" in p.stderr.lower(), p.stderr


def test_skopeo_creds_by_level(skopeo: Skopeo, auth_dtr: DtrProcess, world: World,
                               oci_layout: Callable[..., Path]) -> None:
    host = auth_dtr.host
    rw, ro = world.users["rw"], world.users["ro"]
    assert rw is not None and ro is not None
    tag = uuid.uuid4().hex[:8]
    layout = oci_layout("img", f"skopeo {tag}")
    dest = f"docker://{host}/{world.app}:skopeo-{tag}"
    digest = skopeo.copy(f"oci:{layout}:img", dest, "--dest-creds", f"{rw[0]}:{rw[1]}")
    p = skopeo.skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{ro[0]}:{ro[1]}", f"oci:{layout}:img",
                      f"docker://{host}/{world.app}:ro-{tag}", check=False)
    assert p.returncode != 0 and "denied" in p.stderr.lower(), p.stderr
    out = skopeo.skopeo("inspect", "--tls-verify=false", "--creds", f"{ro[0]}:{ro[1]}", dest).stdout
    assert digest in out
    p = skopeo.skopeo("inspect", "--tls-verify=false", "--creds", f"{ro[0]}:nope-nope", dest, check=False)
    assert p.returncode != 0 and ("401" in p.stderr or "unauthorized" in p.stderr.lower()), p.stderr
    # Anonymous: the public repository only.
    skopeo.copy(f"oci:{layout}:img", f"docker://{host}/{world.pub}:skopeo-{tag}", "--dest-creds",
                ":".join(ADMIN_AUTH))
    skopeo.skopeo("inspect", "--tls-verify=false", "--no-creds", f"docker://{host}/{world.pub}:skopeo-{tag}")
    p = skopeo.skopeo("inspect", "--tls-verify=false", "--no-creds", dest, check=False)
    assert p.returncode != 0

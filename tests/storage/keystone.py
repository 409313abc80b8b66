"""A real Keystone (OpenStack Identity v3) and a Swift proxy that authenticates through it.

- ``Keystone``: keystone from Debian's ``python3-keystone`` on 127.0.0.1, with a throwaway config
  dir (sqlite database, fernet tokens), bootstrapped by ``keystone-manage`` and served by its WSGI
  app in a threaded ``wsgiref`` server. Only the v3 API exists: Keystone removed v2.0 upstream
  (Queens), so v2.0 auth cannot be tested against a real server.
- ``KeystoneSwiftProxy``: a second Swift proxy in front of a running ``SwiftAIO``'s account,
  container and object servers whose pipeline has keystonemiddleware's ``authtoken`` and
  Swift's ``keystoneauth`` instead of tempauth (accounts are ``AUTH_<project id>``).
- ``KeystoneSwift``: what a driver needs to reach Swift through Keystone: a project ``dtr`` with a
  user ``dtr-swift`` holding the ``member`` role (one of ``operator_roles``) in the ``Default``
  domain, and ``object-store`` endpoints in the catalogue.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import json
import os
import sqlite3
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers import free_port, require_binary, stop_processes
from tests.storage.servers import SwiftAIO, _tail, _user, _wait_http

INSTALL_KEYSTONE = ("apt-get install -y python3-keystone python3-keystonemiddleware "
                    "(or scripts/install-test-deps.sh)")
PYTHON = "/usr/bin/python3"  # Debian's Python, where keystone and keystonemiddleware are installed

_SERVE = """
import socketserver, sys, wsgiref.simple_server as wss
port = int(sys.argv[1]); del sys.argv[1:]  # oslo.config parses sys.argv
from keystone.server.wsgi import initialize_public_application
class Server(socketserver.ThreadingMixIn, wss.WSGIServer):
    daemon_threads = True
    request_queue_size = 128
class Quiet(wss.WSGIRequestHandler):
    def log_message(self, *args): pass
wss.make_server("127.0.0.1", port, initialize_public_application(), server_class=Server,
                handler_class=Quiet).serve_forever()
"""


class Keystone:
    admin_password = "keystone-admin"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth_url = f"{self.url}/v3"
        self.conf = workdir / "keystone.conf"
        self.log = workdir / "keystone.log"
        self.procs: list[subprocess.Popen[bytes]] = []
        self._regions: set[str] = set()

    def start(self) -> Keystone:
        manage = require_binary("keystone-manage", INSTALL_KEYSTONE)
        for d in ("fernet-keys", "credential-keys"):
            (self.workdir / d).mkdir(mode=0o700, exist_ok=True)
        self.conf.write_text(f"""[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///{self.workdir / "keystone.db"}
[fernet_tokens]
key_repository = {self.workdir / "fernet-keys"}
[credential]
key_repository = {self.workdir / "credential-keys"}
[token]
provider = fernet
[identity]
# bcrypt's default 12 rounds make every password check take ~0.25 s; 4 is its minimum.
password_hash_rounds = 4
""")
        owner = ["--keystone-user", _user(), "--keystone-group", _group()]
        bootstrap = ["bootstrap", "--bootstrap-password", self.admin_password, "--bootstrap-region-id", "RegionOne",
                     *(a for kind in ("admin", "internal", "public")
                       for a in (f"--bootstrap-{kind}-url", self.auth_url))]
        # The key repositories need no database: set them up while the schema is created.
        self._manage(manage, ["db_sync"], ["fernet_setup", *owner], ["credential_setup", *owner])
        # WAL: an idle read transaction on one pooled connection must not keep a write on another
        # from committing ("database is locked"); the mode stays with the file.
        with contextlib.closing(sqlite3.connect(self.workdir / "keystone.db")) as db:
            db.execute("PRAGMA journal_mode=WAL")
        self._manage(manage, bootstrap)
        env = {**os.environ, "OS_KEYSTONE_CONFIG_DIR": str(self.workdir), "OS_KEYSTONE_CONFIG_FILES": self.conf.name}
        with open(self.log, "ab") as log:
            self.procs.append(subprocess.Popen([PYTHON, "-c", _SERVE, str(self.port)], env=env, stdout=log,
                                               stderr=subprocess.STDOUT))
        _wait_http(self.auth_url, self.procs, self.log)
        return self

    def stop(self) -> None:
        stop_processes(*self.procs)

    def _manage(self, manage: str, *commands: list[str]) -> None:
        """Run ``keystone-manage`` commands side by side; fail with the log if one fails."""
        with open(self.log, "ab") as log:
            procs = [subprocess.Popen([manage, "--config-file", str(self.conf), *args], stdout=log,
                                      stderr=subprocess.STDOUT) for args in commands]
        failed = [(args[0], p.wait()) for args, p in zip(commands, procs, strict=True) if p.wait()]
        if failed:
            raise RuntimeError(f"keystone-manage failed (command, exit status): {failed}:\n{_tail(self.log)}")

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                 token: str | None = None) -> tuple[dict[str, Any], str]:
        req = urllib.request.Request(f"{self.auth_url}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json",
                                              **({"X-Auth-Token": token} if token else {})})
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return (json.loads(raw) if raw else {}), r.headers.get("X-Subject-Token", "")

    def _admin_token(self) -> str:
        _, token = self._request("POST", "/auth/tokens", {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": self.admin_password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
        return token

    def add_swift(self, swift_url: str, username: str, password: str, project: str) -> str:
        """Create ``project`` and ``username`` (role ``member``) and the ``object-store`` service;
        returns the project's id."""
        token = self._admin_token()

        def call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            return self._request(method, path, body, token)[0]

        project_id = call("POST", "/projects", {"project": {"name": project, "domain_id": "default"}})["project"]["id"]
        user_id = call("POST", "/users", {"user": {"name": username, "password": password, "domain_id": "default",
                                                   "default_project_id": project_id}})["user"]["id"]
        role_id = call("GET", "/roles?name=member")["roles"][0]["id"]
        call("PUT", f"/projects/{project_id}/users/{user_id}/roles/{role_id}")
        self._service_id = call("POST", "/services", {"service": {"type": "object-store", "name": "swift"}})[
            "service"]["id"]
        self._regions.add("RegionOne")
        self.add_swift_region("RegionOne", swift_url)
        return str(project_id)

    def add_swift_region(self, region: str, swift_url: str) -> None:
        """Catalogue ``object-store`` endpoints at ``swift_url`` in ``region`` (created if new)."""
        token = self._admin_token()
        if region not in self._regions:
            self._request("POST", "/regions", {"region": {"id": region}}, token)
            self._regions.add(region)
        for interface in ("public", "internal", "admin"):
            self._request("POST", "/endpoints", {"endpoint": {
                "service_id": self._service_id, "interface": interface, "region_id": region,
                "url": f"{swift_url}/v1/AUTH_%(project_id)s"}}, token)


class KeystoneSwiftProxy:
    """A Swift proxy on ``swift``'s storage servers, authenticating through ``keystone``."""

    def __init__(self, swift: SwiftAIO, keystone: Keystone) -> None:
        self.swift = swift
        self.keystone = keystone
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = swift.workdir / "swift-keystone-proxy.log"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> KeystoneSwiftProxy:
        try:
            subprocess.run([PYTHON, "-c", "import keystonemiddleware.auth_token"], check=True, capture_output=True)
        except subprocess.CalledProcessError:
            import pytest

            pytest.fail(f"keystonemiddleware is not installed for {PYTHON}; install it with: {INSTALL_KEYSTONE}",
                        pytrace=False)
        swift_dir = self.swift.workdir / "etc"
        conf = configparser.RawConfigParser()
        conf.optionxform = str  # type: ignore[assignment,method-assign]
        conf.read(swift_dir / "proxy-server.conf")
        conf["DEFAULT"]["bind_port"] = str(self.port)
        conf["pipeline:main"]["pipeline"] = (
            "catch_errors gatekeeper healthcheck proxy_logging cache listing_formats bulk tempurl authtoken "
            "keystoneauth copy slo dlo versioned_writes symlink proxy_logging proxy-server")
        for section in ("filter:tempauth", "filter:s3api"):
            conf.remove_section(section)
        conf["filter:authtoken"] = {
            "paste.filter_factory": "keystonemiddleware.auth_token:filter_factory",
            "www_authenticate_uri": self.keystone.auth_url,
            "auth_url": self.keystone.auth_url,
            "auth_type": "password",
            # The bootstrap admin validates the users' tokens (a real deployment has a service user).
            "username": "admin",
            "password": self.keystone.admin_password,
            "project_name": "admin",
            "user_domain_id": "default",
            "project_domain_id": "default",
            "delay_auth_decision": "true",
            "cache": "swift.cache",
            "include_service_catalog": "false",
        }
        conf["filter:keystoneauth"] = {"use": "egg:swift#keystoneauth", "operator_roles": "admin, member"}
        path = swift_dir / "proxy-server-keystone.conf"
        with open(path, "w") as f:
            conf.write(f)
        with open(self.log, "ab") as log:
            self.procs.append(subprocess.Popen(["/usr/bin/swift-proxy-server", str(path)], stdout=log,
                                               stderr=subprocess.STDOUT))
        _wait_http(f"{self.url}/healthcheck", self.procs, self.log)
        return self

    def stop(self) -> None:
        stop_processes(*self.procs)


@dataclasses.dataclass
class KeystoneSwift:
    """Swift behind Keystone: the driver's ``authurl``, ``username``, ``password``, ``tenant``, ``domain``
    (or ``tenantid``, ``domainid``)."""

    keystone: Keystone
    proxy: KeystoneSwiftProxy
    auth_url: str
    username: str = "dtr-swift"
    password: str = "dtr-swift-secret"
    project: str = "dtr"
    domain: str = "Default"
    domain_id: str = "default"
    project_id: str = ""
    _regions: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def start(cls, swift: SwiftAIO, workdir: Path) -> KeystoneSwift:
        keystone = Keystone(workdir).start()
        try:
            proxy = KeystoneSwiftProxy(swift, keystone)
            ks = cls(keystone, proxy, keystone.auth_url)
            ks.project_id = keystone.add_swift(proxy.url, ks.username, ks.password, ks.project)
            proxy.start()
        except BaseException:
            keystone.stop()
            raise
        return ks

    def region_for(self, swift_url: str) -> str:
        """A catalogue region whose ``object-store`` endpoints are ``swift_url`` (e.g. a fault proxy)."""
        region = self._regions.get(swift_url)
        if region is None:
            region = self._regions[swift_url] = f"Region{len(self._regions) + 2}"
            self.keystone.add_swift_region(region, swift_url)
        return region

    def stop(self) -> None:
        self.proxy.stop()
        self.keystone.stop()


def _group() -> str:
    import grp

    return grp.getgrgid(os.getegid()).gr_name

"""A real OpenLDAP server for tests: its own config dir, free ports (ldap:// with StartTLS, ldaps://),
a test CA, seeded with people and groups through ldapadd."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.servers import free_port, require_binary, stop_processes

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "slapd-root-secret"
SERVICE_DN = f"cn=dtr,ou=services,{SUFFIX}"
SERVICE_PW = "service-Acc0unt"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
INSTALL = "apt-get install -y slapd ldap-utils"


def _cert_pair(workdir: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dtr test LDAP CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = workdir / "ca.crt", workdir / "server.crt", workdir / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(paths[2], 0o600)
    return paths


def person(uid: str, cn: str, password: str) -> str:
    return (f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {cn.split()[-1]}\n"
            f"mail: {uid}@example.org\nuserPassword: {password}\n\n")


def group(name: str, members: list[str]) -> str:
    lines = "".join(f"member: uid={m},{PEOPLE}\n" for m in members)
    return f"dn: cn={name},{GROUPS}\nobjectClass: groupOfNames\ncn: {name}\n{lines}\n"


class Slapd:
    def __init__(self, workdir: Path, slapd: str) -> None:
        self.dir = workdir
        self.slapd = slapd
        self.port, self.tls_port = free_port(), free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{self.tls_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Slapd:
        d = self.dir
        (d / "db").mkdir(parents=True, exist_ok=True)
        self.ca, cert, key = _cert_pair(d)
        modulepath = "/usr/lib/ldap"
        (d / "slapd.conf").write_text(f"""
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath {modulepath}
moduleload back_mdb
TLSCACertificateFile {self.ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
database mdb
maxsize 104857600
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {d}/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
""")
        self.log = open(d / "slapd.log", "ab")  # noqa: SIM115  (kept open for the child)
        self.proc = subprocess.Popen(
            [self.slapd, "-f", str(d / "slapd.conf"), "-h", f"{self.url}/ {self.ldaps_url}/", "-d", "0"],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "LDAPNOINIT": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.proc.returncode}:\n{(d / 'slapd.log').read_text()}")
            if self._ldap("ldapwhoami", "-x", "-D", ROOT_DN, "-w", ROOT_PW, check=False).returncode == 0:
                break
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError("slapd did not answer in time")
        self.add(f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
                 + "".join(f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n\n"
                           for ou in ("people", "groups", "services"))
                 + f"dn: {SERVICE_DN}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\n"
                   f"cn: dtr\nuserPassword: {SERVICE_PW}\n\n")
        return self

    def _ldap(self, tool: str, *args: str, input: str | None = None, check: bool = True
              ) -> subprocess.CompletedProcess[str]:
        binary = require_binary(tool, INSTALL)
        p = subprocess.run([binary, "-H", self.url, *args], input=input, capture_output=True, text=True, timeout=30,
                           env={**os.environ, "LDAPNOINIT": "1"})
        if check and p.returncode != 0:
            raise AssertionError(f"{tool} failed: {p.stdout}{p.stderr}")
        return p

    def add(self, ldif: str) -> None:
        self._ldap("ldapadd", "-x", "-D", ROOT_DN, "-w", ROOT_PW, input=ldif)

    def delete(self, dn: str) -> None:
        self._ldap("ldapdelete", "-x", "-D", ROOT_DN, "-w", ROOT_PW, dn)

    def modify(self, ldif: str) -> None:
        self._ldap("ldapmodify", "-x", "-D", ROOT_DN, "-w", ROOT_PW, input=ldif)

    def stop(self) -> None:
        stop_processes(self.proc)
        if getattr(self, "log", None):
            self.log.close()

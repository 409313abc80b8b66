"""An internal CA that issues the server certificate for ``http.tls: auto``: this replica's own
under data_dir, or ``http.tls_ca`` (files every replica shares)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dtr.config import Config, ConfigError, TLSFiles

#: Keys a CA may sign with.
CAKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ca_paths(cfg: Config) -> tuple[Path, Path]:
    if cfg.http.tls_ca is not None:
        return Path(cfg.http.tls_ca.certificate), Path(cfg.http.tls_ca.key)
    d = cfg.data_path / "ca"
    return d / "ca.crt", d / "ca.key"


def _load_ca(crt: Path, key_path: Path) -> tuple[x509.Certificate, CAKey]:
    """The CA in these PEM files; ConfigError naming them when they are no CA certificate and key."""
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except (OSError, ValueError, TypeError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise ConfigError(f"cannot load the CA {crt} with the key {key_path}: {why}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigError(f"{key_path} is not an EC or RSA private key")
    return cert, key


def ensure_ca(cfg: Config) -> tuple[x509.Certificate, CAKey]:
    """Load the CA: ``http.tls_ca`` when configured (never created), else this replica's own,
    created on first use."""
    crt, key_path = ca_paths(cfg)
    if cfg.http.tls_ca is not None or (crt.exists() and key_path.exists()):
        return _load_ca(crt, key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dtr internal CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _server_cert(cfg: Config) -> TLSFiles:
    """A server certificate from the internal CA for the configured host, localhost and 127.0.0.1."""
    d = cfg.data_path / "ca"
    crt, key_path = d / "server.crt", d / "server.key"
    ca_cert, ca_key = ensure_ca(cfg)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    if crt.exists() and key_path.exists():
        chain = crt.read_bytes()
        cert = x509.load_pem_x509_certificate(chain)
        # Reused while it is far from expiry and was issued by the CA configured now.
        if chain.endswith(ca_pem) and cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=30):
            return TLSFiles(str(crt), str(key_path))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(socket.gethostname())]
    ips = {"127.0.0.1", "::1"}
    host = cfg.http.host
    try:
        ips.add(str(ipaddress.ip_address(host)))
    except ValueError:
        if host:
            names.append(x509.DNSName(host))
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in sorted(ips)]
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host or "localhost")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    return TLSFiles(str(crt), str(key_path))


def _files(cfg: Config) -> TLSFiles | None:
    """The certificate and key ``http.tls`` names (``auto``: the internal CA's, renewed when due)."""
    tls = cfg.http.tls
    return _server_cert(cfg) if tls == "auto" else tls


def _context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def server_ssl_context(cfg: Config) -> ssl.SSLContext | None:
    """The server's TLS context, or None for plain HTTP; OSError/ssl.SSLError/ValueError when the
    files do not load."""
    files = _files(cfg)
    if files is None:
        return None
    ctx = _context()
    ctx.load_cert_chain(files.certificate, files.key)
    return ctx


def reload_cert_chain(cfg: Config, ctx: ssl.SSLContext) -> None:
    """Load the certificate files again into the live ``ctx``: new handshakes present the new chain,
    connections already open keep theirs. The files are read once, into a private copy that a
    scratch context loads first: a broken pair raises (as ``server_ssl_context``) and leaves ``ctx``
    as it was (a failed load into a live context can leave it with a certificate and no key)."""
    files = _files(cfg)
    assert files is not None
    cert, key = Path(files.certificate).read_bytes(), Path(files.key).read_bytes()
    with tempfile.TemporaryDirectory(prefix="dtr-tls-") as d:
        cert_copy, key_copy = Path(d) / "cert.pem", Path(d) / "key.pem"
        cert_copy.write_bytes(cert)
        _write_private(key_copy, key)
        _context().load_cert_chain(cert_copy, key_copy)
        ctx.load_cert_chain(cert_copy, key_copy)

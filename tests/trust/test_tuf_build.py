"""Builders for the TUF tests: real keys of every kind, root certificates made the way the notary
and docker clients make them, signatures of every method, and whole repositories' files."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dtr.trust.canonical import canonical
from dtr.trust.tufkeys import PublicKey, key_id

Private = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
GUN = "127.0.0.1:5000/ns/app"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def make_cert(private: Private, cn: str = GUN, *, ca: bool = False, sha1: bool = False,
              not_before: dt.datetime | None = None, years: int = 10) -> x509.Certificate:
    """Self-signed, CN=cn, CA:FALSE, digitalSignature+keyEncipherment, EKU codeSigning, 10 years (as
    notary's ``utils.NewCertificate``)."""
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(private.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + dt.timedelta(days=365 * years))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(True, False, True, False, False, ca, False, False, False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False))
    algorithm = None if isinstance(private, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = builder.sign(private, algorithm)  # type: ignore[arg-type]
    if sha1:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        return _resign_sha1(cert, private)
    return cert


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes(
        (n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + body


def _resign_sha1(cert: x509.Certificate, private: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """``cert`` signed ecdsa-with-SHA1 instead (cryptography refuses to make SHA-1 certificates; old
    clients did): the TBS's algorithm identifier swapped, re-signed, reassembled in DER."""
    sha256_alg = _tlv(0x30, _tlv(0x06, bytes.fromhex("2a8648ce3d040302")))
    sha1_alg = _tlv(0x30, _tlv(0x06, bytes.fromhex("2a8648ce3d0401")))
    tbs = cert.tbs_certificate_bytes
    header = 2 if tbs[1] < 0x80 else 2 + (tbs[1] & 0x7F)
    new_tbs = _tlv(0x30, tbs[header:].replace(sha256_alg, sha1_alg, 1))
    sig = private.sign(new_tbs, ec.ECDSA(hashes.SHA1()))
    return x509.load_der_x509_certificate(_tlv(0x30, new_tbs + sha1_alg + _tlv(0x03, b"\x00" + sig)))


class Key:
    """A private key and its TUF public key object (``x509``: as a certificate key)."""

    def __init__(self, private: Private, *, cert: x509.Certificate | None = None, pem_rsa: bool = False) -> None:
        self.private = private
        pub = private.public_key()
        if cert is not None:
            keytype = "ecdsa-x509" if isinstance(private, ec.EllipticCurvePrivateKey) else "rsa-x509"
            public = b64(cert.public_bytes(serialization.Encoding.PEM))
        elif isinstance(private, ed25519.Ed25519PrivateKey):
            keytype = "ed25519"
            public = b64(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        else:
            keytype = "ecdsa" if isinstance(private, ec.EllipticCurvePrivateKey) else "rsa"
            enc = serialization.Encoding.PEM if pem_rsa else serialization.Encoding.DER
            public = b64(pub.public_bytes(enc, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.public = PublicKey(keytype, public, key_id(keytype, public))
        self.id = self.public.key_id

    @property
    def obj(self) -> dict[str, Any]:
        return self.public.key_object()

    def sign(self, message: bytes, method: str | None = None) -> dict[str, str]:
        p = self.private
        if isinstance(p, ed25519.Ed25519PrivateKey):
            sig, method = p.sign(message), method or "eddsa"
        elif isinstance(p, ec.EllipticCurvePrivateKey):
            half = (p.curve.key_size + 7) // 8
            r, s = decode_dss_signature(p.sign(message, ec.ECDSA(hashes.SHA256())))
            sig, method = r.to_bytes(half, "big") + s.to_bytes(half, "big"), method or "ecdsa"
        else:
            method = method or "rsapss"
            pad: padding.AsymmetricPadding = padding.PKCS1v15() if method == "rsapkcs1v15" else padding.PSS(
                mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            sig = p.sign(message, pad, hashes.SHA256())
        return {"keyid": self.id, "method": method, "sig": b64(sig)}


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def root_key(gun: str = GUN, **cert_args: Any) -> Key:
    private = ec_key()
    return Key(private, cert=make_cert(private, gun, **cert_args))


def expires(days: int = 365) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def signed_file(signed: dict[str, Any], *signers: Key, tamper: bool = False) -> bytes:
    """A file as the notary client writes it: signatures over canonical(signed)."""
    msg = canonical(signed)
    sigs = [k.sign(msg + (b"x" if tamper else b"")) for k in signers]
    return json.dumps({"signed": signed, "signatures": sigs}).encode()


def meta(raw: bytes) -> dict[str, Any]:
    return {"hashes": {"sha256": b64(hashlib.sha256(raw).digest()), "sha512": b64(hashlib.sha512(raw).digest())},
            "length": len(raw)}


class Repo:
    """One GUN's keys and the files the notary client would upload."""

    def __init__(self, gun: str = GUN, *, root: Key | None = None) -> None:
        self.gun = gun
        self.root_keys = [root or root_key(gun)]
        self.root_threshold = 1
        self.targets_key = Key(ec_key())
        self.snapshot_key = Key(ec_key())
        self.timestamp_key = Key(ed25519.Ed25519PrivateKey.generate())

    def root_signed(self, version: int = 1, **over: Any) -> dict[str, Any]:
        keys = [*self.root_keys, self.targets_key, self.snapshot_key, self.timestamp_key]
        signed: dict[str, Any] = {
            "_type": "Root", "consistent_snapshot": False, "expires": expires(3650),
            "keys": {k.id: k.obj for k in keys}, "version": version,
            "roles": {"root": {"keyids": [k.id for k in self.root_keys], "threshold": self.root_threshold},
                      "targets": {"keyids": [self.targets_key.id], "threshold": 1},
                      "snapshot": {"keyids": [self.snapshot_key.id], "threshold": 1},
                      "timestamp": {"keyids": [self.timestamp_key.id], "threshold": 1}}}
        signed.update(over)
        return signed

    def root(self, version: int = 1, *, signers: list[Key] | None = None, **over: Any) -> bytes:
        return signed_file(self.root_signed(version, **over), *(self.root_keys if signers is None else signers))

    def targets(self, version: int = 1, tags: dict[str, bytes] | None = None, *, role: str = "targets",
                signer: Key | None = None, delegations: dict[str, Any] | None = None, **over: Any) -> bytes:
        signed: dict[str, Any] = {
            "_type": "Targets", "expires": expires(1000), "version": version,
            "targets": {t: meta(m) for t, m in (tags or {}).items()},
            "delegations": delegations or {"keys": {}, "roles": []}}
        signed.update(over)
        return signed_file(signed, signer or self.targets_key)

    def snapshot(self, files: dict[str, bytes], version: int = 1, *, signer: Key | None = None, **over: Any) -> bytes:
        signed: dict[str, Any] = {"_type": "Snapshot", "expires": expires(1000), "version": version,
                                  "meta": {r: meta(f) for r, f in files.items()}}
        signed.update(over)
        return signed_file(signed, signer or self.snapshot_key)


def delegation(keys: list[Key], name: str = "targets/releases", paths: list[str] | None = None,
               threshold: int = 1) -> dict[str, Any]:
    return {"keys": {k.id: k.obj for k in keys},
            "roles": [{"keyids": [k.id for k in keys], "name": name, "paths": [""] if paths is None else paths,
                       "threshold": threshold}]}


def test_builders_make_notary_like_certificates() -> None:
    key = root_key()
    cert = key.public.certificate()
    assert cert is not None
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == GUN
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert key.public.keytype == "ecdsa-x509"


def test_sha1_certificate_is_really_sha1() -> None:
    from cryptography.x509.oid import SignatureAlgorithmOID
    key = root_key(sha1=True)
    cert = key.public.certificate()
    assert cert is not None and cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA1
    ec_pub = cert.public_key()
    assert isinstance(ec_pub, ec.EllipticCurvePublicKey)
    ec_pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA1()))

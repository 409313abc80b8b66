"""A trusted key as registered: one PEM public key or X.509 certificate, parsed and checked.

Accepted: EC keys on P-256, P-384 and P-521, RSA keys of at least 2048 bits, Ed25519. Refused,
with the reason and never the material itself: private keys (whatever their PEM label), RSA under
2048 bits, other algorithms, anything that does not parse, more than one PEM block.

A key's fingerprint is the lowercase hex SHA-256 of its DER SubjectPublicKeyInfo (the same for a
public key and for a certificate holding it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

#: The largest PEM text accepted (a certificate with a long chain of extensions fits easily).
MAX_PEM = 64 << 10
MIN_RSA_BITS = 2048
_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
#: What ``cryptography`` raises for material it cannot load.
UNLOADABLE = (ValueError, TypeError, UnsupportedAlgorithm)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class KeyRefused(ValueError):
    """Why a PEM text cannot be a trusted key (the message never holds key material)."""


@dataclasses.dataclass(frozen=True)
class KeyMaterial:
    kind: Literal["public-key", "certificate"]
    public_key: PublicKey
    certificate: x509.Certificate | None
    fingerprint: str


def fingerprint(key: PublicKey) -> str:
    """Lowercase hex SHA-256 of ``key``'s DER SubjectPublicKeyInfo."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def check_public_key(key: object) -> PublicKey:
    """``key`` if it is of an accepted algorithm and size; KeyRefused otherwise."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyRefused(f"an RSA key of {key.key_size} bits is too weak: at least {MIN_RSA_BITS} bits")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise KeyRefused(f"the EC curve {key.curve.name} is not accepted (P-256, P-384, P-521)")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise KeyRefused("the key's algorithm is not accepted (EC P-256/P-384/P-521, RSA >= 2048 bits, Ed25519)")


def parse(text: str) -> KeyMaterial:
    """The key material of one PEM ``PUBLIC KEY`` or ``CERTIFICATE``; KeyRefused otherwise."""
    if len(text) > MAX_PEM:
        raise KeyRefused(f"the PEM text is longer than {MAX_PEM} characters")
    labels = _BLOCK.findall(text)
    if any("PRIVATE" in label for label in labels):
        raise KeyRefused("this is a private key: register only the public key or certificate "
                         "(the private key was not stored)")
    if len(labels) != 1:
        raise KeyRefused("expected exactly one PEM block (-----BEGIN PUBLIC KEY----- or "
                         f"-----BEGIN CERTIFICATE-----), found {len(labels)}")
    data = text.strip().encode("ascii", "replace")
    if labels[0] == "CERTIFICATE":
        try:
            cert = x509.load_pem_x509_certificate(data)
            key = cert.public_key()
        except UNLOADABLE:
            raise KeyRefused("the certificate does not parse, or its key's algorithm is unknown") from None
        checked = check_public_key(key)
        return KeyMaterial("certificate", checked, cert, fingerprint(checked))
    if labels[0] in ("PUBLIC KEY", "RSA PUBLIC KEY"):
        try:
            loaded = serialization.load_pem_public_key(data)
        except (*UNLOADABLE, NotImplementedError):
            raise KeyRefused("the public key does not parse, or its algorithm is unknown") from None
        checked = check_public_key(loaded)
        return KeyMaterial("public-key", checked, None, fingerprint(checked))
    raise KeyRefused(f"a PEM {labels[0][:40]} block is neither a PUBLIC KEY nor a CERTIFICATE")

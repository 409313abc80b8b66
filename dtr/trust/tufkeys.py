"""TUF key objects as notary writes them, their ids, signature checks, and the server-held keys.

A key object is ``{"keytype": T, "keyval": {"private": null, "public": P}}``; ``P`` is base64 of:
ed25519 the raw 32 bytes; ecdsa / rsa a DER SubjectPublicKeyInfo (rsa: or a PEM one, for the
``pycrypto-pkcs#1 pss`` method); ecdsa-x509 / rsa-x509 a PEM certificate (bundle). The key id is
hex sha256 of the key object's canonical JSON. Signature methods follow notary's verifiers
(``tuf/signed/verifiers.go``): ``eddsa``; ``ecdsa`` raw r||s over SHA-256; ``rsapss`` (SHA-256,
MGF1-SHA-256, salt 32), ``rsapkcs1v15`` (SHA-256), ``pycrypto-pkcs#1 pss``; RSA below 2048 bits never
verifies. Methods are compared lowercased, as notary does.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from dtr.trust.canonical import canonical

ED25519 = "ed25519"
ECDSA = "ecdsa"
ECDSA_X509 = "ecdsa-x509"
RSA = "rsa"
RSA_X509 = "rsa-x509"
KEY_TYPES = (ED25519, ECDSA, ECDSA_X509, RSA, RSA_X509)
#: notary's smallest accepted RSA modulus.
MIN_RSA_BITS = 2048
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)

PublicCrypto = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def key_id(keytype: str, public: str) -> str:
    """Hex sha256 of the canonical key object (``private`` null)."""
    return hashlib.sha256(canonical({"keytype": keytype, "keyval": {"private": None, "public": public}})).hexdigest()


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("public key is not valid base64") from None


def _first_certificate(pem: bytes) -> x509.Certificate:
    """The first certificate of a PEM bundle (what notary's ``pem.Decode`` + ``ParseCertificate`` reads)."""
    try:
        return x509.load_pem_x509_certificates(pem)[0]
    except ValueError:
        raise ValueError("public key is not a PEM certificate") from None


def _spki(data: bytes) -> Any:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return serialization.load_pem_public_key(data)
        return serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("public key is not a SubjectPublicKeyInfo") from None


@dataclasses.dataclass(frozen=True)
class PublicKey:
    keytype: str          # ed25519 | ecdsa | ecdsa-x509 | rsa | rsa-x509
    public: str           # keyval.public as sent (base64)
    key_id: str           # hex sha256(canonical(key object))

    def key_object(self) -> dict[str, Any]:
        return {"keytype": self.keytype, "keyval": {"private": None, "public": self.public}}

    def raw(self) -> bytes:
        """``keyval.public`` decoded (checked by ``parse_key``)."""
        return base64.b64decode(self.public)

    def certificate(self) -> x509.Certificate | None:
        """The (leaf, first) certificate of an x509 key; None for bare keys."""
        if self.keytype not in (ECDSA_X509, RSA_X509):
            return None
        return _first_certificate(self.raw())

    def crypto_key(self) -> PublicCrypto:
        """The public key proper (from the certificate for x509 key types)."""
        cert = self.certificate()
        if cert is not None:
            key: Any = cert.public_key()
        elif self.keytype == ED25519:
            key = ed25519.Ed25519PublicKey.from_public_bytes(self.raw())
        else:
            key = _spki(self.raw())
        if not isinstance(key, PublicCrypto):
            raise ValueError("unsupported public key algorithm")
        return key

    def verify(self, method: str, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` by this key with ``method`` is valid over ``message``; never raises on bad input."""
        try:
            return _verify(self, method.lower(), signature, message)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            return False


def _verify(key: PublicKey, method: str, signature: bytes, message: bytes) -> bool:
    if method == "eddsa":
        if key.keytype != ED25519 or len(signature) != 64:
            return False
        ed25519.Ed25519PublicKey.from_public_bytes(key.raw()).verify(signature, message)
        return True
    if method == "ecdsa":
        if key.keytype not in (ECDSA, ECDSA_X509):
            return False
        ec_key = key.crypto_key()
        if not isinstance(ec_key, ec.EllipticCurvePublicKey):
            return False
        half = (ec_key.curve.key_size + 7) // 8
        if len(signature) != 2 * half:
            return False
        der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
        ec_key.verify(der, hashlib.sha256(message).digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
        return True
    if method in ("rsapss", "rsapkcs1v15", "pycrypto-pkcs#1 pss"):
        if method == "pycrypto-pkcs#1 pss":
            # notary reads a PEM SubjectPublicKeyInfo from an "rsa" key for this method.
            if key.keytype != RSA or not key.raw().lstrip().startswith(b"-----BEGIN"):
                return False
        elif key.keytype not in (RSA, RSA_X509):
            return False
        rsa_key = key.crypto_key()
        if not isinstance(rsa_key, rsa.RSAPublicKey) or rsa_key.key_size < MIN_RSA_BITS:
            return False
        if len(signature) < MIN_RSA_BITS // 8:
            return False
        pad = padding.PKCS1v15() if method == "rsapkcs1v15" else _PSS
        rsa_key.verify(signature, message, pad, hashes.SHA256())
        return True
    return False


def parse_key(obj: Any) -> PublicKey:
    """A key object from metadata, checked: a known key type whose ``public`` decodes to that kind of
    key (a certificate for the x509 types), no private part. ValueError with a readable reason."""
    if not isinstance(obj, dict) or not isinstance(obj.get("keyval"), dict):
        raise ValueError("a key must be an object with keytype and keyval")
    keytype, keyval = obj.get("keytype"), obj["keyval"]
    public = keyval.get("public")
    if not isinstance(keytype, str) or not isinstance(public, str):
        raise ValueError("a key needs a keytype and a keyval.public string")
    if keyval.get("private") is not None:
        raise ValueError("a key in metadata must not hold a private part")
    if keytype not in KEY_TYPES:
        raise ValueError(f"unknown key type {keytype[:64]!r}")
    key = PublicKey(keytype, public, key_id(keytype, public))
    raw = _b64decode(public)
    if keytype == ED25519:
        if len(raw) != 32:
            raise ValueError("an ed25519 public key is 32 bytes")
        return key
    crypto = key.crypto_key()
    want = ec.EllipticCurvePublicKey if keytype in (ECDSA, ECDSA_X509) else rsa.RSAPublicKey
    if not isinstance(crypto, want):
        raise ValueError(f"the public key does not match key type {keytype}")
    if isinstance(crypto, ec.EllipticCurvePublicKey) and not isinstance(
            crypto.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1):
        raise ValueError(f"unsupported elliptic curve {crypto.curve.name}")
    return key


ServerPrivate = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclasses.dataclass(frozen=True)
class ServerKey:
    """A server-held key (snapshot/timestamp role); its private half never printed."""

    public: PublicKey
    private: ServerPrivate = dataclasses.field(repr=False, compare=False)

    def sign(self, message: bytes) -> dict[str, str]:
        """``{"keyid","method","sig"}`` over ``message`` (sig base64): ecdsa raw r||s over SHA-256, or eddsa."""
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            sig, method = self.private.sign(message), "eddsa"
        else:
            half = (self.private.curve.key_size + 7) // 8
            r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
            sig, method = r.to_bytes(half, "big") + s.to_bytes(half, "big"), "ecdsa"
        return {"keyid": self.public.key_id, "method": method, "sig": base64.b64encode(sig).decode()}

    def private_der(self) -> bytes:
        """PKCS#8 DER, for sealing only."""
        return self.private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())


def _public_of(private: ServerPrivate) -> PublicKey:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keytype = ED25519
    else:
        raw = private.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        keytype = ECDSA
    public = base64.b64encode(raw).decode()
    return PublicKey(keytype, public, key_id(keytype, public))


def generate_server_key() -> ServerKey:
    """A new ECDSA P-256 key, keytype "ecdsa" (notary-signer's default)."""
    private = ec.generate_private_key(ec.SECP256R1())
    return ServerKey(_public_of(private), private)


def load_server_key(keytype: str, public: str, private_der: bytes) -> ServerKey:
    """A server key back from its stored parts; ValueError when they don't belong together."""
    try:
        private = serialization.load_der_private_key(private_der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not a PKCS#8 private key") from None
    if not isinstance(private, ServerPrivate):
        raise ValueError("a server key is ECDSA or ed25519")
    key = _public_of(private)
    if (key.keytype, key.public) != (keytype, public):
        raise ValueError("the private key does not match the public key")
    return ServerKey(key, private)

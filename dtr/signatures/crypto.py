"""Signature checks and trust decisions shared by the cosign and notation verifiers.

- ``check``: a signature over data (or over a digest already computed) with a public key: ECDSA
  (DER, or JWS's raw ``r||s``), RSA PKCS#1 v1.5 or PSS (salt = hash length, RFC 7518 3.5), Ed25519.
- ``trusted_by``: which registered key vouches for a signing key: its own fingerprint registered,
  or its certificate chaining (issuer name and signature, CA basic constraint) to a registered
  certificate, through the intermediates the signature carries.
- ``identity``: a certificate's identity: its SAN e-mails and URIs (else its subject), and the
  OIDC issuer of a Fulcio certificate (OIDs 1.3.6.1.4.1.57264.1.8 / .1.1) or the issuer's name.

Every function here answers False/None on bad input rather than raising.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from dtr.signatures.pem import UNLOADABLE, KeyMaterial, PublicKey, fingerprint

MAX_CHAIN = 8
_FULCIO_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_FULCIO_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


@dataclasses.dataclass(frozen=True)
class Trusted:
    """A registered trusted key: its name, scope (namespace or repository) and material."""

    name: str
    scope: str
    material: KeyMaterial


def check(key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm, *,
          prehashed: bool = False, pss: bool = False, raw_ecdsa: bool = False) -> bool:
    """Whether ``signature`` over ``data`` (with ``prehashed``: ``data`` is the digest) verifies
    with ``key``. ``raw_ecdsa``: the signature is JWS's fixed-size ``r||s``; ``pss``: RSA-PSS."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if raw_ecdsa:
                size = (key.curve.key_size + 7) // 8
                if len(signature) != 2 * size:
                    return False
                signature = utils.encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                                       int.from_bytes(signature[size:], "big"))
            alg = utils.Prehashed(algorithm) if prehashed else algorithm
            key.verify(signature, data, ec.ECDSA(alg))
            return True
        if isinstance(key, rsa.RSAPublicKey):
            pad: padding.AsymmetricPadding = (padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
                                              if pss else padding.PKCS1v15())
            key.verify(signature, data, pad, utils.Prehashed(algorithm) if prehashed else algorithm)
            return True
        if isinstance(key, ed25519.Ed25519PublicKey) and not prehashed:
            key.verify(signature, data)
            return True
    except (InvalidSignature, *UNLOADABLE):
        return False
    return False


def _valid_at(cert: x509.Certificate, at: dt.datetime | None) -> bool:
    return at is None or cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


def _issued(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    if child.issuer != issuer.subject or not _is_ca(issuer):
        return False
    try:
        child.verify_directly_issued_by(issuer)
        return True
    except (InvalidSignature, *UNLOADABLE):
        return False


def trusted_by(key: PublicKey, cert: x509.Certificate | None, chain: Sequence[x509.Certificate],
               keys: Sequence[Trusted], at: dt.datetime | None = None) -> Trusted | None:
    """The registered key vouching for the signing ``key`` (and its ``cert``, if any), or None.

    ``chain``: intermediates (and maybe a root) the signature carries; ``at``: when every
    certificate on the path must be valid (None: not checked)."""
    by_print = {t.material.fingerprint: t for t in keys}
    if (found := by_print.get(fingerprint(key))) is not None:
        return found if cert is None or _valid_at(cert, at) else None
    if cert is None or not _valid_at(cert, at):
        return None
    anchors = [(t.material.certificate, t) for t in keys if t.material.certificate is not None]
    pool: list[tuple[x509.Certificate, Trusted | None]] = [*anchors, *((c, None) for c in chain)]
    current = cert
    for _ in range(MAX_CHAIN):
        step = next(((c, t) for c, t in pool if c is not current and _issued(current, c) and _valid_at(c, at)), None)
        if step is None:
            return None
        issuer, anchor = step
        anchor = anchor or by_print.get(fingerprint_of(issuer) or "")
        if anchor is not None:
            return anchor
        current = issuer
    return None


def fingerprint_of(cert: x509.Certificate) -> str | None:
    """The fingerprint of the certificate's public key; None for an unsupported key."""
    try:
        key = cert.public_key()
    except UNLOADABLE:
        return None
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return fingerprint(key)
    return None


def _fulcio_issuer(cert: x509.Certificate) -> str | None:
    for oid in (_FULCIO_ISSUER_V2, _FULCIO_ISSUER_V1):
        try:
            value = cert.extensions.get_extension_for_oid(oid).value
        except (x509.ExtensionNotFound, ValueError):
            continue
        raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
        if oid == _FULCIO_ISSUER_V2 and len(raw) >= 2 and raw[0] == 0x0C and raw[1] < 0x80:
            raw = raw[2:2 + raw[1]]  # a short DER UTF8String
        return raw.decode("utf-8", "replace")[:255] or None
    return None


def identity(cert: x509.Certificate) -> str:
    """``<SAN e-mails and URIs, else the subject> (issuer <OIDC issuer or issuer name>)``."""
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.RFC822Name), *san.get_values_for_type(x509.UniformResourceIdentifier)]
    except (x509.ExtensionNotFound, ValueError):
        pass
    try:
        who = ", ".join(names) or cert.subject.rfc4514_string()
        issuer = _fulcio_issuer(cert) or cert.issuer.rfc4514_string()
    except ValueError:
        return "a certificate whose names do not parse"
    return f"{who} (issuer {issuer})"[:1000]


def load_der_certs(items: Sequence[bytes]) -> list[x509.Certificate]:
    """DER certificates; ValueError when one does not parse."""
    return [x509.load_der_x509_certificate(der) for der in items]


def load_pem_certs(text: str) -> list[x509.Certificate]:
    """PEM certificates (a chain); ValueError when the text holds none or does not parse."""
    certs = x509.load_pem_x509_certificates(text.encode("ascii", "replace"))
    if not certs:
        raise ValueError("no certificate")
    return certs


@dataclasses.dataclass(frozen=True)
class Check:
    """One signature's verification: who signed (key fingerprint or certificate identity), whether
    a registered key vouches for it (``trusted_key``: its name), and why not."""

    identity: str = ""
    verified: bool = False
    trusted_key: str | None = None
    reason: str | None = None


def not_verified(reason: str, identity: str = "") -> Check:
    return Check(identity=identity, verified=False, reason=f"not verified: {reason}"[:500])


def verified(trusted: Trusted, identity: str) -> Check:
    return Check(identity=identity, verified=True, trusted_key=trusted.name)


def key_identity(key: PublicKey) -> str:
    return f"key sha256:{fingerprint(key)}"


def with_keys(signature: bytes, data: bytes, keys: Sequence[Trusted], algorithm: hashes.HashAlgorithm,
              **how: bool) -> Trusted | None:
    """The first registered key ``signature`` over ``data`` verifies with (``how``: ``check``'s options)."""
    for t in keys:
        if check(t.material.public_key, signature, data, algorithm, **how):
            return t
    return None


def by_signer(signature: bytes, data: bytes, certs: Sequence[x509.Certificate], keys: Sequence[Trusted],
              algorithm: hashes.HashAlgorithm, at: dt.datetime | None = None, **how: bool) -> Check:
    """A signature whose signer is named: with ``certs`` (leaf first, then its chain), checked with
    the leaf's key and trusted if a registered key vouches for the leaf; without, checked with
    each registered key in turn."""
    if not certs:
        found = with_keys(signature, data, keys, algorithm, **how)
        if found is None:
            return not_verified("no trusted key verifies the signature")
        return verified(found, key_identity(found.material.public_key))
    leaf = certs[0]
    who = identity(leaf)
    try:
        key = leaf.public_key()
    except UNLOADABLE:
        return not_verified("the signing certificate's key is not supported", who)
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return not_verified("the signing certificate's key is not supported", who)
    if not check(key, signature, data, algorithm, **how):
        return not_verified("the signature does not verify with its certificate", who)
    anchor = trusted_by(key, leaf, certs[1:], keys, at)
    if anchor is None:
        return not_verified("no trusted key or certificate vouches for the signing certificate", who)
    return verified(anchor, who)

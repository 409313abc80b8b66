"""The root certificate rules of notary (``trustpinning.ValidateRoot``, ``utils.ValidateCertificate``):
a root key counts only when it is an x509 key whose PEM holds exactly one leaf (non-CA) certificate,
first, with CN == GUN (or a ``*``-suffixed prefix of it), a sane validity window (not expired, not
starting more than a day ahead, when expiry is checked), not SHA-1 signed, RSA >= 2048 bits."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from dtr.trust.tufkeys import ECDSA_X509, MIN_RSA_BITS, RSA_X509, PublicKey

#: SHA-1 signature algorithms Go's x509 names (1.3.14.3.2.29 is the old OIW sha1WithRSA).
_SHA1 = {SignatureAlgorithmOID.RSA_WITH_SHA1, SignatureAlgorithmOID.ECDSA_WITH_SHA1,
         SignatureAlgorithmOID.DSA_WITH_SHA1, x509.ObjectIdentifier("1.3.14.3.2.29")}


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode(errors="replace")


def match_cn_to_gun(cn: str, gun: str) -> bool:
    """notary's ``MatchCNToGun``: exact, or a prefix when the CN ends with ``*``."""
    if cn.endswith("*"):
        return gun.startswith(cn.rstrip("*"))
    return cn == gun


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def certificate_error(cert: x509.Certificate, *, check_expiry: bool, now: dt.datetime) -> str | None:
    """``utils.ValidateCertificate``'s complaint about ``cert``, or None."""
    cn = common_name(cert)
    if cert.not_valid_before_utc > cert.not_valid_after_utc:
        return "certificate validity window is invalid"
    if cert.signature_algorithm_oid in _SHA1:
        return f"certificate with CN {cn} uses invalid SHA1 signature algorithm"
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return "RSA bit length is too short"
    if check_expiry and (cert.not_valid_before_utc > now + dt.timedelta(days=1) or now > cert.not_valid_after_utc):
        return f"certificate with CN {cn} is expired"
    return None


def leaf_certificate(key: PublicKey) -> x509.Certificate | None:
    """The leaf of an x509 key's bundle when it is a usable chain (one leaf, first), else None."""
    if key.keytype not in (ECDSA_X509, RSA_X509):
        return None
    try:
        certs = x509.load_pem_x509_certificates(key.raw())
    except ValueError:
        return None
    leaves = [c for c in certs if not _is_ca(c)]
    if len(leaves) != 1 or _is_ca(certs[0]):
        return None
    return leaves[0]


def valid_root_keys(keys: dict[str, PublicKey], gun: str, *, check_expiry: bool,
                    now: dt.datetime) -> dict[str, PublicKey]:
    """The root keys (id -> key) whose certificates pass notary's leaf rules for ``gun``."""
    valid: dict[str, PublicKey] = {}
    for kid, key in keys.items():
        cert = leaf_certificate(key)
        if cert is None or not match_cn_to_gun(common_name(cert), gun):
            continue
        if certificate_error(cert, check_expiry=check_expiry, now=now) is None:
            valid[kid] = key
    return valid

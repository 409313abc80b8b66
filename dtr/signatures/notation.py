"""Notary Project (notation) signatures in the JWS envelope, verified against registered
certificates (notaryproject/specifications ``specs/signature-specification.md``,
``specs/signature-envelope-jws.md``, ``specs/signing-and-verification-workflow.md`` and
``specs/trust-store-trust-policy.md``).

The envelope is flattened JWS JSON with exactly ``payload``, ``protected``, ``header`` and
``signature``. The protected header has ``alg`` (PS256/384/512 or ES256/384/512, matching the
signing certificate's key), ``cty`` ``application/vnd.cncf.notary.payload.v1+json``, ``crit``
naming ``io.cncf.notary.signingScheme`` (every name in ``crit`` must be understood), the scheme
``notary.x509`` (with ``io.cncf.notary.signingTime``) or ``notary.x509.signingAuthority``, and
an optional ``io.cncf.notary.expiry``. The unprotected header's ``x5c`` is the certificate chain,
leaf first (base64 DER). The payload is ``{"targetArtifact": <descriptor>}`` whose digest must be
the subject's. The signature is over ``ASCII(protected '.' payload)``.

Trust, as notation's trust store has it: the chain must lead (issuer names, signatures, CA
constraints) to a registered certificate, or the leaf's key be registered; with no authentic
timestamp (dtr does not check TSA countersignatures), every certificate on the path must be valid
now. Signatures needing a verification plugin are not verified (dtr runs none).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dtr.signatures.cosign import Malformed, b64, json_object
from dtr.signatures.crypto import Check, Trusted, by_signer, load_der_certs, not_verified
from dtr.signatures.pem import UNLOADABLE

PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
SCHEME = "io.cncf.notary.signingScheme"
SIGNING_TIME = "io.cncf.notary.signingTime"
AUTHENTIC_TIME = "io.cncf.notary.authenticSigningTime"
EXPIRY = "io.cncf.notary.expiry"
PLUGIN = "io.cncf.notary.verificationPlugin"
PLUGIN_VERSION = "io.cncf.notary.verificationPluginMinVersion"
SCHEMES = ("notary.x509", "notary.x509.signingAuthority")
UNDERSTOOD_CRITICAL = {SCHEME, AUTHENTIC_TIME, EXPIRY, PLUGIN, PLUGIN_VERSION}
ENVELOPE_FIELDS = {"payload", "protected", "header", "signature"}
MAX_CHAIN = 8

#: ``alg`` -> (hash, RSA-PSS?, EC curve or None).
ALGORITHMS: dict[str, tuple[hashes.HashAlgorithm, bool, type[ec.EllipticCurve] | None]] = {
    "PS256": (hashes.SHA256(), True, None), "PS384": (hashes.SHA384(), True, None),
    "PS512": (hashes.SHA512(), True, None), "ES256": (hashes.SHA256(), False, ec.SECP256R1),
    "ES384": (hashes.SHA384(), False, ec.SECP384R1), "ES512": (hashes.SHA512(), False, ec.SECP521R1),
}


def _time(value: Any, what: str) -> dt.datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise Malformed(f"{what} is not an RFC 3339 time")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Malformed(f"{what} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise Malformed(f"{what} has no time zone")
    return parsed


def _protected(header: dict[str, Any]) -> tuple[str, dt.datetime | None]:
    """The checked protected header's ``alg`` and expiry."""
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise Malformed(f"alg {str(alg)[:20]!r} is not one notation allows ({', '.join(ALGORITHMS)})")
    if header.get("cty") != PAYLOAD_TYPE:
        raise Malformed(f"cty is not {PAYLOAD_TYPE}")
    crit = header.get("crit")
    if not isinstance(crit, list) or SCHEME not in crit or not all(isinstance(c, str) for c in crit):
        raise Malformed(f"crit must list {SCHEME}")
    unknown = [c for c in crit if c not in UNDERSTOOD_CRITICAL or c not in header]
    if unknown:
        raise Malformed(f"critical header {unknown[0][:80]!r} is not understood or missing")
    scheme = header.get(SCHEME)
    if scheme not in SCHEMES:
        raise Malformed(f"signing scheme {str(scheme)[:40]!r} is not {' or '.join(SCHEMES)}")
    _time(header.get(SIGNING_TIME if scheme == "notary.x509" else AUTHENTIC_TIME), "the signing time")
    expiry = _time(header[EXPIRY], "the expiry") if EXPIRY in header else None
    return str(alg), expiry


def _chain(unprotected: Any) -> list[x509.Certificate]:
    if not isinstance(unprotected, dict):
        raise Malformed("the unprotected header is missing")
    x5c = unprotected.get("x5c")
    if not isinstance(x5c, list) or not x5c or len(x5c) > MAX_CHAIN:
        raise Malformed("x5c must list the signing certificate and its chain")
    try:
        return load_der_certs([b64(c, "an x5c certificate", 64 << 10) for c in x5c])
    except ValueError:
        raise Malformed("an x5c certificate does not parse") from None


def _key_fits(cert: x509.Certificate, pss: bool, curve: type[ec.EllipticCurve] | None) -> bool:
    try:
        key = cert.public_key()
    except UNLOADABLE:
        return False
    if pss:
        return isinstance(key, rsa.RSAPublicKey)
    return isinstance(key, ec.EllipticCurvePublicKey) and curve is not None and isinstance(key.curve, curve)


def verify(raw: bytes, subject: str, keys: Sequence[Trusted], now: dt.datetime | None = None) -> Check:
    """A JWS notation envelope whose target must be the image ``subject``."""
    now = now or dt.datetime.now(dt.UTC)
    env = json_object(raw, "the JWS envelope")
    if set(env) != ENVELOPE_FIELDS:
        raise Malformed("the envelope must have exactly payload, protected, header and signature")
    protected_b64, payload_b64 = env["protected"], env["payload"]
    header = json_object(b64(protected_b64, "the protected header", urlsafe=True), "the protected header")
    alg, expiry = _protected(header)
    if PLUGIN in header:
        return not_verified("the signature needs a verification plugin, which dtr does not run")
    payload = json_object(b64(payload_b64, "the payload", urlsafe=True), "the payload")
    target = payload.get("targetArtifact")
    if not isinstance(target, dict) or not isinstance(target.get("digest"), str):
        raise Malformed("the payload has no targetArtifact descriptor")
    if target["digest"] != subject:
        return not_verified(f"the signature's target is {target['digest'][:80]!r}, not this image {subject}")
    certs = _chain(env["header"])
    algorithm, pss, curve = ALGORITHMS[alg]
    if not _key_fits(certs[0], pss, curve):
        return not_verified(f"alg {alg} does not match the signing certificate's key")
    if expiry is not None and expiry < now:
        return not_verified(f"the signature expired at {expiry.isoformat()}")
    signature = b64(env["signature"], "the signature", 4096, urlsafe=True)
    signing_input = f"{protected_b64}.{payload_b64}".encode("ascii")
    return by_signer(signature, signing_input, certs, keys, algorithm, now, pss=pss, raw_ecdsa=not pss)

"""cosign's signatures and Sigstore bundles, verified against registered keys (no transparency log:
dtr is offline, so trust is the key's or the certificate chain's alone).

Simple signing (cosign ``specs/SIGNATURE_SPEC.md``): each ``application/vnd.dev.cosign.simplesigning.v1+json``
layer of the ``sha256-<hex>.sig`` manifest is a payload whose ``critical.image.docker-manifest-digest``
names the signed image and whose ``critical.type`` is ``cosign container image signature``; the
layer's annotation ``dev.cosignproject.cosign/signature`` is the base64 signature over the payload
bytes (ECDSA P-256 with SHA-256 for key-based signing: "the SAME algorithm as the OCI registry"),
``dev.sigstore.cosign/certificate`` optionally the PEM certificate holding the key and
``dev.sigstore.cosign/chain`` its PEM chain.

Sigstore bundle (cosign ``specs/BUNDLE_SPEC.md``; the bundle itself is sigstore's protobuf-specs
``Bundle`` in JSON): ``verificationMaterial`` holds a ``publicKey`` hint, a ``certificate`` (v0.3)
or an ``x509CertificateChain``; the content is a ``messageSignature`` (``messageDigest`` of the
signed artifact - here the image manifest, so its digest must be the subject's - and the signature
over the artifact, checked over that digest) or a ``dsseEnvelope`` whose in-toto statement names
the image among its ``subject`` digests.

DSSE (secure-systems-lab/dsse ``protocol.md``): the signature is over
``PAE = "DSSEv1" SP len(type) SP type SP len(body) SP body``; cosign's ``.att`` layers are such
envelopes too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from dtr.signatures.crypto import Check, Trusted, by_signer, load_der_certs, load_pem_certs, not_verified
from dtr.text import BadInput, loads

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
SIMPLE_SIGNING_TYPE = "cosign container image signature"
#: Longest base64 signature accepted (an RSA-4096 signature is 684 characters).
MAX_SIGNATURE = 4096
MAX_CERTIFICATES = 8
_SHA256 = hashes.SHA256()


class Malformed(ValueError):
    """The signature object is not what its specification says (the message says what)."""


def b64(value: Any, what: str, limit: int = 1 << 20, urlsafe: bool = False) -> bytes:
    """Strict base64 (standard, or URL-safe unpadded for JWS) of at most ``limit`` characters."""
    if not isinstance(value, str) or not value or len(value) > limit:
        raise Malformed(f"{what} is missing, not a string or too long")
    try:
        if urlsafe:
            if "=" in value:
                raise ValueError("padding")
            value = value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4)
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed(f"{what} is not valid base64") from None


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = loads(raw, text=False)
    except BadInput as e:
        raise Malformed(f"{what} is not valid JSON ({str(e)[:100]})") from None
    if not isinstance(doc, dict):
        raise Malformed(f"{what} is not a JSON object")
    return doc


def _pem_certs(annotations: dict[str, Any]) -> list[x509.Certificate]:
    cert = annotations.get(CERTIFICATE_ANNOTATION)
    if not cert:
        return []
    if not isinstance(cert, str) or len(cert) > 64 << 10:
        raise Malformed("the certificate annotation is not a PEM certificate")
    chain = annotations.get(CHAIN_ANNOTATION) or ""
    try:
        certs = load_pem_certs(cert)[:1]
        if isinstance(chain, str) and chain and len(chain) <= 256 << 10:
            certs += load_pem_certs(chain)[:MAX_CERTIFICATES]
    except ValueError:
        raise Malformed("the certificate or chain annotation does not parse") from None
    return certs


def simple_signing(layer: dict[str, Any], payload: bytes, subject: str, keys: Sequence[Trusted]) -> Check:
    """One simple-signing layer of a cosign signature manifest, its payload blob read."""
    annotations = layer.get("annotations") if isinstance(layer.get("annotations"), dict) else {}
    assert isinstance(annotations, dict)
    signature = b64(annotations.get(SIGNATURE_ANNOTATION), "the signature annotation", MAX_SIGNATURE)
    doc = json_object(payload, "the simple-signing payload")
    critical = doc.get("critical")
    if not isinstance(critical, dict) or not isinstance(critical.get("image"), dict):
        raise Malformed("the payload has no critical.image")
    if critical.get("type") != SIMPLE_SIGNING_TYPE:
        raise Malformed(f"the payload's critical.type is not {SIMPLE_SIGNING_TYPE!r}")
    image = {str(k).lower(): v for k, v in critical["image"].items()}
    named = image.get("docker-manifest-digest")
    if named != subject:
        return not_verified(f"the payload names {str(named)[:80]!r}, not this image {subject}")
    return by_signer(signature, payload, _pem_certs(annotations), keys, _SHA256)


def _bundle_certs(material: dict[str, Any]) -> list[x509.Certificate]:
    raws: list[Any] = []
    if isinstance(material.get("certificate"), dict):
        raws = [material["certificate"].get("rawBytes")]
    elif isinstance(material.get("x509CertificateChain"), dict):
        listed = material["x509CertificateChain"].get("certificates")
        raws = [c.get("rawBytes") if isinstance(c, dict) else None for c in listed] if isinstance(listed, list) else []
        if not raws:
            raise Malformed("the bundle's certificate chain is empty")
    elif not isinstance(material.get("publicKey"), dict):
        raise Malformed("the bundle has no publicKey, certificate or x509CertificateChain")
    try:
        return load_der_certs([b64(r, "a certificate's rawBytes", 64 << 10) for r in raws[:MAX_CERTIFICATES]])
    except ValueError:
        raise Malformed("a certificate of the bundle does not parse") from None


def bundle(raw: bytes, subject: str, keys: Sequence[Trusted]) -> Check:
    """A Sigstore bundle whose subject is the image ``subject``."""
    doc = json_object(raw, "the bundle")
    media = doc.get("mediaType")
    if not isinstance(media, str) or not media.startswith("application/vnd.dev.sigstore.bundle"):
        raise Malformed("the bundle's mediaType is not a Sigstore bundle's")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise Malformed("the bundle has no verificationMaterial")
    certs = _bundle_certs(material)
    if isinstance(doc.get("messageSignature"), dict):
        return _message_signature(doc["messageSignature"], subject, certs, keys)
    if isinstance(doc.get("dsseEnvelope"), dict):
        return dsse(doc["dsseEnvelope"], subject, certs, keys)
    raise Malformed("the bundle has neither a messageSignature nor a dsseEnvelope")


def _message_signature(sig: dict[str, Any], subject: str, certs: list[x509.Certificate],
                       keys: Sequence[Trusted]) -> Check:
    md = sig.get("messageDigest")
    if not isinstance(md, dict) or md.get("algorithm") != "SHA2_256":
        raise Malformed("the messageSignature has no SHA2_256 messageDigest")
    digest = b64(md.get("digest"), "the messageDigest", 128)
    if f"sha256:{digest.hex()}" != subject:
        return not_verified(f"the bundle signs sha256:{digest.hex()}, not this image {subject}")
    signature = b64(sig.get("signature"), "the signature", MAX_SIGNATURE)
    return by_signer(signature, digest, certs, keys, _SHA256, prehashed=True)


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE's pre-authentication encoding of (type, body)."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def _statement_names(body: bytes, subject: str) -> bool:
    doc = json_object(body, "the in-toto statement")
    if not str(doc.get("_type", "")).startswith("https://in-toto.io/Statement/"):
        raise Malformed("the DSSE payload is not an in-toto statement")
    listed = doc.get("subject")
    if not isinstance(listed, list):
        raise Malformed("the in-toto statement has no subject list")
    hexpart = subject.partition(":")[2]
    return any(isinstance(s, dict) and isinstance(s.get("digest"), dict) and s["digest"].get("sha256") == hexpart
               for s in listed)


def dsse(envelope: dict[str, Any], subject: str, certs: list[x509.Certificate], keys: Sequence[Trusted]) -> Check:
    """A DSSE envelope holding an in-toto statement about the image ``subject``."""
    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str) or len(payload_type) > 255:
        raise Malformed("the DSSE envelope has no payloadType")
    body = b64(envelope.get("payload"), "the DSSE payload")
    if not _statement_names(body, subject):
        return not_verified(f"the in-toto statement's subjects do not include this image {subject}")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise Malformed("the DSSE envelope has no signatures")
    data = pae(payload_type, body)
    first: Check | None = None
    for s in signatures[:MAX_CERTIFICATES]:
        if not isinstance(s, dict):
            raise Malformed("a DSSE signature is not an object")
        outcome = by_signer(b64(s.get("sig"), "a DSSE signature", MAX_SIGNATURE), data, certs, keys, _SHA256)
        if outcome.verified:
            return outcome
        first = first or outcome
    assert first is not None
    return first


def dsse_layer(layer: dict[str, Any], blob: bytes, subject: str, keys: Sequence[Trusted]) -> Check:
    """A cosign ``.att`` layer: a DSSE envelope blob (its certificate, if any, in the layer's annotations)."""
    annotations = layer.get("annotations") if isinstance(layer.get("annotations"), dict) else {}
    assert isinstance(annotations, dict)
    return dsse(json_object(blob, "the DSSE envelope"), subject, _pem_certs(annotations), keys)


def digest_matches(blob: bytes, digest: str) -> bool:
    algo, _, hexpart = digest.partition(":")
    return algo == "sha256" and hashlib.sha256(blob).hexdigest() == hexpart

"""The exact signature objects of the published specifications, made with real keys (``cryptography``),
and OCI layouts holding them for skopeo:

- cosign ``specs/SIGNATURE_SPEC.md``: the simple-signing payload and the ``sha256-<hex>.sig``
  manifest (one ``application/vnd.dev.cosign.simplesigning.v1+json`` layer per signature, its
  base64 ECDSA P-256/SHA-256 signature and optional certificate in the layer's annotations).
- cosign ``specs/BUNDLE_SPEC.md``: a Sigstore bundle v0.3 (``messageSignature`` over the image
  manifest's digest, or a ``dsseEnvelope`` of an in-toto statement naming it) and its manifest
  (``artifactType``, empty config, ``subject``).
- notaryproject ``specs/signature-envelope-jws.md``: the flattened JWS envelope (protected
  header, ``x5c`` chain, ``{"targetArtifact": descriptor}`` payload) and the notation manifest.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.oci import EMPTY_BYTES, OCI_CONFIG, OCI_EMPTY, OCI_MANIFEST, descriptor, digest_of, dumps

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
NOTATION = "application/vnd.cncf.notary.signature"
JWS = "application/jose+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclasses.dataclass
class Signer:
    """A key and its certificate (leaf first, then the chain up to the root)."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    chain: list[x509.Certificate]


def certificate(subject: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, issuer: Signer | None = None,
                ca: bool = False, email: str | None = None, days: int = 30) -> x509.Certificate:
    """A certificate for ``key`` (self-signed without ``issuer``); a CA or a code-signing leaf."""
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.chain[0].subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    if email:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    return builder.sign(issuer.key if issuer else key, hashes.SHA256())


def pki(leaf_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, email: str = "dev@example.com"
        ) -> tuple[Signer, Signer]:
    """(root CA, leaf signer issued by an intermediate CA issued by the root)."""
    root_key = ec_key()
    root = Signer(root_key, [certificate("dtr test root CA", root_key, ca=True)])
    mid_key = ec_key()
    mid = Signer(mid_key, [certificate("dtr test intermediate CA", mid_key, root, ca=True), *root.chain])
    leaf = Signer(leaf_key, [certificate("dtr test signer", leaf_key, mid, email=email), *mid.chain])
    return root, leaf


def sign(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, data: bytes, *, prehashed: bool = False) -> bytes:
    """ECDSA (DER) or RSA PKCS#1 v1.5, SHA-256."""
    alg: Any = utils.Prehashed(hashes.SHA256()) if prehashed else hashes.SHA256()
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), alg)
    return key.sign(data, ec.ECDSA(alg))


# -- cosign: simple signing and the tag scheme ---------------------------------------------------


def simple_signing(image_digest: str, reference: str = "127.0.0.1/test/app") -> bytes:
    return dumps({"critical": {"identity": {"docker-reference": reference},
                               "image": {"docker-manifest-digest": image_digest},
                               "type": "cosign container image signature"},
                  "optional": {"creator": "dtr tests"}})


@dataclasses.dataclass
class Artifact:
    """A manifest and the blobs it names (config first)."""

    manifest: bytes
    blobs: list[bytes]

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def cosign_signature(signatures: list[tuple[bytes, bytes, Signer | None]]) -> Artifact:
    """cosign's ``.sig`` manifest: one simple-signing layer per (payload, signature, certificate owner)."""
    layers, blobs = [], []
    for payload, sig, owner in signatures:
        annotations = {"dev.cosignproject.cosign/signature": b64(sig)}
        if owner is not None:
            annotations["dev.sigstore.cosign/certificate"] = cert_pem(owner.chain[0])
            annotations["dev.sigstore.cosign/chain"] = "".join(cert_pem(c) for c in owner.chain[1:])
        layers.append(descriptor(SIMPLESIGNING, payload, annotations=annotations))
        blobs.append(payload)
    config = dumps({"architecture": "", "created": "0001-01-01T00:00:00Z", "os": "", "config": {},
                    "rootfs": {"type": "layers", "diff_ids": [digest_of(b) for b in blobs]}})
    manifest = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                      "layers": layers})
    return Artifact(manifest, [config, *blobs])


# -- Sigstore bundle v0.3 ------------------------------------------------------------------------


def bundle_message(image_digest: str, key: ec.EllipticCurvePrivateKey, owner: Signer | None = None) -> bytes:
    """A bundle whose messageSignature signs the image manifest (by its digest)."""
    digest = bytes.fromhex(image_digest.partition(":")[2])
    return dumps({"mediaType": BUNDLE, "verificationMaterial": _material(key, owner),
                  "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
                                       "signature": b64(sign(key, digest, prehashed=True))}})


def _material(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, owner: Signer | None) -> dict[str, Any]:
    if owner is not None:
        return {"certificate": {"rawBytes": b64(owner.chain[0].public_bytes(serialization.Encoding.DER))},
                "tlogEntries": []}
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"publicKey": {"hint": b64(digest_of(spki).encode())}, "tlogEntries": []}


def in_toto(image_digest: str, predicate_type: str = "https://sigstore.dev/cosign/sign/v1") -> bytes:
    return dumps({"_type": "https://in-toto.io/Statement/v1",
                  "subject": [{"name": "image", "digest": {"sha256": image_digest.partition(":")[2]}}],
                  "predicateType": predicate_type, "predicate": {}})


def dsse_envelope(statement: bytes, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    pae = b"DSSEv1 %d %s %d %s" % (len(IN_TOTO), IN_TOTO.encode(), len(statement), statement)
    return {"payloadType": IN_TOTO, "payload": b64(statement),
            "signatures": [{"keyid": "", "sig": b64(sign(key, pae))}]}


def bundle_dsse(image_digest: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    return dumps({"mediaType": BUNDLE, "verificationMaterial": _material(key, None),
                  "dsseEnvelope": dsse_envelope(in_toto(image_digest), key)})


def referrer(artifact_type: str, layer_type: str, blob: bytes, subject: tuple[str, str, int],
             annotations: dict[str, str] | None = None) -> Artifact:
    """An OCI 1.1 artifact manifest (empty config, ``artifactType``, one layer, ``subject``)."""
    media, digest, size = subject
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                           "config": descriptor(OCI_EMPTY, EMPTY_BYTES), "layers": [descriptor(layer_type, blob)],
                           "subject": {"mediaType": media, "digest": digest, "size": size}}
    if annotations:
        doc["annotations"] = annotations
    return Artifact(dumps(doc), [EMPTY_BYTES, blob])


# -- notation JWS --------------------------------------------------------------------------------


def notation_jws(subject: tuple[str, str, int], signer: Signer, *, alg: str = "ES256",
                 expiry: dt.datetime | None = None, target: str | None = None) -> bytes:
    """The flattened JWS envelope notation writes for ``subject`` (media type, digest, size)."""
    media, digest, size = subject
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    header: dict[str, Any] = {"alg": alg, "cty": "application/vnd.cncf.notary.payload.v1+json",
                              "io.cncf.notary.signingScheme": "notary.x509",
                              "io.cncf.notary.signingTime": now.isoformat().replace("+00:00", "Z"),
                              "crit": ["io.cncf.notary.signingScheme"]}
    if expiry is not None:
        header["io.cncf.notary.expiry"] = expiry.isoformat().replace("+00:00", "Z")
        header["crit"].append("io.cncf.notary.expiry")
    protected = b64url(dumps(header))
    payload = b64url(dumps({"targetArtifact": {"mediaType": media, "digest": target or digest, "size": size}}))
    signing_input = f"{protected}.{payload}".encode()
    key = signer.key
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(signing_input, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    else:
        r, s = utils.decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return dumps({"payload": payload, "protected": protected,
                  "header": {"x5c": [b64(c.public_bytes(serialization.Encoding.DER)) for c in signer.chain],
                             "io.cncf.notary.signingAgent": "dtr-tests/1.0"},
                  "signature": b64url(sig)})


def thumbprints(signer: Signer) -> str:
    """notation's ``io.cncf.notary.x509chain.thumbprint#S256`` annotation."""
    return json.dumps([digest_of(c.public_bytes(serialization.Encoding.DER)).partition(":")[2]
                       for c in signer.chain])


# -- OCI layouts (for skopeo) --------------------------------------------------------------------


def oci_layout(path: Path, tag: str, artifact: Artifact) -> Path:
    """An OCI image layout holding ``artifact`` as ``tag`` (``skopeo copy oci:PATH:TAG ...``)."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in [*artifact.blobs, artifact.manifest]:
        (blobs / digest_of(blob).partition(":")[2]).write_bytes(blob)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        descriptor(OCI_MANIFEST, artifact.manifest, annotations={"org.opencontainers.image.ref.name": tag})]}))
    return path

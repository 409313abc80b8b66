"""What an artifact that refers to an image is: a signature (cosign, Sigstore bundle, notation), an
attestation, an SBOM or something else; and cosign's tag scheme. Pure functions of a manifest's
stored columns (``manifests``: media type, artifact type, annotations, body).

Sources:
- cosign ``specs/SIGNATURE_SPEC.md`` (sigstore/cosign), "Tag-based Discovery": the signatures of
  ``sha256:<hex>`` are the image manifest tagged ``sha256-<hex>.sig`` in the image's repository,
  whose layers are ``application/vnd.dev.cosign.simplesigning.v1+json`` payloads; cosign names its
  attestations ``.att`` (layers ``application/vnd.dsse.envelope.v1+json``) and SBOMs ``.sbom``.
- cosign ``specs/BUNDLE_SPEC.md``: a manifest of ``artifactType``
  ``application/vnd.dev.sigstore.bundle.v0.3+json`` whose ``subject`` is the image (OCI 1.1 referrers).
- notaryproject ``specs/signature-specification.md``: ``artifactType``
  ``application/vnd.cncf.notary.signature``, one ``application/jose+json`` (or ``application/cose``)
  layer, ``subject`` = the signed manifest.
"""

from __future__ import annotations

import enum
import re
from typing import Any

from dtr.text import BadInput, loads

COSIGN_SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
#: Earlier bundle versions, found the same way.
SIGSTORE_BUNDLES = (SIGSTORE_BUNDLE, "application/vnd.dev.sigstore.bundle+json;version=0.3",
                    "application/vnd.dev.sigstore.bundle.v0.2+json", "application/vnd.dev.sigstore.bundle+json")
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"
JWS = "application/jose+json"
COSE = "application/cose"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
COSIGN_ATTESTATION_ARTIFACT = "application/vnd.dev.cosign.artifact.att.v1+json"
COSIGN_SBOM_ARTIFACT = "application/vnd.dev.cosign.artifact.sbom.v1+json"
SBOM_TYPES = ("application/spdx+json", "text/spdx", "application/spdx", "application/vnd.cyclonedx+json",
              "application/vnd.cyclonedx+xml", "application/vnd.cyclonedx", "application/vnd.syft+json")
ATTESTATION_TYPES = (DSSE, IN_TOTO, COSIGN_ATTESTATION_ARTIFACT, "application/vnd.in-toto.bundle",
                     "application/vnd.dev.sigstore.dsse+json")

#: cosign's tag scheme: the image digest with ``:`` made ``-``, then the suffix.
COSIGN_TAG = re.compile(r"^(sha256)-([0-9a-f]{64})\.(sig|att|sbom)$")


class Kind(enum.StrEnum):
    COSIGN = "cosign"
    SIGSTORE_BUNDLE = "sigstore-bundle"
    NOTATION = "notation"
    ATTESTATION = "attestation"
    SBOM = "sbom"
    ARTIFACT = "artifact"


#: The kinds that are signatures of the image (what "signed" means).
SIGNATURES = (Kind.COSIGN, Kind.SIGSTORE_BUNDLE, Kind.NOTATION)
_SUFFIX_KIND = {"sig": Kind.COSIGN, "att": Kind.ATTESTATION, "sbom": Kind.SBOM}


def cosign_tag(digest: str, suffix: str = "sig") -> str | None:
    """The tag cosign gives the ``suffix`` (sig, att, sbom) of ``digest``; None for a digest it
    cannot name (cosign's scheme is sha256 only)."""
    algo, _, hexpart = digest.partition(":")
    tag = f"{algo}-{hexpart}.{suffix}"
    return tag if COSIGN_TAG.fullmatch(tag) else None


def parse_cosign_tag(tag: str) -> tuple[str, str] | None:
    """(image digest, suffix) of a cosign scheme tag; None for any other tag."""
    m = COSIGN_TAG.fullmatch(tag)
    return (f"{m.group(1)}:{m.group(2)}", m.group(3)) if m else None


def layers(payload: bytes) -> list[dict[str, Any]]:
    """The layer descriptors of a stored manifest body (objects only; [] when it has none)."""
    try:
        doc = loads(payload, text=False)
    except BadInput:
        return []
    found = doc.get("layers") if isinstance(doc, dict) else None
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def _media(layer_list: list[dict[str, Any]]) -> set[str]:
    return {str(d.get("mediaType", "")) for d in layer_list}


def classify(artifact_type: str | None, payload: bytes, tag_suffix: str | None = None) -> Kind:
    """The kind of a manifest referring to an image: by its ``artifactType`` (or config media
    type, as stored), then its layers' media types, then the cosign tag's suffix it was found by."""
    at = (artifact_type or "").lower()
    media = _media(layers(payload))
    if at == COSIGN_SIG_ARTIFACT or (COSIGN_SIMPLESIGNING in media and at != NOTATION_SIGNATURE):
        return Kind.COSIGN
    if at in SIGSTORE_BUNDLES or at.startswith("application/vnd.dev.sigstore.bundle"):
        return Kind.SIGSTORE_BUNDLE
    if at == NOTATION_SIGNATURE:
        return Kind.NOTATION
    if at in ATTESTATION_TYPES or media & {DSSE, IN_TOTO}:
        return Kind.ATTESTATION
    if at in SBOM_TYPES or at == COSIGN_SBOM_ARTIFACT or media & set(SBOM_TYPES):
        return Kind.SBOM
    if tag_suffix is not None:
        return _SUFFIX_KIND.get(tag_suffix, Kind.ARTIFACT)
    return Kind.ARTIFACT

"""Parse and check manifest bodies: Docker schema 2 manifests and lists, OCI manifests and indexes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from dtr.registry.errors import RegistryError, codes
from dtr.registry.names import check_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
SUPPORTED = IMAGE_TYPES + INDEX_TYPES

#: Layers that live elsewhere (``urls``): the registry need not hold them.
FOREIGN_LAYERS = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)


@dataclasses.dataclass(frozen=True)
class ParsedManifest:
    media_type: str
    #: Config and layer digests the registry must hold in the repository.
    blobs: tuple[str, ...]
    #: Child manifests (of an index) the repository must hold.
    manifests: tuple[str, ...]
    subject: str | None
    artifact_type: str | None
    annotations: dict[str, str] | None
    #: For indexes: (digest, os, architecture, variant) of each child with a platform.
    platforms: tuple[tuple[str, str, str, str], ...] = ()


def _invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError(codes.MANIFEST_INVALID, detail=detail, message=f"manifest invalid: {message}")


def _descriptor(d: Any, where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise _invalid(f"{where} is not a descriptor object")
    if not isinstance(d.get("mediaType"), str):
        raise _invalid(f"{where}.mediaType is missing or not a string")
    if not isinstance(d.get("digest"), str):
        raise _invalid(f"{where}.digest is missing or not a string")
    check_digest(d["digest"], codes.MANIFEST_INVALID)
    size = d.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}.size is missing or not a non-negative integer")
    return d


def _annotations(doc: dict[str, Any]) -> dict[str, str] | None:
    ann = doc.get("annotations")
    if ann is None:
        return None
    if not isinstance(ann, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items()):
        raise _invalid("annotations must map strings to strings")
    return ann


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Check ``body`` against its media type; raise MANIFEST_INVALID with the reason."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _invalid("the top level must be a JSON object")
    if doc.get("schemaVersion") == 1:
        raise _invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise _invalid("mediaType must be a string")
    header_type = (content_type or "").split(";")[0].strip() or None
    if body_type and header_type and body_type != header_type:
        raise _invalid(f"Content-Type {header_type} does not match the manifest's mediaType {body_type}")
    media_type = body_type or header_type
    if media_type is None:
        if "manifests" in doc:
            media_type = OCI_INDEX
        elif "config" in doc:
            media_type = OCI_MANIFEST
    if media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        raise _invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if media_type not in SUPPORTED:
        raise _invalid(f"unsupported manifest media type {media_type!r}; supported: {', '.join(SUPPORTED)}")
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")

    subject = None
    if "subject" in doc and media_type in (OCI_MANIFEST, OCI_INDEX):
        subject = _descriptor(doc["subject"], "subject")["digest"]
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    annotations = _annotations(doc)

    if media_type in IMAGE_TYPES:
        config = _descriptor(doc.get("config"), "config")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        blobs = [config["digest"]]
        for i, layer in enumerate(layers):
            d = _descriptor(layer, f"layers[{i}]")
            if d["mediaType"] in FOREIGN_LAYERS and d.get("urls"):
                continue
            blobs.append(d["digest"])
        if artifact_type is None and media_type == OCI_MANIFEST:
            artifact_type = config["mediaType"]
        return ParsedManifest(media_type, tuple(dict.fromkeys(blobs)), (), subject, artifact_type, annotations)

    children = doc.get("manifests")
    if not isinstance(children, list):
        raise _invalid("manifests must be a list")
    digests, platforms = [], []
    for i, child in enumerate(children):
        d = _descriptor(child, f"manifests[{i}]")
        digests.append(d["digest"])
        p = d.get("platform")
        if isinstance(p, dict):
            platforms.append((d["digest"], str(p.get("os", "")), str(p.get("architecture", "")),
                              str(p.get("variant", ""))))
    return ParsedManifest(media_type, (), tuple(dict.fromkeys(digests)), subject, artifact_type, annotations,
                          tuple(platforms))

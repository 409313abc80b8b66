"""Parse and check manifest bodies: Docker schema 2 manifests and lists, OCI manifests and indexes."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
from typing import Any

from dtr.registry.errors import RegistryError, codes
from dtr.registry.names import check_digest
from dtr.text import BadInput, check_text, loads

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
#: The image-spec's empty descriptor type (the blob ``{}``); a manifest using it as config needs artifactType.
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

#: RFC 6838 ``type/subtype`` (the image-spec's rule for mediaType and artifactType); at most 255 chars.
MEDIA_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
MAX_INT64 = 2**63 - 1

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
    #: (where, digest, size) of each descriptor of ``blobs`` and ``manifests``: the stored
    #: blob or manifest must have that size (``config``, ``layers[2]``, ``manifests[0]``).
    sizes: tuple[tuple[str, str, int], ...] = ()


def _invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError(codes.MANIFEST_INVALID, detail=detail, message=f"manifest invalid: {message}")


def is_media_type(value: Any) -> bool:
    return isinstance(value, str) and MEDIA_TYPE_RE.fullmatch(value) is not None


def _media_type(value: Any, where: str) -> str:
    if not is_media_type(value):
        raise _invalid(f"{where} must be a media type (RFC 6838 type/subtype), got {str(value)[:100]!r}")
    return str(value)


def _descriptor(d: Any, where: str) -> dict[str, Any]:
    """Check an image-spec descriptor: mediaType, digest, size (int64), and data/artifactType if present."""
    if not isinstance(d, dict):
        raise _invalid(f"{where} is not a descriptor object")
    if "mediaType" not in d:
        raise _invalid(f"{where}.mediaType is missing")
    _media_type(d["mediaType"], f"{where}.mediaType")
    if not isinstance(d.get("digest"), str):
        raise _invalid(f"{where}.digest is missing or not a string")
    check_digest(d["digest"], codes.MANIFEST_INVALID)
    size = d.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_INT64:
        raise _invalid(f"{where}.size is missing or not a non-negative 64-bit integer")
    if "artifactType" in d:
        _media_type(d["artifactType"], f"{where}.artifactType")
    if "data" in d:
        _check_data(d, where)
    _annotations(d, where)
    return d


def _check_data(d: dict[str, Any], where: str) -> None:
    """Embedded ``data`` is base64 of exactly the content the descriptor's digest and size name."""
    data = d["data"]
    if not isinstance(data, str):
        raise _invalid(f"{where}.data must be a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{where}.data is not valid base64") from None
    algo, _, hexpart = d["digest"].partition(":")
    if len(raw) != d["size"] or hashlib.new(algo, raw).hexdigest() != hexpart:
        raise _invalid(f"{where}.data does not match the descriptor's digest and size")


def _annotations(doc: dict[str, Any], where: str = "") -> dict[str, str] | None:
    key = f"{where}.annotations" if where else "annotations"
    ann = doc.get("annotations")
    if ann is None:
        return None
    if not isinstance(ann, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items()):
        raise _invalid(f"{key} must map strings to strings")
    try:  # stored (jsonb) for the top level; refused alike in descriptors
        for k, v in ann.items():
            check_text(k, f"a key of {key}")
            check_text(v, f"{key}.{k}")
    except BadInput as e:
        raise _invalid(str(e)) from None
    return ann


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Check ``body`` against its media type; raise MANIFEST_INVALID with the reason.

    JSON is parsed strictly (``dtr.text.loads``: no NaN/Infinity/overflow, depth 64). Of its
    strings only those stored as text are checked for NUL and unpaired surrogates (annotations,
    in jsonb; media types and digests pass their grammars): the bytes are kept exactly as pushed,
    and JSON allows ``\\u0000`` in strings that the registry only passes on."""
    try:
        doc = loads(body, text=False)
    except BadInput as e:
        raise _invalid(str(e)) from None
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
    version = doc.get("schemaVersion")
    if type(version) is not int or version != 2:
        raise _invalid("schemaVersion must be 2")
    if body_type is None and media_type in (DOCKER_MANIFEST, DOCKER_LIST):
        raise _invalid(f"mediaType is required in a Docker manifest ({media_type})")
    # Ambiguous documents (CVE-2021-41190): a manifest is never also an index, nor the other way round.
    if media_type in IMAGE_TYPES and "manifests" in doc:
        raise _invalid(f"a {media_type} must not have a manifests field")
    if media_type in INDEX_TYPES and ("config" in doc or "layers" in doc):
        raise _invalid(f"a {media_type} must not have config or layers fields")

    subject = None
    if "subject" in doc and media_type in (OCI_MANIFEST, OCI_INDEX):
        subject = _descriptor(doc["subject"], "subject")["digest"]
    artifact_type = doc.get("artifactType")
    if artifact_type is not None:
        _media_type(artifact_type, "artifactType")
    annotations = _annotations(doc)

    if media_type in IMAGE_TYPES:
        config = _descriptor(doc.get("config"), "config")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        blobs = [config["digest"]]
        sizes = [("config", config["digest"], config["size"])]
        for i, layer in enumerate(layers):
            d = _descriptor(layer, f"layers[{i}]")
            if d["mediaType"] in FOREIGN_LAYERS and d.get("urls"):
                continue
            blobs.append(d["digest"])
            sizes.append((f"layers[{i}]", d["digest"], d["size"]))
        if artifact_type is None and config["mediaType"] == OCI_EMPTY and media_type == OCI_MANIFEST:
            raise _invalid(f"artifactType is required when config.mediaType is {OCI_EMPTY}")
        if artifact_type is None and media_type == OCI_MANIFEST:
            artifact_type = config["mediaType"]
        return ParsedManifest(media_type, tuple(dict.fromkeys(blobs)), (), subject, artifact_type, annotations,
                              sizes=tuple(sizes))

    children = doc.get("manifests")
    if not isinstance(children, list):
        raise _invalid("manifests must be a list")
    digests, platforms, sizes = [], [], []
    for i, child in enumerate(children):
        d = _descriptor(child, f"manifests[{i}]")
        digests.append(d["digest"])
        sizes.append((f"manifests[{i}]", d["digest"], d["size"]))
        p = d.get("platform")
        if isinstance(p, dict):
            platforms.append((d["digest"], str(p.get("os", "")), str(p.get("architecture", "")),
                              str(p.get("variant", ""))))
    return ParsedManifest(media_type, (), tuple(dict.fromkeys(digests)), subject, artifact_type, annotations,
                          tuple(platforms), tuple(sizes))

"""Image configs read from the registry's storage (the blob ``config`` of an image manifest names),
at most ``MAX_CONFIG`` bytes each, and what the images API shows of them: the platform, how the
image runs, its Dockerfile. A config is content-addressed: the platform read from one is kept in
memory (``CACHE_SIZE`` of them), so a page of tags reads storage once per new image."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any

from dtr.api.errors import APIError, codes
from dtr.images import shapes
from dtr.images.history import layer_lines
from dtr.registry.names import blob_path, is_digest
from dtr.scanning.results import platforms_of
from dtr.scanning.service import is_image, json_object
from dtr.storage.base import PathNotFoundError, StorageDriver

#: The largest image config read (real ones are a few KiB; a long history stays far below).
MAX_CONFIG = 4 << 20
CACHE_SIZE = 4096
#: The most configs of one page read from storage at once.
PARALLEL = 8

_platforms: collections.OrderedDict[str, tuple[str, str, str]] = collections.OrderedDict()


def config_descriptor(payload: bytes, media_type: str) -> dict[str, Any] | None:
    """The ``config`` descriptor of an image manifest (None for an index or an artifact)."""
    if not is_image(media_type, payload):
        return None
    config = json_object(payload)["config"]
    ok = isinstance(config.get("digest"), str) and is_digest(config["digest"]) and isinstance(config.get("size"), int)
    return config if ok else None


async def read_config(storage: StorageDriver, descriptor: dict[str, Any]) -> dict[str, Any]:
    """The config a descriptor names as a JSON object ({} if it is not JSON); UNSUPPORTED when it
    is larger than ``MAX_CONFIG``, NOT_FOUND when storage lacks it."""
    digest, size = descriptor["digest"], descriptor["size"]
    if size > MAX_CONFIG:
        raise APIError(codes.UNSUPPORTED, f"the image config {digest} has {size} bytes; at most {MAX_CONFIG} are read")
    try:
        data = await storage.get_content(blob_path(digest))
    except PathNotFoundError:
        raise APIError(codes.NOT_FOUND, f"the image config {digest} is missing from storage") from None
    if len(data) > MAX_CONFIG:
        raise APIError(codes.UNSUPPORTED, f"the image config {digest} is larger than {MAX_CONFIG} bytes")
    return json_object(data)


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    return value if isinstance(value, str) else ""


def _platform(doc: dict[str, Any]) -> tuple[str, str, str]:
    return _text(doc, "os"), _text(doc, "architecture"), _text(doc, "variant")


async def _config_platform(storage: StorageDriver, descriptor: dict[str, Any]) -> tuple[str, str, str]:
    """(os, architecture, variant) of a config, cached; ('', '', '') if it cannot be read."""
    digest = descriptor["digest"]
    if (hit := _platforms.get(digest)) is not None:
        _platforms.move_to_end(digest)
        return hit
    try:
        found = _platform(await read_config(storage, descriptor))
    except APIError:
        return "", "", ""
    _platforms[digest] = found
    if len(_platforms) > CACHE_SIZE:
        _platforms.popitem(last=False)
    return found


async def platforms(storage: StorageDriver,
                    manifests: Sequence[tuple[str, str, bytes]]) -> list[list[shapes.ImagePlatform]]:
    """The platforms of each (digest, media type, payload): an index's from its entries (attestations
    left out), an image's from its config; none for an artifact."""
    gate = asyncio.Semaphore(PARALLEL)

    async def one(digest: str, media_type: str, payload: bytes) -> list[shapes.ImagePlatform]:
        descriptor = config_descriptor(payload, media_type)
        if descriptor is None:
            return [{"digest": p.digest, "os": p.os, "architecture": p.architecture, "variant": p.variant}
                    for p in platforms_of(payload)]
        async with gate:
            os_, arch, variant = await _config_platform(storage, descriptor)
        return [{"digest": digest, "os": os_, "architecture": arch, "variant": variant}] if os_ or arch else []

    return list(await asyncio.gather(*(one(*m) for m in manifests)))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [v for v in value if isinstance(v, str)]


def image_config(descriptor: dict[str, Any], doc: dict[str, Any]) -> shapes.ImageConfig:
    """What a config ``doc`` says of how the image runs (its ``config`` object: Docker's and OCI's)."""
    run = _object(doc.get("config"))
    labels, ports = _object(run.get("Labels")), _object(run.get("ExposedPorts"))
    os_, arch, variant = _platform(doc)
    return {"digest": descriptor["digest"], "mediaType": str(descriptor.get("mediaType") or ""),
            "size": descriptor["size"], "os": os_, "architecture": arch, "variant": variant,
            "created": _text(doc, "created") or None, "author": _text(doc, "author"),
            "labels": {str(k): v for k, v in labels.items() if isinstance(v, str)},
            "env": _strings(run.get("Env")) or [], "entrypoint": _strings(run.get("Entrypoint")),
            "cmd": _strings(run.get("Cmd")), "workingDir": _text(run, "WorkingDir"), "user": _text(run, "User"),
            "exposedPorts": sorted(str(p) for p in ports)}


async def image_detail(storage: StorageDriver, media_type: str, payload: bytes) -> shapes.ImageDetail:
    """An image manifest's config and Dockerfile (an artifact's: no config, its layers alone)."""
    doc = json_object(payload)
    layers = doc["layers"] if isinstance(doc.get("layers"), list) else []
    descriptor = config_descriptor(payload, media_type)
    if descriptor is None:
        return {"config": None, "layers": layer_lines(layers, None)}
    config = await read_config(storage, descriptor)
    return {"config": image_config(descriptor, config), "layers": layer_lines(layers, config.get("history"))}

"""The spec's grammars for repository names, tags and digests, and where each lives in storage.

Everything that reaches a storage path or a query goes through here first, so no name or
reference can step outside its place.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from dtr.registry.errors import RegistryError, codes

NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
MAX_NAME = 255

#: Algorithms we verify, with the length of their hex encoding.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}


def is_name(name: str) -> bool:
    """A repository name per the spec's grammar, at most MAX_NAME characters."""
    return len(name) <= MAX_NAME and NAME_RE.fullmatch(name) is not None


def check_name(name: str) -> str:
    if not is_name(name):
        raise RegistryError(codes.NAME_INVALID, detail={"name": name[:MAX_NAME + 1]},
                            message="invalid repository name: lowercase components [a-z0-9] joined by "
                                    "'.', '_', '__' or '-'s, separated by '/', at most 255 characters")
    return name


def is_digest(ref: str) -> bool:
    return ":" in ref


def check_digest(digest: str, code: Any = codes.DIGEST_INVALID) -> str:
    """Return ``digest`` when it is a well-formed sha256/sha512 digest, else raise ``code``."""
    if not DIGEST_RE.fullmatch(digest):
        raise RegistryError(code, detail={"digest": digest[:200]}, message="invalid digest")
    algo, _, hexpart = digest.partition(":")
    if algo not in ALGORITHMS:
        raise RegistryError(
            code, detail={"digest": digest[:200]}, message=f"unsupported digest algorithm {algo!r}",
        )
    if len(hexpart) != ALGORITHMS[algo] or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise RegistryError(code, detail={"digest": digest[:200]}, message="invalid digest encoding")
    return digest


def is_valid_digest(digest: str) -> bool:
    try:
        check_digest(digest)
    except RegistryError:
        return False
    return True


def check_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise RegistryError(codes.MANIFEST_INVALID, detail={"tag": tag[:200]}, message="invalid tag")
    return tag


def new_hasher(digest: str) -> Any:
    return hashlib.new(digest.partition(":")[0])


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def blob_path(digest: str) -> str:
    """Storage path of a verified blob (``digest`` must have passed check_digest)."""
    algo, _, hexpart = digest.partition(":")
    return f"/blobs/{algo}/{hexpart[:2]}/{hexpart}"


def upload_path(upload_id: str) -> str:
    return f"/uploads/{upload_id}/data"

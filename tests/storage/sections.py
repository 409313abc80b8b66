"""The ``storage`` config section for each backend the registry tests run dtr on.

``backend`` names a driver and the server behind it: ``azure`` (Azurite), ``gcs``
(fake-gcs-server), ``nfs`` (a local directory), ``s3-swift`` and ``s3-moto`` (the s3 driver on
Swift's s3api or moto), ``cleversafe`` (on Swift's s3api), ``swift``. The servers are the
session fixtures of ``tests/storage/conftest.py``, fetched through ``request``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.storage.servers import SwiftAIO
from tests.storage.servers_azure_gcs import AZURE_ACCOUNT, AZURE_CONTAINER, AZURE_KEY, GCS_BUCKET, Azurite, FakeGCS

#: The bucket (or Swift container) every backend stores under; ``root`` keeps tests apart in it.
BUCKET = "dtr-registry"
#: Small parts, so modest uploads already span several.
CHUNK = 5 << 20


def s3_server(backend: str, request: pytest.FixtureRequest) -> Any:
    """The S3 server behind an S3-API backend (``s3-moto``: moto; else Swift's s3api)."""
    return request.getfixturevalue("moto_server" if backend == "s3-moto" else "swift_server")


def storage_section(backend: str, request: pytest.FixtureRequest, root: str | None = None) -> dict[str, Any]:
    """``{driver: params}`` for ``backend``, storing under key prefix ``root`` (default: a fresh one);
    ``nfs`` stores in the test's ``tmp_path``."""
    root = root or f"/r{uuid.uuid4().hex[:10]}"
    if backend == "azure":
        azurite: Azurite = request.getfixturevalue("azurite")
        return {"azure": {"accountname": AZURE_ACCOUNT, "accountkey": AZURE_KEY, "container": AZURE_CONTAINER,
                          "serviceurl": azurite.url, "rootdirectory": root}}
    if backend == "gcs":
        fake: FakeGCS = request.getfixturevalue("fake_gcs")
        keyfile: Path = request.getfixturevalue("gcs_keyfile")
        return {"gcs": {"bucket": GCS_BUCKET, "endpoint": fake.url, "keyfile": str(keyfile),
                        "rootdirectory": root, "querysession": False, "chunksize": 1 << 20}}
    if backend in ("s3-swift", "s3-moto", "cleversafe"):
        server = s3_server(backend, request)
        params = {"bucket": server.make_bucket(BUCKET), "region": server.region, "regionendpoint": server.url,
                  "forcepathstyle": True, "accesskey": server.access_key, "secretkey": server.secret_key,
                  "rootdirectory": root, "chunksize": CHUNK}
        if backend == "s3-swift":
            params["deletecontentmd5"] = True  # Swift's s3api refuses DeleteObjects without it
        return {backend.split("-")[0]: params}
    if backend == "swift":
        swift: SwiftAIO = request.getfixturevalue("swift_server")
        return {"swift": {"authurl": swift.auth_url, "username": swift.user, "password": swift.key,
                          "container": BUCKET, "prefix": root, "secretkey": "registry-tempurl-key",
                          "chunksize": CHUNK}}
    if backend == "nfs":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        return {"nfs": {"rootdirectory": str(tmp_path / "nfs")}}
    raise ValueError(f"unknown backend {backend!r}")

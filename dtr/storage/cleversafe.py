"""The Cleversafe (IBM Cloud Object Storage) driver: the s3 driver with an S3-compatible profile.

The store is reached at its own ``regionendpoint`` with path-style addressing (both required),
sends no storage class by default, and DeleteObjects carries ``Content-MD5`` (which these stores
require and botocore >= 1.36 no longer sends). Every other behaviour is the s3 driver's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from dtr.sections import ConfigError
from dtr.storage.s3 import S3Driver, S3Params


@dataclasses.dataclass(frozen=True)
class CleversafeParams(S3Params):
    _section: ClassVar[str] = "cleversafe"
    forcepathstyle: bool = True
    storageclass: str = "NONE"
    deletecontentmd5: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.regionendpoint:
            raise ConfigError("storage.cleversafe.regionendpoint: required (the store's S3 endpoint)")
        if not self.forcepathstyle:
            raise ConfigError("storage.cleversafe.forcepathstyle: must be true (virtual-host buckets are not served)")


class CleversafeDriver(S3Driver):
    name: ClassVar[str] = "cleversafe"
    Params: ClassVar[type[Any]] = CleversafeParams

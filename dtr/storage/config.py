"""The ``storage`` section of dtr's config (``dtr.config`` parses it; ``dtr.storage.factory`` builds its driver)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    #: Driver name (``filesystem``, ...) and its parameters, as written under ``storage.<name>``.
    driver: str
    params: Mapping[str, Any]
    #: Answer blob GETs with a 307 to a signed backend URL where the driver can make one.
    redirect: bool = False
    #: The most operations in flight against the backend at once.
    max_concurrency: int = 64

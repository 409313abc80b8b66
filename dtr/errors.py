"""What an error code is, for both APIs: ``/v2`` declares the OCI codes (``dtr.registry.errors``),
``/api/v0`` its own (``dtr.api.errors``); both answer ``{"errors": [{"code", "message"[, "detail"]}]}``.
Imports nothing of dtr's."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    message: str


def error_item(code: ErrorCode, message: str | None = None, detail: Any = None) -> dict[str, Any]:
    """One entry of an ``errors`` list; ``message`` defaults to the code's."""
    item: dict[str, Any] = {"code": code.code, "message": message or code.message}
    if detail is not None:
        item["detail"] = detail
    return item


class UsageError(Exception):
    """A mistake in how a ``dtr`` command was called (a bad value, a missing flag): the command
    exits with status 2 and the message on stderr. For every domain's command-line code."""

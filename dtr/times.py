"""Times as dtr's answers write them."""

from __future__ import annotations

import datetime as dt
from typing import overload


@overload
def iso(t: dt.datetime) -> str: ...
@overload
def iso(t: dt.datetime | None) -> str | None: ...
def iso(t: dt.datetime | None) -> str | None:
    """``t`` in UTC as ISO 8601 with a ``Z`` (``2026-12-05T14:02:31.435000Z``); None stays None.
    ``t`` must be aware (every time dtr stores is)."""
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if t is not None else None

"""Declared licenses as SPDX sees them: a package's license text is either a valid SPDX license
expression (normalised: ``GPL-2.0+`` is ``GPL-2.0-or-later``) or free text, kept as it is."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from license_expression import get_spdx_licensing


@functools.cache
def _licensing() -> Any:
    return get_spdx_licensing()


@dataclasses.dataclass(frozen=True)
class License:
    #: As the package declares it ('' when it declares none).
    declared: str
    #: The declared license as a normalised SPDX expression; '' when it is not one.
    expression: str

    @property
    def kind(self) -> str:
        """``spdx`` (an SPDX expression), ``text`` (free text) or ``none``."""
        return "spdx" if self.expression else "text" if self.declared else "none"

    @property
    def url(self) -> str:
        """The SPDX license list page of a single license ('' for an expression or free text)."""
        if self.expression and all(c not in self.expression for c in " ()"):
            return f"https://spdx.org/licenses/{self.expression}.html"
        return ""


@functools.lru_cache(maxsize=4096)
def parse(declared: str) -> License:
    declared = declared.strip()
    if not declared:
        return License("", "")
    try:
        info = _licensing().validate(declared)
    except Exception:
        # license-expression 30.x raises its own AttributeError on some invalid keys ('MIT/X11')
        # instead of reporting them: free text, as the package wrote it.
        return License(declared, "")
    return License(declared, "" if info.errors else str(info.normalized_expression or ""))

"""``Caller`` for the accounts use cases: ``dtr.auth.caller.Caller`` with the auth service and the
password policy.

The JSON API builds one per request (``dtr.accounts.views.caller``); a web UI or a test builds
one from a principal and a client address the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dtr.auth import caller
from dtr.auth.service import AuthService


@dataclasses.dataclass(frozen=True)
class Caller(caller.Caller):
    """``auth`` None means authentication is disabled (the principal is then
    ``dtr.auth.api.UNRESTRICTED``)."""

    auth: AuthService | None
    min_password_length: int
    #: scanOnPush of a repository that never set it (``scanning.scan_on_push``).
    scan_on_push_default: bool = False

    async def changed(self, type_: str, object_type: str, object_name: str,
                      detail: dict[str, Any] | None = None) -> None:
        """After a committed change: the audit event, and cached credentials dropped (grants and
        accounts may have moved)."""
        if self.auth is not None:
            self.auth.forget_credentials()
        await super().changed(type_, object_type, object_name, detail)

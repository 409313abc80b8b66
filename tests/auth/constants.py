"""Credentials the auth tests' servers are set up with."""

from __future__ import annotations

from typing import Any

ADMIN = "admin"
ADMIN_PASSWORD = "Adm1n-pass-word"
ADMIN_AUTH = (ADMIN, ADMIN_PASSWORD)
PASSWORD = "Us3r-pass-word"


def auth_config(**extra: Any) -> dict[str, Any]:
    """``extra`` for ``dtr_factory``: auth on, the admin's password set."""
    return {"auth": {"enabled": True, "admin_password": ADMIN_PASSWORD, **extra}}

"""Typed application keys: the one place where shared resources are named."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from dtr.auth.service import AuthService
    from dtr.config import Config
    from dtr.db.engine import Database
    from dtr.registry.service import RegistryService
    from dtr.storage.wrapper import StorageWrapper

CONFIG: web.AppKey[Config] = web.AppKey("config")
DATABASE: web.AppKey[Database] = web.AppKey("database")
STORAGE: web.AppKey[StorageWrapper] = web.AppKey("storage")
REGISTRY: web.AppKey[RegistryService] = web.AppKey("registry")
#: ``None`` when ``auth.enabled`` is false (everyone may do everything).
AUTH: web.AppKey[AuthService | None] = web.AppKey("auth")

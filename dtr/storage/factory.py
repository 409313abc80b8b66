"""Drivers registered by name, and the one way to build the configured driver."""

from __future__ import annotations

import importlib
from typing import Any

from dtr.sections import ConfigError, build
from dtr.storage.base import StorageDriver
from dtr.storage.config import StorageConfig
from dtr.storage.wrapper import StorageWrapper

#: name -> "module:Class"; modules are imported on use so a missing optional SDK only
#: matters to whoever configures that backend.
_DRIVERS: dict[str, str] = {
    "filesystem": "dtr.storage.filesystem:FilesystemDriver",
    "nfs": "dtr.storage.nfs:NFSDriver",
    "azure": "dtr.storage.azure:AzureDriver",
    "gcs": "dtr.storage.gcs:GCSDriver",
    "s3": "dtr.storage.s3:S3Driver",
    "cleversafe": "dtr.storage.cleversafe:CleversafeDriver",
    "swift": "dtr.storage.swift:SwiftDriver",
}


def register(name: str, target: str) -> None:
    """Register a driver class under ``name`` (``"package.module:Class"``)."""
    _DRIVERS[name] = target


def driver_names() -> list[str]:
    return sorted(_DRIVERS)


def driver_class(name: str) -> type[StorageDriver]:
    try:
        target = _DRIVERS[name]
    except KeyError:
        raise ConfigError(f"storage.{name}: unknown storage driver; allowed: {', '.join(driver_names())}") from None
    module, _, cls = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"storage.{name}: the driver cannot be loaded: {e}") from None
    klass: type[StorageDriver] = getattr(mod, cls)
    return klass


def _params(cfg: StorageConfig) -> Any:
    klass = driver_class(cfg.driver)
    return build(klass.Params, cfg.params, f"storage.{cfg.driver}")


def validate_params(cfg: StorageConfig) -> None:
    """Raise ConfigError when the driver's parameters are unknown or invalid."""
    _params(cfg)


def create_driver(cfg: StorageConfig) -> StorageWrapper:
    """The configured driver, wrapped with path checks, error wrapping, metrics and a concurrency cap."""
    klass = driver_class(cfg.driver)
    driver = klass(_params(cfg))  # type: ignore[call-arg]
    return StorageWrapper(driver, max_concurrency=cfg.max_concurrency)

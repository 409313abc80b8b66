"""The YAML configuration: one file, every key overridable by an environment variable.

Contract (stable, tools script against it)::

    data_dir: /var/lib/dtr
    http: {addr: 127.0.0.1:5000, tls: auto | {certificate: FILE, key: FILE}}
    database: {url: postgresql://user:pass@host/db}   # absent: embedded Postgres
    storage: {filesystem: {rootdirectory: DIR}}

``load_config`` validates everything at start: an unknown key or a bad value raises
``ConfigError`` naming the key, what is wrong and what is allowed.
Environment overrides use ``DTR_`` plus the key path joined by ``__``
(``DTR_HTTP__ADDR=0.0.0.0:5000``, ``DTR_STORAGE__FILESYSTEM__ROOTDIRECTORY=/srv``);
values are parsed as YAML scalars.

The schema (one dataclass per section) is ``dtr.config.schema``; reading and checking it,
``dtr.config.loader``. Import both from here.
"""

from dtr.config.loader import ENV_PREFIX, load_config, redacted
from dtr.config.schema import (
    AuthConfig,
    Config,
    DatabaseConfig,
    HTTPConfig,
    JobCapacity,
    JobsConfig,
    LDAPConfig,
    LogConfig,
    RegistryConfig,
    TLSFiles,
    default_data_dir,
)
from dtr.sections import ConfigError
from dtr.storage.config import StorageConfig

__all__ = [
    "ENV_PREFIX",
    "AuthConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "HTTPConfig",
    "JobCapacity",
    "JobsConfig",
    "LDAPConfig",
    "LogConfig",
    "RegistryConfig",
    "StorageConfig",
    "TLSFiles",
    "default_data_dir",
    "load_config",
    "redacted",
]

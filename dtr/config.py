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
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml


def default_data_dir() -> str:
    """``/var/lib/dtr`` for root (the systemd service), else ``$XDG_DATA_HOME/dtr`` (~/.local/share/dtr)."""
    if os.geteuid() == 0:
        return "/var/lib/dtr"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "dtr")

ENV_PREFIX = "DTR_"


class ConfigError(Exception):
    """A configuration value is missing, unknown or invalid; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    certificate: str
    key: str


@dataclasses.dataclass(frozen=True)
class HTTPConfig:
    addr: str = "127.0.0.1:5000"
    #: The URL clients use to reach dtr (token realm, Location headers). Default: derived from addr.
    external_url: str | None = None
    #: ``auto`` (a certificate from the internal CA in data_dir), explicit files, or plain HTTP.
    tls: Literal["auto"] | TLSFiles | None = None
    #: Seconds in-flight requests get to finish after SIGTERM.
    drain_timeout: float = 30.0

    @property
    def host(self) -> str:
        return self.addr.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])


@dataclasses.dataclass(frozen=True)
class DatabaseConfig:
    #: ``postgresql://user:pass@host:port/db``; absent: an embedded PostgreSQL under data_dir.
    url: str | None = None
    pool_size: int = 10


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    #: Driver name (``filesystem``, ...) and its parameters, as written under ``storage.<name>``.
    driver: str
    params: Mapping[str, Any]
    #: Answer blob GETs with a 307 to a signed backend URL where the driver can make one.
    redirect: bool = False
    #: The most operations in flight against the backend at once.
    max_concurrency: int = 64


@dataclasses.dataclass(frozen=True)
class RegistryConfig:
    #: Manifests larger than this are refused (bytes).
    max_manifest_size: int = 4 * 1024 * 1024
    #: Largest page for tag and catalog listings.
    max_page_size: int = 10000


@dataclasses.dataclass(frozen=True)
class JobCapacity:
    """How many jobs of each action one process runs at once (0: this process never runs it)."""

    gc: int = 1
    upload_cleanup: int = 1
    prune: int = 2
    usage: int = 1
    noop: int = 4


@dataclasses.dataclass(frozen=True)
class JobsConfig:
    """The job runner every dtr process starts (see dtr.jobs). Times are in seconds."""

    #: Run a worker in this process; replicas with ``false`` only queue jobs.
    worker: bool = True
    capacity: JobCapacity = dataclasses.field(default_factory=JobCapacity)
    #: How often a worker looks for jobs, cancel requests and due schedules.
    poll_interval: float = 1.0
    heartbeat_interval: float = 5.0
    #: A worker silent this long is dead: its jobs become ``worker_dead`` and are picked up again.
    worker_timeout: float = 30.0
    #: First retry delay; doubles with each attempt up to ``retry_backoff_max``.
    retry_backoff: float = 10.0
    retry_backoff_max: float = 600.0
    #: Default seconds a job gets to stop by itself before it is cut off.
    stop_timeout: float = 30.0
    #: Blobs and manifests younger than this are never collected (overridable per GC run).
    gc_grace_period: float = 86400.0
    #: Uploads untouched this long are abandoned and deleted.
    upload_max_age: float = 86400.0
    #: Finished jobs (and their logs) older than this are deleted.
    job_retention: float = 30 * 86400.0

    def __post_init__(self) -> None:
        for name in ("poll_interval", "heartbeat_interval", "worker_timeout", "retry_backoff",
                     "retry_backoff_max", "stop_timeout", "job_retention"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"jobs.{name}: must be greater than 0")
        for name in ("gc_grace_period", "upload_max_age"):
            if getattr(self, name) < 0:
                raise ConfigError(f"jobs.{name}: must not be negative")
        if self.worker_timeout <= self.heartbeat_interval:
            raise ConfigError("jobs.worker_timeout: must be longer than jobs.heartbeat_interval")
        for f in dataclasses.fields(self.capacity):
            if getattr(self.capacity, f.name) < 0:
                raise ConfigError(f"jobs.capacity.{f.name}: must not be negative")


@dataclasses.dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"


@dataclasses.dataclass(frozen=True)
class LDAPConfig:
    """A directory (LDAP or Active Directory) users log in against; see docs/auth.md."""

    #: ``ldap://host:389`` or ``ldaps://host:636``.
    url: str
    user_search_base: str
    start_tls: bool = False
    #: CA bundle for LDAPS/StartTLS; absent: the system's trust store.
    ca_file: str | None = None
    verify_tls: bool = True
    #: The service account that searches the directory (empty: anonymous bind).
    bind_dn: str = ""
    bind_password: str | None = None
    bind_password_file: str | None = None
    user_filter: str = "(objectClass=person)"
    username_attr: str = "uid"
    fullname_attr: str = "cn"
    email_attr: str = "mail"
    timeout: float = 10.0


@dataclasses.dataclass(frozen=True)
class AuthConfig:
    """Users, tokens and access control (``dtr.auth``). Off only for protocol tests."""

    enabled: bool = True
    #: The first site admin, created at first start.
    admin_username: str = "admin"
    #: Its password, or a file holding it; neither: a random one printed once at first start.
    admin_password: str | None = None
    admin_password_file: str | None = None
    #: The ``service`` (JWT audience) of issued tokens; default: the host:port of the external URL.
    service: str | None = None
    issuer: str = "dtr"
    #: Lifetime of registry bearer tokens and of refresh tokens (seconds).
    token_ttl: int = 300
    refresh_token_ttl: int = 30 * 86400
    min_password_length: int = 8
    #: Failed logins for one user (or, ``address_threshold``, from one client address) before
    #: further attempts are refused for ``lockout_base`` seconds, doubling per failure up to ``lockout_max``.
    failed_login_threshold: int = 5
    failed_login_address_threshold: int = 20
    failed_login_window: float = 900.0
    lockout_base: float = 1.0
    lockout_max: float = 300.0
    ldap: LDAPConfig | None = None


@dataclasses.dataclass(frozen=True)
class Config:
    data_dir: str = dataclasses.field(default_factory=default_data_dir)
    http: HTTPConfig = dataclasses.field(default_factory=HTTPConfig)
    database: DatabaseConfig = dataclasses.field(default_factory=DatabaseConfig)
    storage: StorageConfig | None = None
    registry: RegistryConfig = dataclasses.field(default_factory=RegistryConfig)
    log: LogConfig = dataclasses.field(default_factory=LogConfig)
    jobs: JobsConfig = dataclasses.field(default_factory=JobsConfig)
    auth: AuthConfig = dataclasses.field(default_factory=AuthConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def storage_config(self) -> StorageConfig:
        """The storage section, defaulting to the filesystem under data_dir."""
        if self.storage is not None:
            return self.storage
        return StorageConfig("filesystem", {"rootdirectory": str(self.data_path / "registry")})

    @property
    def external_url(self) -> str:
        if self.http.external_url:
            return self.http.external_url.rstrip("/")
        scheme = "https" if self.http.tls else "http"
        return f"{scheme}://{self.http.addr}"


T = TypeVar("T")

_STORAGE_OPTIONS = {"redirect", "max_concurrency"}


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: got {value!r}, expected {_type_name(tp)}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{key}: got {value!r}, allowed: {_type_name(tp)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return _build(typing.cast(type, tp), value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: got {value!r}, expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: got {value!r}, expected an integer")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: got {value!r}, expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: got {value!r}, expected a string")
    if origin in (tuple, list):
        # A YAML list, or a comma-separated string (as environment overrides give).
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: got {value!r}, expected a list")
        items = [_coerce(v, get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    raise ConfigError(f"{key}: unsupported type {tp!r}")  # pragma: no cover - schema bug


def _build(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"{where}: unknown key; allowed here: {', '.join(sorted(names))}")
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], f"{prefix}.{name}" if prefix else name)
    return cls(**kwargs)


def _storage(data: Any) -> StorageConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"storage: expected a mapping with one driver section, got {data!r}")
    from dtr.storage.factory import driver_names  # late: the storage package imports this module

    drivers = [k for k in data if k not in _STORAGE_OPTIONS]
    known = driver_names()
    for name in drivers:
        if name not in known:
            raise ConfigError(f"storage.{name}: unknown storage driver; allowed: {', '.join(known)}")
    if len(drivers) != 1:
        raise ConfigError(
            f"storage: exactly one driver section is required, got {len(drivers)}; allowed: {', '.join(known)}"
        )
    params = data[drivers[0]] or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"storage.{drivers[0]}: expected a mapping of driver parameters, got {params!r}")
    redirect = _coerce(data.get("redirect", False), bool, "storage.redirect")
    conc = _coerce(data.get("max_concurrency", 64), int, "storage.max_concurrency")
    if conc < 1:
        raise ConfigError("storage.max_concurrency: must be at least 1")
    return StorageConfig(drivers[0], dict(params), redirect, conc)


_ADDR = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]*):(\d{1,5})$")


def _validate(cfg: Config) -> None:
    m = _ADDR.match(cfg.http.addr)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ConfigError(f"http.addr: got {cfg.http.addr!r}, expected HOST:PORT with a port from 1 to 65535")
    if cfg.database.url is not None and not cfg.database.url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("database.url: must start with postgresql:// (PostgreSQL is the only database)")
    if cfg.database.pool_size < 1:
        raise ConfigError("database.pool_size: must be at least 1")
    if cfg.registry.max_manifest_size < 1024:
        raise ConfigError("registry.max_manifest_size: must be at least 1024 bytes")
    if cfg.http.external_url and not cfg.http.external_url.startswith(("http://", "https://")):
        raise ConfigError("http.external_url: must start with http:// or https://")
    _validate_auth(cfg.auth)
    from dtr.storage.factory import validate_params

    validate_params(cfg.storage_config)


def _validate_auth(a: AuthConfig) -> None:
    if a.admin_password is not None and a.admin_password_file is not None:
        raise ConfigError("auth: give admin_password or admin_password_file, not both")
    if a.token_ttl < 10 or a.refresh_token_ttl < a.token_ttl:
        raise ConfigError("auth.token_ttl: must be at least 10 seconds and at most auth.refresh_token_ttl")
    if a.min_password_length < 8:
        raise ConfigError("auth.min_password_length: must be at least 8")
    if a.failed_login_threshold < 1 or a.failed_login_address_threshold < 1:
        raise ConfigError("auth.failed_login_threshold: must be at least 1")
    if a.ldap is not None:
        if not a.ldap.url.startswith(("ldap://", "ldaps://")):
            raise ConfigError("auth.ldap.url: must start with ldap:// or ldaps://")
        if a.ldap.start_tls and a.ldap.url.startswith("ldaps://"):
            raise ConfigError("auth.ldap.start_tls: use either ldaps:// or start_tls, not both")
        if a.ldap.bind_password is not None and a.ldap.bind_password_file is not None:
            raise ConfigError("auth.ldap: give bind_password or bind_password_file, not both")


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "DTR_CONFIG":
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            raise ConfigError(f"{name}: malformed override; use DTR_SECTION__KEY")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"{name}: cannot parse {raw!r}: {e}") from None
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {part} is not a section")
            node = child
        node[path[-1]] = value


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment and validate; raise ConfigError on any problem."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("DTR_CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded
    _apply_env(data, environ)
    storage = data.pop("storage", None)
    cfg = _build(Config, data)
    if storage is not None:
        cfg = dataclasses.replace(cfg, storage=_storage(storage))
    _validate(cfg)
    return cfg

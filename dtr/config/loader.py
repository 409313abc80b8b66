"""Load the config: a YAML file, then ``DTR_SECTION__KEY`` environment overrides, then checks that
span sections or need the storage driver (its parameters are validated at load, not at first use)."""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dtr.config.schema import AuthConfig, Config, LDAPConfig
from dtr.sections import ConfigError, build, coerce
from dtr.storage.config import StorageConfig
from dtr.storage.factory import driver_names, validate_params

ENV_PREFIX = "DTR_"
#: ``DTR_`` variables that are not config overrides: the config file, the backup passphrase.
NOT_OVERRIDES = frozenset({"DTR_CONFIG", "DTR_BACKUP_PASSPHRASE"})

_STORAGE_OPTIONS = {"redirect", "max_concurrency"}


def _storage(data: Any) -> StorageConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"storage: expected a mapping with one driver section, got {data!r}")
    known = driver_names()
    data = {k.lower() if isinstance(k, str) and k.lower() in known else k: v for k, v in data.items()}
    drivers = [k for k in data if k not in _STORAGE_OPTIONS]
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
    redirect = coerce(data.get("redirect", False), bool, "storage.redirect")
    conc = coerce(data.get("max_concurrency", 64), int, "storage.max_concurrency")
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
        validate_ldap(a.ldap)


def validate_ldap(ldap: LDAPConfig, prefix: str = "auth.ldap") -> None:
    """ConfigError (naming ``prefix.key``) for a directory setting that cannot work."""
    if not ldap.url.startswith(("ldap://", "ldaps://")):
        raise ConfigError(f"{prefix}.url: must start with ldap:// or ldaps://")
    if ldap.start_tls and ldap.url.startswith("ldaps://"):
        raise ConfigError(f"{prefix}.start_tls: use either ldaps:// or start_tls, not both")
    if ldap.bind_password is not None and ldap.bind_password_file is not None:
        raise ConfigError(f"{prefix}: give bind_password or bind_password_file, not both")


def _yaml_problem(e: yaml.YAMLError) -> str:
    """The YAML error on one line: where and what."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        where = f"line {e.problem_mark.line + 1}, column {e.problem_mark.column + 1}"
        context = f" {e.context}" if e.context else ""
        return f"{where}: {e.problem}{context}"
    return " ".join(str(e).split())


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Apply the ``DTR_`` overrides to ``data``; {dotted key: variable} of those applied."""
    applied: dict[str, str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in NOT_OVERRIDES:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            raise ConfigError(f"{name}: malformed override; use DTR_SECTION__KEY")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"{name}: cannot parse {raw!r}: {_yaml_problem(e)}") from None
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {part} is not a section")
            node = child
        node[path[-1]] = value
        applied[".".join(path)] = name
    return applied


def _from_env(e: ConfigError, applied: dict[str, str]) -> ConfigError:
    """``e`` prefixed with the variable that set its key (or a section around or inside it), if any."""
    key = str(e).split(": ", 1)[0]
    for dotted, name in applied.items():
        if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
            return ConfigError(f"{name}: {e}")
    return e


#: Keys whose values are secrets: never logged. (``..._file`` keys name files; those are shown.)
_SECRET_KEY = re.compile(r"password|secret|token$|accountkey|credentials|privatekey|api_key$", re.I)
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


def redacted(cfg: Config) -> dict[str, Any]:
    """The config as plain data with secrets (passwords, keys, a URL's password) replaced by
    ``***``: for the debug log and diagnostics."""
    def clean(value: Any, key: str = "") -> Any:
        if isinstance(value, Mapping):
            return {k: clean(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, str) and value and _SECRET_KEY.search(key) and not key.endswith("_file"):
            return "***"
        if isinstance(value, str):
            return _URL_PASSWORD.sub(r"\1***@", value)
        return value

    data = clean(dataclasses.asdict(cfg))
    data["storage"] = clean(dataclasses.asdict(cfg.storage_config))
    return typing.cast(dict[str, Any], data)


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
            raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(e)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded
    applied = _apply_env(data, environ)
    try:
        storage = data.pop("storage", None)
        cfg = build(Config, data)
        if storage is not None:
            cfg = dataclasses.replace(cfg, storage=_storage(storage))
        _validate(cfg)
    except ConfigError as e:
        raise _from_env(e, applied) from None
    return cfg

"""Config validation: unknown keys, bad values, DTR_SECTION__KEY overrides, and ``dtr config check``.

Every error names the key, says what is wrong and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from dtr.config import Config, ConfigError, JobCapacity, load_config, redacted
from dtr.sections import DURATION
from tests.servers import ROOT


def write(tmp_path: Path, data: Any, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def load(tmp_path: Path, data: Any, env: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, data), environ=env or {})


def error(tmp_path: Path, data: Any, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, data, env)
    return str(e.value)


def test_defaults_without_a_file() -> None:
    cfg = load_config(None, environ={})
    assert cfg.http.addr == "127.0.0.1:5000"
    assert cfg.database.url is None
    assert cfg.registry.max_manifest_size == 4 * 1024 * 1024
    assert cfg.storage_config.driver == "filesystem"
    assert cfg.storage_config.params["rootdirectory"].endswith("registry")


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, "") == load_config(None, environ={})


def test_a_full_file(tmp_path: Path) -> None:
    cfg = load(tmp_path, {
        "data_dir": str(tmp_path),
        "http": {"addr": "0.0.0.0:5001", "drain_timeout": 3, "external_url": "https://reg.example.com/"},
        "database": {"url": "postgresql://u:p@db/dtr", "pool_size": 4},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "r")}, "redirect": False,
                    "max_concurrency": 8},
        "registry": {"max_manifest_size": 8 * 1024 * 1024, "max_page_size": 100},
        "log": {"level": "debug", "format": "text"},
    })
    assert cfg.http.port == 5001 and cfg.http.host == "0.0.0.0"
    assert cfg.http.drain_timeout == 3.0 and isinstance(cfg.http.drain_timeout, float)
    assert cfg.external_url == "https://reg.example.com"
    assert cfg.database.pool_size == 4
    assert cfg.storage_config.params == {"rootdirectory": str(tmp_path / "r")}
    assert cfg.storage_config.max_concurrency == 8
    assert cfg.registry.max_page_size == 100
    assert cfg.log.level == "debug"


@pytest.mark.parametrize("data,expected", [
    ({"bogus": 1}, "bogus: unknown key; allowed here: "),
    ({"http": {"adr": "x:1"}}, "http.adr: unknown key; allowed here: addr, "),
    ({"registry": {"max_manifest": 1}}, "registry.max_manifest: unknown key; allowed here: max_manifest_size"),
    ({"storage": {"filesystem": {"root": "/x"}}}, "storage.filesystem.root: unknown key; allowed here: "),
])
def test_unknown_keys_are_named_with_what_is_allowed(tmp_path: Path, data: Any, expected: str) -> None:
    assert expected in error(tmp_path, data)


@pytest.mark.parametrize("data,expected", [
    ({"http": {"drain_timeout": "soon"}}, "http.drain_timeout: got 'soon', expected a duration (90s, 30m"),
    ({"registry": {"max_page_size": "many"}}, "registry.max_page_size: got 'many', expected an integer"),
    ({"registry": {"max_page_size": True}}, "registry.max_page_size: got True, expected an integer"),
    ({"registry": {"max_page_size": 1.5}}, "registry.max_page_size: got 1.5, expected an integer"),
    ({"log": {"level": "loud"}}, "log.level: got 'loud', allowed: 'debug' or 'info' or 'warning' or 'error'"),
    ({"log": {"format": "xml"}}, "log.format: got 'xml', allowed: 'json' or 'text'"),
    ({"http": "fast"}, "http: expected a mapping with keys addr, "),
    ({"http": {"addr": "localhost"}}, "http.addr: got 'localhost', expected HOST:PORT with a port from 1 to 65535"),
    ({"http": {"addr": "127.0.0.1:0"}}, "http.addr: got '127.0.0.1:0', expected HOST:PORT"),
    ({"http": {"addr": "127.0.0.1:70000"}}, "port from 1 to 65535"),
    ({"http": {"external_url": "reg.example.com"}}, "http.external_url: must start with http:// or https://"),
    ({"database": {"url": "mysql://x/y"}}, "database.url: must start with postgresql://"),
    ({"database": {"pool_size": 0}}, "database.pool_size: must be at least 1"),
    ({"registry": {"max_manifest_size": 10}}, "registry.max_manifest_size: must be at least 1024 bytes"),
    ({"storage": "disk"}, "storage: expected a mapping with one driver section"),
    ({"storage": {"floppy": {}}}, "storage.floppy: unknown storage driver; allowed: "),
    ({"storage": {"redirect": True}}, "storage: exactly one driver section is required, got 0; allowed: "),
    ({"storage": {"filesystem": {}, "redirect": "sometimes"}},
     "storage.redirect: got 'sometimes', expected true or false"),
    ({"storage": {"filesystem": {}, "max_concurrency": 0}}, "storage.max_concurrency: must be at least 1"),
    ({"storage": {"filesystem": ["a"]}}, "storage.filesystem: expected a mapping of driver parameters"),
    ({"storage": {"filesystem": {"maxthreads": "lots"}}},
     "storage.filesystem.maxthreads: got 'lots', expected an integer"),
])
def test_bad_values_name_the_key_and_what_is_allowed(tmp_path: Path, data: Any, expected: str) -> None:
    assert expected in error(tmp_path, data)


def test_filesystem_is_listed_among_allowed_drivers(tmp_path: Path) -> None:
    assert "filesystem" in error(tmp_path, {"storage": {"floppy": {}}}).split("allowed: ")[1]


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "http: [unclosed"), environ={})
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), environ={})


# -- environment overrides ------------------------------------------------------------------


def test_env_overrides_use_section__key(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"http": {"addr": "127.0.0.1:5000"}, "log": {"level": "info"}}, {
        "DTR_HTTP__ADDR": "0.0.0.0:6000",
        "DTR_LOG__LEVEL": "debug",
        "DTR_REGISTRY__MAX_PAGE_SIZE": "50",
        "DTR_HTTP__DRAIN_TIMEOUT": "2.5",
        "DTR_STORAGE__FILESYSTEM__ROOTDIRECTORY": str(tmp_path / "srv"),
        "DTR_DATA_DIR": str(tmp_path / "data"),
        "NOT_DTR": "ignored",
    })
    assert cfg.http.addr == "0.0.0.0:6000"  # the environment wins over the file
    assert cfg.log.level == "debug"
    assert cfg.registry.max_page_size == 50  # parsed as a YAML scalar
    assert cfg.http.drain_timeout == 2.5
    assert cfg.storage_config.driver == "filesystem"
    assert cfg.storage_config.params["rootdirectory"] == str(tmp_path / "srv")
    assert cfg.data_dir == str(tmp_path / "data")


def test_dtr_variables_that_are_not_overrides_are_left_alone(tmp_path: Path) -> None:
    cfg = load(tmp_path, {}, {"DTR_BACKUP_PASSPHRASE": "secret", "DTR_CONFIG": "elsewhere.yaml"})
    assert cfg == load(tmp_path, {})


@pytest.mark.parametrize("database,expected", [
    ({"connect_timeout": -1}, "database.connect_timeout: must be greater than 0"),
    ({"pool_timeout": 0}, "database.pool_timeout: must be greater than 0"),
    ({"statement_timeout": -5}, "database.statement_timeout: must not be negative"),
    ({"pool_size": 0}, "database.pool_size: must be at least 1"),
])
def test_database_limits_are_checked(tmp_path: Path, database: dict[str, Any], expected: str) -> None:
    assert expected in error(tmp_path, {"database": database})


def test_env_overrides_are_case_insensitive_in_keys(tmp_path: Path) -> None:
    cfg = load(tmp_path, {}, {"DTR_http__addr": "127.0.0.1:7000"})
    assert cfg.http.addr == "127.0.0.1:7000"


def test_env_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    assert "http.addr: got 'nowhere'" in error(tmp_path, {}, {"DTR_HTTP__ADDR": "nowhere"})
    assert "log.level: got 'loud', allowed: " in error(tmp_path, {}, {"DTR_LOG__LEVEL": "loud"})
    assert "registry.max_page_size: got 'x', expected an integer" in error(
        tmp_path, {}, {"DTR_REGISTRY__MAX_PAGE_SIZE": "x"})
    assert "bogus: unknown key" in error(tmp_path, {}, {"DTR_BOGUS": "1"})
    assert "http.nope: unknown key; allowed here: addr" in error(tmp_path, {}, {"DTR_HTTP__NOPE": "1"})


def test_malformed_env_overrides(tmp_path: Path) -> None:
    assert "DTR_HTTP__: malformed override; use DTR_SECTION__KEY" in error(tmp_path, {}, {"DTR_HTTP__": "x"})
    assert "DTR_LOG__LEVEL__X: level is not a section" in error(
        tmp_path, {"log": {"level": "info"}}, {"DTR_LOG__LEVEL__X": "1"})
    assert "DTR_LOG__LEVEL: cannot parse" in error(tmp_path, {}, {"DTR_LOG__LEVEL": "[unclosed"})


def test_dtr_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"http": {"addr": "127.0.0.1:5999"}})
    cfg = load_config(None, environ={"DTR_CONFIG": str(path)})
    assert cfg.http.addr == "127.0.0.1:5999"


# -- dtr config check -----------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "dtr", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**base, **(env or {})}, timeout=60)


def test_config_check_ok(tmp_path: Path) -> None:
    path = write(tmp_path, {"http": {"addr": "127.0.0.1:5123"}, "data_dir": str(tmp_path),
                            "storage": {"filesystem": {"rootdirectory": str(tmp_path / "r")}}})
    r = run_cli("config", "check", "--config", str(path))
    assert r.returncode == 0, r.stderr
    assert "config OK" in r.stdout and "127.0.0.1:5123" in r.stdout and "filesystem" in r.stdout


def test_config_check_reads_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, {"data_dir": str(tmp_path)})
    r = run_cli("config", "check", env={"DTR_CONFIG": str(path), "DTR_HTTP__ADDR": "127.0.0.1:5124"})
    assert r.returncode == 0, r.stderr
    assert "127.0.0.1:5124" in r.stdout


@pytest.mark.parametrize("data,expected", [
    ({"http": {"addr": "nope"}}, "dtr: configuration error: http.addr: got 'nope'"),
    ({"bogus": 1}, "dtr: configuration error: bogus: unknown key; allowed here: "),
    ("a: [", "not valid YAML"),
])
def test_config_check_failures_exit_2_with_a_message(tmp_path: Path, data: Any, expected: str) -> None:
    r = run_cli("config", "check", "--config", str(write(tmp_path, data)))
    assert r.returncode == 2
    assert expected in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_config_check_missing_file(tmp_path: Path) -> None:
    r = run_cli("config", "check", "--config", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2
    assert "cannot read config file" in r.stderr and "Traceback" not in r.stderr


def test_config_check_bad_env_override(tmp_path: Path) -> None:
    r = run_cli("config", "check", "--config", str(write(tmp_path, {"data_dir": str(tmp_path)})),
                env={"DTR_LOG__LEVEL": "loud"})
    assert r.returncode == 2
    assert "log.level: got 'loud', allowed: 'debug'" in r.stderr


def test_cli_usage_errors_exit_2() -> None:
    r = run_cli("config")
    assert r.returncode == 2 and "usage:" in r.stderr
    r = run_cli("config", "frobnicate")
    assert r.returncode == 2 and "invalid choice" in r.stderr


# -- durations, enums, empty sections ---------------------------------------------------------


def _duration_fields(cls: type, prefix: str = "") -> dict[str, Any]:
    """{dotted key: default} of every field of the schema marked as a duration."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if typing.get_origin(tp) is typing.Annotated and DURATION in typing.get_args(tp):
            out[key] = f.default
        for arg in (tp, *typing.get_args(tp)):
            if dataclasses.is_dataclass(arg) and isinstance(arg, type):
                out.update(_duration_fields(arg, f"{key}."))
    return out


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    *sections, last = dotted.split(".")
    data: dict[str, Any] = {last: value}
    for s in reversed(sections):
        data = {s: data}
    return data


def _as_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def test_every_time_in_the_schema_is_a_duration() -> None:
    assert set(_duration_fields(Config)) == {
        "http.drain_timeout", "http.drain_delay", "auth.token_ttl", "auth.refresh_token_ttl",
        "auth.failed_login_window",
        "auth.lockout_base", "auth.lockout_max", "auth.ldap.timeout", "database.connect_timeout",
        "database.statement_timeout", "database.pool_timeout", "scanning.feeds.timeout", "trust.timestamp_expiry",
        "trust.snapshot_expiry", "webhooks.timeout", "webhooks.retry_backoff", "webhooks.retry_backoff_max",
        "webhooks.delivery_retention", "ui.session_idle", "ui.session_max",
        *(f"jobs.{n}" for n in (
            "poll_interval", "heartbeat_interval", "worker_timeout", "retry_backoff", "retry_backoff_max",
            "stop_timeout", "gc_grace_period", "upload_max_age", "job_retention"))}


@pytest.mark.parametrize("key", sorted(_duration_fields(Config)))
def test_duration_fields_take_duration_strings(tmp_path: Path, key: str) -> None:
    default = _duration_fields(Config)[key]
    data = _nest(key, _as_duration(default))
    if key.startswith("auth.ldap."):
        data["auth"]["ldap"].update(url="ldap://x", user_search_base="dc=x")
    cfg = load(tmp_path, data)
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    assert value == default and type(value) is type(default)


@pytest.mark.parametrize("text,seconds", [("24h", 86400), ("30m", 1800), ("90s", 90), ("1h30m", 5400),
                                          ("2d", 172800), ("45", 45), (45, 45), (2.5, 2.5), ("1H", 3600)])
def test_duration_formats(tmp_path: Path, text: Any, seconds: float) -> None:
    assert load(tmp_path, {"jobs": {"gc_grace_period": text}}).jobs.gc_grace_period == seconds


@pytest.mark.parametrize("data,expected", [
    ({"jobs": {"gc_grace_period": "1y"}}, "jobs.gc_grace_period: got '1y', expected a duration (90s, 30m, 24h"),
    ({"jobs": {"gc_grace_period": "-5"}}, "jobs.gc_grace_period: got '-5', expected a duration"),
    ({"auth": {"token_ttl": "1.5s"}}, "auth.token_ttl: got '1.5s', expected a whole number of seconds"),
    ({"jobs": {"poll_interval": True}}, "jobs.poll_interval: got True, expected a duration"),
])
def test_bad_durations(tmp_path: Path, data: Any, expected: str) -> None:
    assert expected in error(tmp_path, data)


def test_whole_second_durations_stay_integers(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"auth": {"token_ttl": "10m", "refresh_token_ttl": "7d"}})
    assert (cfg.auth.token_ttl, cfg.auth.refresh_token_ttl) == (600, 7 * 86400)
    assert isinstance(cfg.auth.token_ttl, int)


def test_enum_values_are_case_insensitive_and_stored_normalised(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"log": {"level": "DEBUG", "format": "JSON"}, "http": {"tls": "Auto"},
                          "storage": {"FileSystem": {"rootdirectory": str(tmp_path)}}})
    assert (cfg.log.level, cfg.log.format, cfg.http.tls) == ("debug", "json", "auto")
    assert cfg.storage_config.driver == "filesystem"
    assert load(tmp_path, {}, {"DTR_LOG__LEVEL": "Warning"}).log.level == "warning"


def test_an_empty_section_is_its_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, "jobs:\nlog:\nhttp:\nregistry:\nauth:\ndatabase:\n")
    assert cfg == load_config(None, environ={})
    assert load(tmp_path, "jobs:\n  capacity:\n").jobs.capacity == JobCapacity()


@pytest.mark.parametrize("env,expected", [
    ({"DTR_HTTP__ADDR": "abc"}, "DTR_HTTP__ADDR: http.addr: got 'abc', expected HOST:PORT"),
    ({"DTR_JOBS__WORKER_TIMEOUT": "soon"}, "DTR_JOBS__WORKER_TIMEOUT: jobs.worker_timeout: got 'soon'"),
    ({"DTR_LOG": "loud"}, "DTR_LOG: log: expected a mapping"),
    ({"DTR_STORAGE__FILESYSTEM__MAXTHREADS": "lots"}, "DTR_STORAGE__FILESYSTEM__MAXTHREADS: storage.filesystem."),
    ({"DTR_REGISTRY__NOPE": "1"}, "DTR_REGISTRY__NOPE: registry.nope: unknown key"),
])
def test_an_error_from_an_environment_override_names_the_variable(tmp_path: Path, env: dict[str, str],
                                                                  expected: str) -> None:
    assert error(tmp_path, {}, env).startswith(expected)


def test_an_error_in_the_file_names_no_variable(tmp_path: Path) -> None:
    assert error(tmp_path, {"http": {"addr": "x"}}, {"DTR_LOG__LEVEL": "info"}).startswith("http.addr: ")


def test_the_example_config_shows_the_defaults() -> None:
    cfg = load_config(ROOT / "config.example.yaml", environ={})
    defaults = load_config(None, environ={})
    for section in ("http", "database", "registry", "log", "jobs", "auth", "webhooks"):
        assert getattr(cfg, section) == getattr(defaults, section), section


def test_redacted_leaves_out_secrets(tmp_path: Path) -> None:
    secrets = ["Adm1n-secret", "db-pass-word", "s3-secret-key", "ldap-bind-secret", "sess-token", "nvd-api-k3y"]
    cfg = load(tmp_path, {
        "database": {"url": "postgresql://dtr:db-pass-word@db.example.com:5432/dtr"},
        "storage": {"s3": {"bucket": "b", "region": "us-east-1", "accesskey": "AKIA", "secretkey": "s3-secret-key",
                           "sessiontoken": "sess-token"}},
        "auth": {"admin_password": "Adm1n-secret", "token_ttl": "5m",
                 "ldap": {"url": "ldap://x", "user_search_base": "dc=x", "bind_password": "ldap-bind-secret"}},
        "scanning": {"feeds": {"nvd_api_key": "nvd-api-k3y"}},
    })
    shown = redacted(cfg)
    text = json.dumps(shown)
    assert not [s for s in secrets if s in text]
    assert shown["database"]["url"] == "postgresql://dtr:***@db.example.com:5432/dtr"
    assert shown["storage"]["params"]["secretkey"] == "***" and shown["storage"]["params"]["accesskey"] == "AKIA"
    assert shown["auth"]["admin_password"] == "***" and shown["auth"]["token_ttl"] == 300
    assert shown["auth"]["admin_password_file"] is None

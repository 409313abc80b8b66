"""Use cases on the directory (LDAP) for site admins, apart from HTTP: the settings in effect
(``dtr.auth.ldapsettings``: saved ones over ``auth.ldap`` of the configuration file; whether a bind
password is set, never the password), saving them (checked as the configuration loader checks
``auth.ldap``; the bind password sealed; none given keeps the saved one) or dropping them (the
file's are in effect again), a connection test of given settings (changing nothing), and the
directory sync queued as a job (``ldap_sync``: what ``dtr ldap sync`` does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ldap3.core.exceptions import LDAPException
from pydantic.alias_generators import to_camel

from dtr.accounts.context import Caller
from dtr.accounts.ldapsync import sync
from dtr.api.errors import APIError, codes
from dtr.auth import ldapsettings
from dtr.auth.ldap import Directory, DirectoryError
from dtr.auth.ldapsettings import Effective
from dtr.config import LDAPConfig
from dtr.config.loader import validate_ldap
from dtr.jobs import actions
from dtr.jobs.context import JobContext
from dtr.jobs.params import only
from dtr.jobs.service import JobService
from dtr.jobs.shapes import Job
from dtr.sections import ConfigError, build

#: The settings a test takes, as the configuration names them (the bind password apart).
FIELDS = tuple(f.name for f in dataclasses.fields(LDAPConfig) if f.name not in ("bind_password", "bind_password_file"))


@dataclasses.dataclass(frozen=True)
class TestResult:
    ok: bool
    #: What happened, for people: the users found, or why it failed (never a password).
    message: str
    users: int = 0


def _settings(c: Caller) -> ldapsettings.LDAPSettings:
    c.admin()
    if c.auth is None:
        raise APIError(codes.INVALID_OPERATION, "authentication is disabled: no directory is used")
    return c.auth.ldap


async def settings(c: Caller) -> Effective:
    """The directory settings in effect and where they come from (site admins)."""
    found = _settings(c)
    return await ldapsettings.effective(found.engine, found.cfg)


def invalid(e: ConfigError) -> APIError:
    """INVALID_PARAMETER for a value ``candidate`` refused, naming the field (its API name; detail
    ``{"field": its configuration name}``)."""
    key, _, message = str(e).partition(": ")
    field = key.removeprefix("ldap").removeprefix(".")
    name = to_camel(field) if field else "settings"
    return APIError(codes.INVALID_PARAMETER, f"{name}: {message or e}", {"field": field or "_form"})


async def save_settings(c: Caller, values: Mapping[str, Any], bind_password: str | None) -> Effective:
    """Save ``values`` (``FIELDS``) as the directory settings of every replica (site admins); a
    ``bind_password`` of None or "" keeps the saved one. INVALID_PARAMETER for a value that cannot
    work (``invalid``). The settings in effect after the change."""
    found = _settings(c)
    try:
        cfg = candidate(None, values, "")
    except ConfigError as e:
        raise invalid(e) from None
    await ldapsettings.save(c.engine, found.cfg, cfg, bind_password or None)
    found.forget()
    await c.changed("ldap_settings_update", "ldap", cfg.url,
                    {**{k: v for k, v in dataclasses.asdict(cfg).items() if k in FIELDS},
                     "bind_password_changed": bool(bind_password)})
    return await settings(c)


async def clear_settings(c: Caller) -> Effective:
    """Drop the saved directory settings (site admins): the configuration file's are in effect again."""
    found = _settings(c)
    if await ldapsettings.clear(c.engine):
        found.forget()
        await c.changed("ldap_settings_clear", "ldap", "", {})
    return await settings(c)


def candidate(configured: LDAPConfig | None, values: Mapping[str, Any], bind_password: str) -> LDAPConfig:
    """The settings ``values`` (``FIELDS``, as text or typed) describe; an empty ``bind_password``
    keeps the one of ``configured``. ConfigError (``ldap.KEY: ...``) for a value that cannot work."""
    given = {k: v for k, v in values.items() if k in FIELDS and v != ""}
    for f in dataclasses.fields(LDAPConfig):
        if f.default is dataclasses.MISSING and f.name not in given:
            raise ConfigError(f"ldap.{f.name}: is required")
    cfg = build(LDAPConfig, given, "ldap")
    if bind_password:
        cfg = dataclasses.replace(cfg, bind_password=bind_password, bind_password_file=None)
    elif configured is not None:
        cfg = dataclasses.replace(cfg, bind_password=configured.bind_password,
                                  bind_password_file=configured.bind_password_file)
    validate_ldap(cfg, "ldap")
    return cfg


async def test_connection(c: Caller, cfg: LDAPConfig) -> TestResult:
    """Bind as the service account of ``cfg`` and search its users (site admins); the outcome,
    failures included, as a result (the directory's trouble is not the caller's mistake)."""
    c.admin()
    try:
        found = await Directory(cfg).users()
    except DirectoryError as e:
        return TestResult(False, str(e))
    except (LDAPException, OSError) as e:
        return TestResult(False, f"cannot search {cfg.url}: {type(e).__name__}: {e}")
    await c.changed("ldap_test", "ldap", cfg.url, {"users": len(found)})
    return TestResult(True, f"connected to {cfg.url} as {cfg.bind_dn or '(anonymous)'}: "
                            f"{len(found)} users found under {cfg.user_search_base}", len(found))


async def queue_sync(c: Caller, jobs: JobService) -> Job:
    """Queue the directory sync (site admins; one waiting at a time); INVALID_OPERATION without a directory."""
    configured = (await settings(c)).config
    if configured is None:
        raise APIError(codes.INVALID_OPERATION, "no directory is configured (LDAP settings or auth.ldap)")
    job = await jobs.queue("ldap_sync", {}, dedupe_key="ldap_sync")
    await c.changed("ldap_sync_queue", "ldap", configured.url, {"job": job["id"]})
    return job


# -- the job --------------------------------------------------------------------------------------


def _check(params: dict[str, Any]) -> dict[str, Any]:
    only(params, set())
    return params


async def _run(ctx: JobContext) -> dict[str, Any]:
    cfg = (await ldapsettings.effective(ctx.engine, ctx.config)).config
    if cfg is None:
        ctx.log("no directory is configured (LDAP settings or auth.ldap): nothing to sync")
        return {"skipped": "no directory configured"}
    ctx.log(f"syncing users and teams from {cfg.url}")
    report = await sync(ctx.engine, Directory(cfg))
    ctx.log(f"created {len(report.created)}, updated {report.updated}, deactivated {len(report.deactivated)}, "
            f"conflicts {len(report.conflicts)}, teams {len(report.teams)}")
    return report.as_dict()


_SYNC = actions.Action(_run, _check, "sync users and teams from the directory (LDAP)", max_attempts=1)


def register_actions() -> None:
    """Make ``ldap_sync`` known to the job system (idempotent)."""
    actions.register("ldap_sync", _SYNC)

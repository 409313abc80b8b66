"""Use cases on the directory (LDAP) for site admins, apart from HTTP: the configured settings
(``auth.ldap``; whether a bind password is set, never the password), a connection test of given
settings (what a change of the configuration would do, without changing it), and the directory
sync queued as a job (``ldap_sync``: what ``dtr ldap sync`` does).

The settings come from the configuration file: nothing here changes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ldap3.core.exceptions import LDAPException

from dtr.accounts.context import Caller
from dtr.accounts.ldapsync import sync
from dtr.api.errors import APIError, codes
from dtr.auth.ldap import Directory, DirectoryError
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
class Settings:
    """The configured directory (None: none is), and whether its service account has a password."""

    config: LDAPConfig | None
    password_set: bool


@dataclasses.dataclass(frozen=True)
class TestResult:
    ok: bool
    #: What happened, for people: the users found, or why it failed (never a password).
    message: str
    users: int = 0


def settings(c: Caller, configured: LDAPConfig | None) -> Settings:
    c.admin()
    has = configured is not None and bool(configured.bind_password or configured.bind_password_file)
    return Settings(configured, has)


def candidate(configured: LDAPConfig | None, values: Mapping[str, Any], bind_password: str) -> LDAPConfig:
    """The settings ``values`` (``FIELDS``, as text or typed) describe; an empty ``bind_password``
    keeps the configured one. ConfigError (``ldap.KEY: ...``) for a value that cannot work."""
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


async def queue_sync(c: Caller, jobs: JobService, configured: LDAPConfig | None) -> Job:
    """Queue the directory sync (site admins; one waiting at a time); INVALID_OPERATION without a directory."""
    c.admin()
    if configured is None:
        raise APIError(codes.INVALID_OPERATION, "no directory is configured (auth.ldap)")
    job = await jobs.queue("ldap_sync", {}, dedupe_key="ldap_sync")
    await c.changed("ldap_sync_queue", "ldap", configured.url, {"job": job["id"]})
    return job


# -- the job --------------------------------------------------------------------------------------


def _check(params: dict[str, Any]) -> dict[str, Any]:
    only(params, set())
    return params


async def _run(ctx: JobContext) -> dict[str, Any]:
    cfg = ctx.config.auth.ldap
    if cfg is None:
        ctx.log("no directory is configured (auth.ldap): nothing to sync")
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

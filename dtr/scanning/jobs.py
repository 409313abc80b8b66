"""The scanner's job actions: ``scan`` (one image), ``update_vuln_db`` (refresh the vulnerability
database from the feeds, then queue a ``rematch`` when it changed) and ``rematch`` (the images a
database change touches). Each does nothing (and says so) while ``scanning.enabled`` is false.
"""

from __future__ import annotations

from typing import Any

from dtr.config import Config
from dtr.jobs import actions
from dtr.jobs.context import JobContext, JobFailed
from dtr.jobs.params import ParameterError, only
from dtr.jobs.service import JobService
from dtr.registry.names import DIGEST_RE, is_name


def _disabled(ctx: JobContext) -> dict[str, Any] | None:
    if ctx.config.scanning.enabled:
        return None
    ctx.log("scanning is disabled (scanning.enabled: false): nothing done")
    return {"skipped": "scanning disabled"}


# -- scan -----------------------------------------------------------------------------------------


def check_scan(params: dict[str, Any]) -> dict[str, Any]:
    only(params, {"digest", "repository"})
    digest, repository = params.get("digest"), params.get("repository")
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise ParameterError("digest: expected an image manifest digest (sha256:...)")
    if not isinstance(repository, str) or not is_name(repository):
        raise ParameterError("repository: expected a repository name")
    return params


async def scan(ctx: JobContext) -> dict[str, Any]:
    from dtr.scanning.scan import scan_image

    if (skipped := _disabled(ctx)) is not None:
        return skipped
    return await scan_image(ctx, ctx.parameters["digest"], ctx.parameters["repository"])


# -- update_vuln_db -------------------------------------------------------------------------------


def check_update(params: dict[str, Any]) -> dict[str, Any]:
    only(params, {"feeds"})
    feeds = params.get("feeds")
    if feeds is not None and (not isinstance(feeds, list) or not feeds
                              or not all(isinstance(f, str) and f for f in feeds)):
        raise ParameterError("feeds: expected a non-empty list of feed names")
    return params


async def update_vuln_db(ctx: JobContext) -> dict[str, Any]:
    """Update every feed (or ``feeds``): one log line per feed; ``vulndb_updated`` recorded and a
    ``rematch`` queued when the database changed. Fails (with each feed's reason) when every feed
    failed."""
    from dtr.scanning import vulndb
    from dtr.scanning.service import database_updated

    if (skipped := _disabled(ctx)) is not None:
        return skipped
    feeds = ctx.parameters.get("feeds")
    try:
        vulndb.select_feeds(vulndb.configured_feeds(ctx.config.scanning), feeds)
    except ValueError as e:  # a feed name not configured
        raise JobFailed(str(e)) from None
    results = await vulndb.update(ctx.engine, ctx.config.scanning, log=ctx.log, feeds=feeds)
    for r in results:
        ctx.log(f"feed {r.name}: {describe(r)}")
    job = await database_updated(ctx.engine, JobService(ctx.engine), changes(results))
    if job is not None:
        ctx.log(f"queued rematch job {job['id']}")
    failed = [r for r in results if r.status == "failed"]
    if results and len(failed) == len(results):
        raise JobFailed("every feed failed: " + "; ".join(f"{r.name}: {r.error}" for r in failed))
    return {"feeds": {r.name: {"status": r.status, "version": r.version, "records": r.records,
                               "changed": r.changed, **({"error": r.error} if r.error else {})} for r in results},
            "rematch": job["id"] if job else None}


def describe(r: Any) -> str:
    """A feed's result (``vulnimport.FeedResult``) in a few words."""
    if r.status == "failed":
        return f"failed: {r.error}"
    if r.status == "unchanged":
        return f"unchanged (version {r.version}, {r.records} records)"
    return f"updated to version {r.version}: {r.records} records, {r.changed} packages changed"


def changes(results: Any) -> dict[str, Any] | None:
    """``vulndb_updated``'s detail for ``results``: the feeds updated and their versions (None: none was)."""
    updated = {r.name: r.version for r in results if r.status == "updated"}
    return {"feeds": updated} if updated else None


# -- rematch --------------------------------------------------------------------------------------


def check_rematch(params: dict[str, Any]) -> dict[str, Any]:
    only(params, set())
    return params


async def rematch(ctx: JobContext) -> dict[str, Any]:
    from dtr.scanning.rematch import rematch as run

    if (skipped := _disabled(ctx)) is not None:
        return skipped
    return {"images": await run(ctx.engine, ctx.log, check_stop=ctx.check_stop, progress=ctx.progress)}


def _update_schedule(config: Config) -> str | None:
    """DTR's daily update (``scanning.update_schedule``), while scanning is on."""
    return config.scanning.update_schedule if config.scanning.enabled else None


_ACTIONS = {
    "scan": actions.Action(scan, check_scan, "scan an image: index its layers, match its software"),
    "update_vuln_db": actions.Action(update_vuln_db, check_update, "update the vulnerability database from its feeds",
                                     max_attempts=1, default_schedule=_update_schedule),
    "rematch": actions.Action(rematch, check_rematch, "match the images a vulnerability database change touches again"),
}


def register_actions() -> None:
    """Make the scanner's actions known to the job system (idempotent)."""
    for name, action in _ACTIONS.items():
        actions.register(name, action)

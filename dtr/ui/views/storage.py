"""Storage (site admins): usage per namespace and per repository (bars drawn as server-side SVG,
and tables), the garbage collection form (a dry run first, then a run), the history of past
collections with their results, and a recount of the usage.

Usage is what ``GET /api/v0/usage/namespaces`` and ``/usage/repositories`` answer
(``dtr.jobs.usage``: a blob shared by repositories counts once in their namespace); collections
and recounts are queued through ``dtr.jobs.admin.start_job`` as ``POST /api/v0/jobs`` does. The
use cases refuse anyone but a site admin.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dtr.api.errors import APIError, codes
from dtr.jobs import admin, shapes, usage
from dtr.ui.render import render
from dtr.ui.views.common import Form, jobs_caller, redirect, refused, signed_in
from dtr.ui.views.jobs import gc_summary, job_url

#: Bars a chart draws at most (the largest), rows a table lists at most, past collections shown.
CHART_BARS = 20
TABLE_ROWS = 500
HISTORY = 20
#: Height of one bar's row in a chart, in SVG user units (pixels).
BAR_ROW = 26


def chart(rows: list[shapes.Usage]) -> dict[str, Any]:
    """The largest ``CHART_BARS`` of ``rows`` as bars: each one's width in percent of the largest."""
    largest = sorted(rows, key=lambda r: (-r["bytes"], r["name"]))[:CHART_BARS]
    top = max((r["bytes"] for r in largest), default=0) or 1
    bars = [{"name": r["name"], "bytes": r["bytes"], "y": i * BAR_ROW, "width": round(100 * r["bytes"] / top, 2)}
            for i, r in enumerate(largest)]
    return {"bars": bars, "height": max(len(bars), 1) * BAR_ROW, "row": BAR_ROW}


async def _context(request: web.Request) -> dict[str, Any]:
    """What the storage page shows (APIError FORBIDDEN for anyone but a site admin)."""
    caller = jobs_caller(request)
    namespaces = await usage.list_namespaces(caller)
    repos = await usage.list_repositories(caller)
    history, _ = await admin.list_jobs(caller, action="gc", size=HISTORY)
    by_size = sorted(repos, key=lambda r: (-r["bytes"], r["name"]))
    counted = [r["updatedAt"] for r in [*namespaces, *repos] if r["updatedAt"]]
    return {
        "title": "Storage", "namespaces": namespaces, "repositories": by_size[:TABLE_ROWS],
        "repository_count": len(repos), "ns_chart": chart(namespaces), "repo_chart": chart(repos),
        "total_bytes": sum(n["bytes"] for n in namespaces), "total_unique": sum(n["uniqueBytes"] for n in namespaces),
        "counted_at": max(counted) if counted else None,
        "history": [{"job": j, "gc": gc_summary(j["result"])} for j in history],
        "form": {"grace_period": ""}, "errors": {}}


@signed_in
async def page(request: web.Request) -> web.StreamResponse:
    try:
        return render(request, "storage.html", await _context(request))
    except APIError as e:
        return refused(request, e)


@signed_in
async def collect(request: web.Request) -> web.StreamResponse:
    """Queue a garbage collection (``mode`` ``dry-run`` or ``run``) as ``POST /api/v0/jobs`` does;
    a bad grace period is shown beside its field."""
    form = await Form.read(request, "mode", "grace_period")
    mode = form.choice("mode", "Mode", ("dry-run", "run"))
    grace = form.text("grace_period", "Grace period", max_length=32)
    params: dict[str, Any] = {"dry_run": mode != "run"}
    if grace:
        params["grace_period"] = grace
    if not form.errors:
        try:
            job = await admin.start_job(jobs_caller(request), admin.JobSpec("gc", params))
        except APIError as e:
            if e.code != codes.INVALID_JOB:
                return refused(request, e)
            form.errors["grace_period"] = e.message
        else:
            return redirect(job_url(job["id"]))
    try:
        context = await _context(request)
    except APIError as e:
        return refused(request, e)
    return render(request, "storage.html", {**context, **form.context()}, 400)


@signed_in
async def recount(request: web.Request) -> web.StreamResponse:
    """Queue the ``usage`` job, which recounts what every repository and namespace uses."""
    try:
        job = await admin.start_job(jobs_caller(request), admin.JobSpec("usage", {}))
    except APIError as e:
        return refused(request, e)
    return redirect(job_url(job["id"]))


def register(app: web.Application) -> None:
    app.router.add_get("/storage", page)
    app.router.add_post("/storage/gc", collect)
    app.router.add_post("/storage/recount", recount)

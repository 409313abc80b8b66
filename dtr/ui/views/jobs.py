"""Jobs (site admins): the list (filtered by status and action, newest first, paged), one job's
page (parameters, status, attempts, result, its log followed live), and cancelling a job.

The log follows by polling a fragment (``/ui/jobs/{id}/log?after=N``, htmx every second): it
answers the lines after line N, the job's summary (swapped out of band) and the next poller, or
no poller once the job has ended and every line was sent. Without JavaScript the page has a reload
link. Everything goes through ``dtr.jobs.admin``, the use cases of ``/api/v0/jobs``, which refuse
anyone but a site admin.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dtr.api.errors import APIError
from dtr.jobs import actions, admin, shapes
from dtr.jobs.service import STATUSES, ended
from dtr.ui.render import render
from dtr.ui.views.common import jobs_caller, redirect, refused, signed_in, with_query

PAGE_SIZE = 50
#: Log lines a page or a poll sends at most (a poll that sent this many polls again at once).
LOG_LINES = 1000


def job_url(job_id: str, tail: str = "") -> str:
    return f"/ui/jobs/{job_id}{tail}"


def gc_summary(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """A garbage collection's result (``dtr.jobs.gc``) as its pages show it, None if it has none."""
    if not result or "bytes" not in result:
        return None
    return {"dry_run": bool(result.get("dry_run")), "bytes": result.get("bytes", 0),
            "manifests": result.get("manifests", 0), "blobs": result.get("blobs", 0),
            "links": result.get("links", 0), "grace_period": result.get("grace_period")}


def job_view(job: shapes.Job) -> dict[str, Any]:
    """What the job's summary shows besides the job: whether it ended, may be cancelled, its
    parameters and result as text, a garbage collection's totals."""
    done = ended(job)
    return {"job": job, "ended": done, "cancellable": not done and job["status"] != "cancel_request",
            "parameters_text": json.dumps(job["parameters"] or {}, indent=2, sort_keys=True),
            "result_text": json.dumps(job["result"], indent=2, sort_keys=True) if job["result"] is not None else "",
            "gc": gc_summary(job["result"]) if job["action"] == "gc" else None}


@signed_in
async def list_page(request: web.Request) -> web.StreamResponse:
    status = request.query.get("status", "")[:32]
    action = request.query.get("action", "")[:64]
    start = request.query.get("start", "")[:128] or None
    try:
        rows, after = await admin.list_jobs(jobs_caller(request), action=action or None, status=status or None,
                                            start=start, size=PAGE_SIZE)
    except APIError as e:
        return refused(request, e)
    return render(request, "jobs.html", {
        "title": "Jobs", "tab": "jobs", "rows": rows, "status": status, "action": action,
        "statuses": STATUSES, "actions": sorted(actions.actions()),
        "next_url": with_query("/ui/jobs", status=status, action=action, start=after) if after else None,
        "first_url": with_query("/ui/jobs", status=status, action=action) if start else None})


@signed_in
async def job_page(request: web.Request) -> web.StreamResponse:
    caller = jobs_caller(request)
    try:
        jid = admin.job_id(request.match_info["id"])
        job = await admin.get_job(caller, jid)
        lines = await admin.job_logs(caller, jid, 0, LOG_LINES)
    except APIError as e:
        return refused(request, e)
    view = job_view(job)
    return render(request, "job.html", {
        "title": f"Job {job['action']}", **view, "lines": lines, "oob": False,
        "after": lines[-1]["lineNum"] if lines else 0, "follow": not view["ended"] or len(lines) == LOG_LINES})


@signed_in
async def log_fragment(request: web.Request) -> web.StreamResponse:
    """The log lines after ``after``, the job's summary (out of band) and the next poller."""
    caller = jobs_caller(request)
    try:
        after = max(0, min(int(request.query.get("after", "0")), 2**31))
    except ValueError:
        after = 0
    try:
        jid = admin.job_id(request.match_info["id"])
        job = await admin.get_job(caller, jid)  # read first: lines written with its end come after
        lines = await admin.job_logs(caller, jid, after, LOG_LINES)
    except APIError as e:
        return refused(request, e)
    view = job_view(job)
    return render(request, "_job_log.html", {
        **view, "lines": lines, "oob": True, "after": lines[-1]["lineNum"] if lines else after,
        "follow": not view["ended"] or len(lines) == LOG_LINES})


@signed_in
async def cancel(request: web.Request) -> web.StreamResponse:
    """Cancel through the API's use case (it checks the visitor is a site admin)."""
    try:
        job = await admin.cancel_job(jobs_caller(request), admin.job_id(request.match_info["id"]))
    except APIError as e:
        return refused(request, e)
    return redirect(job_url(job["id"]))


def register(app: web.Application) -> None:
    app.router.add_get("/jobs", list_page)
    app.router.add_get("/jobs/{id}", job_page)
    app.router.add_get("/jobs/{id}/log", log_fragment)
    app.router.add_post("/jobs/{id}/cancel", cancel)

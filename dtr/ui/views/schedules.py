"""Schedules and workers (site admins): every action's schedule with its last and next run,
editing a schedule (the cron expression checked by the server, its error beside the field), and
the job workers with their capacity. The use cases are ``/api/v0/crons`` and ``/api/v0/workers``'
(``dtr.jobs.admin``); they refuse anyone but a site admin.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from dtr.api.errors import APIError, codes
from dtr.jobs import admin, shapes
from dtr.jobs.caller import Caller
from dtr.ui.render import render
from dtr.ui.views.common import Form, jobs_caller, redirect, refused, signed_in, with_query

SCHEDULES = "/ui/jobs/schedules"


def schedule_url(action: str) -> str:
    return f"{SCHEDULES}/{quote(action, safe='')}"


async def _last_runs(caller: Caller, crons: list[shapes.Cron]) -> dict[str, shapes.Job]:
    """The last job each schedule queued (those that still exist), by action."""
    runs: dict[str, shapes.Job] = {}
    for cron in crons:
        if cron["lastJobID"]:
            try:
                runs[cron["action"]] = await admin.get_job(caller, admin.job_id(cron["lastJobID"]))
            except APIError as e:
                if e.code != codes.NO_SUCH_JOB:  # deleted with the finished jobs past their retention
                    raise
    return runs


@signed_in
async def list_page(request: web.Request) -> web.StreamResponse:
    caller = jobs_caller(request)
    try:
        crons = await admin.list_crons(caller)
        workers = await admin.list_workers(caller)
        last = await _last_runs(caller, crons)
    except APIError as e:
        return refused(request, e)
    return render(request, "schedules.html", {
        "title": "Schedules and workers", "tab": "schedules", "crons": crons, "last": last, "workers": workers,
        "saved": request.query.get("saved", "")[:64], "schedule_url": schedule_url})


def _page(request: web.Request, cron: shapes.Cron, form: Form, status: int = 200) -> web.StreamResponse:
    return render(request, "schedule_edit.html", {
        "title": f"Schedule of {cron['action']}", "tab": "schedules", "cron": cron,
        "action_url": schedule_url(cron["action"]), **form.context()}, status)


@signed_in
async def edit_form(request: web.Request) -> web.StreamResponse:
    try:
        cron = await admin.get_cron(jobs_caller(request), request.match_info["action"])
    except APIError as e:
        return refused(request, e)
    return _page(request, cron, Form({"schedule": cron["schedule"], "enabled": "on" if cron["enabled"] else ""}))


@signed_in
async def save(request: web.Request) -> web.StreamResponse:
    """Replace the schedule (and whether it is enabled) keeping its parameters and run options;
    the use case checks the cron expression and the visitor."""
    caller = jobs_caller(request)
    form = await Form.read(request, "schedule", "enabled")
    schedule = form.text("schedule", "Schedule", required=True, max_length=255)
    try:
        cron = await admin.get_cron(caller, request.match_info["action"])
    except APIError as e:
        return refused(request, e)
    if not form.errors:
        options = admin.JobOptions(cron["retries"], cron["deadline"], cron["stopTimeout"])
        spec = admin.CronSpec(schedule, cron["parameters"], bool(form.values["enabled"]), options)
        try:
            await admin.put_cron(caller, cron["action"], spec)
        except APIError as e:
            if e.code != codes.INVALID_CRON:
                return refused(request, e)
            form.errors["schedule"] = e.message
        else:
            return redirect(with_query(SCHEDULES, saved=cron["action"]))
    return _page(request, cron, form, 400)


def register(app: web.Application) -> None:
    app.router.add_get("/jobs/schedules", list_page)
    app.router.add_get("/jobs/schedules/{action}", edit_form)
    app.router.add_post("/jobs/schedules/{action}", save)

"""``/api/v0`` routes for jobs, schedules, workers, storage usage and tag pruning (DTR's shapes).

- ``GET /jobs?action=&status=&worker=&limit=&offset=``, ``POST /jobs`` ``{"action", "parameters",
  "retries", "deadline", "stopTimeout"}`` (202), ``GET /jobs/{id}``, ``POST /jobs/{id}/cancel``,
  ``GET /jobs/{id}/logs?after=N`` (JSON list) and ``?follow=true`` (NDJSON stream: log lines,
  ``{"progress"}`` updates, then a final ``{"job"}`` when the job ends);
- ``GET /crons``, ``GET|PUT|DELETE /crons/{action}`` ``{"schedule", "parameters", "enabled", ...}``;
- ``GET /workers`` (capacity and heartbeat expiration of each worker);
- ``GET /usage/namespaces[/{namespace}]``, ``GET /usage/repositories[?namespace=]``,
  ``GET /usage/repositories/{namespace}/{reponame}``;
- ``GET|POST /repositories/{namespace}/{reponame}/pruningPolicies``,
  ``GET|PUT|DELETE .../pruningPolicies/{id}``, ``GET|POST .../pruningPolicies/test``,
  ``GET|PUT .../pruning`` ``{"tagLimit", "immutableTags"}``.

Handlers only parse the request, call the use case (``dtr.jobs.admin``, ``dtr.jobs.policies``,
``dtr.jobs.usage``) with the request's ``Caller`` and render its answer.
"""

from __future__ import annotations

import json

from aiohttp import web

from dtr.api.errors import codes, raises
from dtr.api.http import json_response, query_int, read_json
from dtr.auth.api import require_admin
from dtr.jobs import admin, policies, usage
from dtr.jobs.caller import Caller
from dtr.jobs.service import JobService
from dtr.keys import CONFIG, DATABASE, REGISTRY


def caller(request: web.Request) -> Caller:
    """The request's caller: a site admin (401 or 403 otherwise), with its client address."""
    cfg = request.config_dict[CONFIG].jobs
    jobs = JobService(request.config_dict[DATABASE].engine, cfg.stop_timeout, cfg.worker_timeout)
    return Caller(jobs.engine, require_admin(request), request.remote or "", jobs, request.config_dict[REGISTRY])


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name) in ("1", "true")


# -- jobs -------------------------------------------------------------------------------------


@raises(codes.FORBIDDEN, codes.INVALID_PARAMETER)
async def list_jobs(request: web.Request) -> web.Response:
    q = request.query
    jobs = await admin.list_jobs(caller(request), action=q.get("action"), status=q.get("status"),
                                 worker=q.get("worker"), limit=query_int(request, "limit", 100, 1, 1000),
                                 offset=query_int(request, "offset", 0))
    return json_response({"jobs": jobs})


@raises(codes.FORBIDDEN, codes.INVALID_JSON, codes.INVALID_JOB)
async def start_job(request: web.Request) -> web.Response:
    who = caller(request)
    return json_response(await admin.start_job(who, admin.JobSpec.parse(await read_json(request))), 202)


@raises(codes.FORBIDDEN, codes.NO_SUCH_JOB)
async def get_job(request: web.Request) -> web.Response:
    return json_response(await admin.get_job(caller(request), admin.job_id(request.match_info["id"])))


@raises(codes.FORBIDDEN, codes.NO_SUCH_JOB)
async def cancel_job(request: web.Request) -> web.Response:
    return json_response(await admin.cancel_job(caller(request), admin.job_id(request.match_info["id"])))


@raises(codes.FORBIDDEN, codes.NO_SUCH_JOB, codes.INVALID_PARAMETER)
async def job_logs(request: web.Request) -> web.StreamResponse:
    who, job_id = caller(request), admin.job_id(request.match_info["id"])
    after = query_int(request, "after", 0, 0, 2**31)
    if not _flag(request, "follow"):
        return json_response(await admin.job_logs(who, job_id, after, query_int(request, "limit", 1000, 1, 10_000)))
    events = await admin.follow_job(who, job_id, after)
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"})
    await resp.prepare(request)
    async for event in events:
        await resp.write(json.dumps(event).encode() + b"\n")
    await resp.write_eof()
    return resp


# -- schedules and workers --------------------------------------------------------------------


@raises(codes.FORBIDDEN)
async def list_crons(request: web.Request) -> web.Response:
    return json_response({"crons": await admin.list_crons(caller(request))})


@raises(codes.FORBIDDEN, codes.NO_SUCH_CRON)
async def get_cron(request: web.Request) -> web.Response:
    return json_response(await admin.get_cron(caller(request), request.match_info["action"]))


@raises(codes.FORBIDDEN, codes.INVALID_JSON, codes.INVALID_CRON)
async def put_cron(request: web.Request) -> web.Response:
    who = caller(request)
    spec = admin.CronSpec.parse(await read_json(request))
    return json_response(await admin.put_cron(who, request.match_info["action"], spec))


@raises(codes.FORBIDDEN, codes.NO_SUCH_CRON)
async def delete_cron(request: web.Request) -> web.Response:
    await admin.delete_cron(caller(request), request.match_info["action"])
    return web.Response(status=204)


@raises(codes.FORBIDDEN)
async def list_workers(request: web.Request) -> web.Response:
    return json_response({"workers": await admin.list_workers(caller(request))})


# -- storage usage -----------------------------------------------------------------------------


@raises(codes.FORBIDDEN, codes.NO_SUCH_NAMESPACE)
async def usage_namespaces(request: web.Request) -> web.Response:
    ns = request.match_info.get("namespace")
    if ns is not None:
        return json_response(await usage.namespace_usage(caller(request), ns))
    return json_response({"namespaces": await usage.list_namespaces(caller(request))})


@raises(codes.FORBIDDEN, codes.NO_SUCH_REPOSITORY)
async def usage_repositories(request: web.Request) -> web.Response:
    if "reponame" in request.match_info:
        return json_response(await usage.repository_usage(caller(request), _repo_name(request)))
    rows = await usage.list_repositories(caller(request), request.query.get("namespace"))
    return json_response({"repositories": rows})


# -- pruning -----------------------------------------------------------------------------------


def _repo_name(request: web.Request) -> str:
    return f"{request.match_info['namespace']}/{request.match_info['reponame']}"


@raises(codes.FORBIDDEN, codes.NO_SUCH_REPOSITORY)
async def list_policies(request: web.Request) -> web.Response:
    return json_response(await policies.list_policies(caller(request), _repo_name(request)))


@raises(codes.FORBIDDEN, codes.INVALID_JSON, codes.INVALID_PRUNING_POLICY, codes.NO_SUCH_REPOSITORY)
async def create_policy(request: web.Request) -> web.Response:
    who = caller(request)
    policy = policies.parse_policy(await read_json(request))
    return json_response(await policies.create_policy(who, _repo_name(request), policy,
                                                      evaluate_now=_flag(request, "initialEvaluation")), 201)


@raises(codes.FORBIDDEN, codes.INVALID_JSON, codes.INVALID_PRUNING_POLICY, codes.NO_SUCH_REPOSITORY,
        codes.NO_SUCH_PRUNING_POLICY)
async def policy(request: web.Request) -> web.Response:
    who, repo = caller(request), _repo_name(request)
    pid = policies.policy_id(request.match_info["id"])
    if request.method == "GET":
        return json_response(await policies.get_policy(who, repo, pid))
    if request.method == "PUT":
        p = policies.parse_policy(await read_json(request))
        return json_response(await policies.update_policy(who, repo, pid, p,
                                                          evaluate_now=_flag(request, "initialEvaluation")))
    await policies.delete_policy(who, repo, pid)
    return web.Response(status=204)


@raises(codes.FORBIDDEN, codes.INVALID_JSON, codes.INVALID_PRUNING_POLICY, codes.NO_SUCH_REPOSITORY)
async def test_policy(request: web.Request) -> web.Response:
    """What would be pruned now: by the posted policy (POST), or by the repository's settings (GET)."""
    who = caller(request)
    posted = policies.parse_policy(await read_json(request)) if request.method == "POST" else None
    return json_response(await policies.would_prune(who, _repo_name(request), posted))


@raises(codes.FORBIDDEN, codes.INVALID_JSON, codes.INVALID_SETTINGS, codes.NO_SUCH_REPOSITORY)
async def repo_pruning(request: web.Request) -> web.Response:
    who, repo = caller(request), _repo_name(request)
    if request.method == "GET":
        return json_response((await policies.get_settings(who, repo)).json())
    settings = policies.Settings.parse(await read_json(request))
    return json_response((await policies.put_settings(who, repo, settings,
                                                      evaluate_now=_flag(request, "initialEvaluation"))).json())


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/jobs", list_jobs)
    r.add_post("/jobs", start_job)
    r.add_get("/jobs/{id}", get_job)
    r.add_post("/jobs/{id}/cancel", cancel_job)
    r.add_get("/jobs/{id}/logs", job_logs)
    r.add_get("/crons", list_crons)
    r.add_get("/crons/{action}", get_cron)
    r.add_put("/crons/{action}", put_cron)
    r.add_delete("/crons/{action}", delete_cron)
    r.add_get("/workers", list_workers)
    r.add_get("/usage/namespaces", usage_namespaces)
    r.add_get("/usage/namespaces/{namespace}", usage_namespaces)
    r.add_get("/usage/repositories", usage_repositories)
    r.add_get("/usage/repositories/{namespace}/{reponame}", usage_repositories)
    base = "/repositories/{namespace}/{reponame}"
    r.add_get(base + "/pruningPolicies", list_policies)
    r.add_post(base + "/pruningPolicies", create_policy)
    r.add_get(base + "/pruningPolicies/test", test_policy)
    r.add_post(base + "/pruningPolicies/test", test_policy)
    for method in ("GET", "PUT", "DELETE"):
        r.add_route(method, base + "/pruningPolicies/{id}", policy)
    r.add_get(base + "/pruning", repo_pruning)
    r.add_put(base + "/pruning", repo_pruning)

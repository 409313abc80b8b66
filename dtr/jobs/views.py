"""``/api/v0`` for jobs, schedules, workers, storage usage and tag pruning, in DTR's shapes
(``shapes``); site admins only. Each handler is a typed operation (``dtr.api.operations``): its
annotations say what it parses and answers; it builds the domain's objects from the validated
request, calls its use case (``admin``, ``policies``, ``usage``) with the request's ``Caller`` and
renders the answer. ``GET /jobs/{id}/logs?follow=true`` streams NDJSON: the log's lines,
``{"progress"}`` updates, then a last ``{"job"}`` when the job ends.
"""

from __future__ import annotations

import json

from aiohttp import web

from dtr.api.errors import codes
from dtr.api.operations import Paged, add_all, operation
from dtr.auth.api import require_admin
from dtr.jobs import admin, policies, pruning, usage
from dtr.jobs import shapes as s
from dtr.jobs.caller import Caller
from dtr.jobs.service import JobService
from dtr.keys import CONFIG, DATABASE, REGISTRY


def caller(request: web.Request) -> Caller:
    """The request's caller: a site admin (401 or 403 otherwise), with its client address."""
    cfg = request.config_dict[CONFIG].jobs
    jobs = JobService(request.config_dict[DATABASE].engine, cfg.stop_timeout, cfg.worker_timeout)
    return Caller(jobs.engine, require_admin(request), request.remote or "", jobs, request.config_dict[REGISTRY])


def _options(body: s.RunOptions) -> admin.JobOptions:
    return admin.JobOptions(body.retries, body.deadline, body.stop_timeout)


def _name(namespace: str, repo: str) -> str:
    return f"{namespace}/{repo}"


_BODY = (codes.FORBIDDEN, codes.INVALID_JSON)
_REPO = (codes.FORBIDDEN, codes.NO_SUCH_REPOSITORY)
_POLICY = (*_BODY, codes.NO_SUCH_REPOSITORY, codes.INVALID_PARAMETER)


# -- jobs -------------------------------------------------------------------------------------


@operation(codes.FORBIDDEN)
async def list_jobs(request: web.Request, query: s.JobsQuery) -> Paged[s.JobList]:
    """Jobs, newest first; filters ``action``, ``status`` (comma-separated) and ``worker``."""
    jobs, next_start = await admin.list_jobs(caller(request), action=query.action, status=query.status,
                                             worker=query.worker, start=query.page_start, size=query.page_size)
    return Paged({"jobs": jobs}, next_start)


@operation(*_BODY, status=202, invalid=codes.INVALID_JOB)
async def start_job(request: web.Request, body: s.NewJob) -> s.Job:
    """Queue a job of ``action`` with its ``parameters``."""
    return await admin.start_job(caller(request), admin.JobSpec(body.action, body.parameters, _options(body)))


@operation(codes.FORBIDDEN, codes.NO_SUCH_JOB)
async def get_job(request: web.Request, id: str) -> s.Job:
    """A job."""
    return await admin.get_job(caller(request), admin.job_id(id))


@operation(codes.FORBIDDEN, codes.NO_SUCH_JOB)
async def cancel_job(request: web.Request, id: str) -> s.Job:
    """Cancel a waiting job now, or ask a running one's worker to stop it."""
    return await admin.cancel_job(caller(request), admin.job_id(id))


@operation(codes.FORBIDDEN, codes.NO_SUCH_JOB)
async def get_job_logs(request: web.Request, id: str, query: s.LogsQuery) -> s.JobLogList | web.StreamResponse:
    """A job's log lines after line ``after``; with ``follow=true``, its log as NDJSON until it ends."""
    who, job_id = caller(request), admin.job_id(id)
    if not query.follow:
        return await admin.job_logs(who, job_id, query.after, query.limit)
    events = await admin.follow_job(who, job_id, query.after)
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"})
    await resp.prepare(request)
    async for event in events:
        await resp.write(json.dumps(event).encode() + b"\n")
    await resp.write_eof()
    return resp


# -- schedules and workers --------------------------------------------------------------------


@operation(codes.FORBIDDEN)
async def list_crons(request: web.Request) -> s.CronList:
    """Every action's schedule."""
    return {"crons": await admin.list_crons(caller(request))}


@operation(codes.FORBIDDEN, codes.NO_SUCH_CRON)
async def get_cron(request: web.Request, action: str) -> s.Cron:
    """The schedule of an action."""
    return await admin.get_cron(caller(request), action)


@operation(*_BODY, invalid=codes.INVALID_CRON)
async def set_cron(request: web.Request, action: str, body: s.CronChanges) -> s.Cron:
    """Create or replace the schedule of an action."""
    spec = admin.CronSpec(body.schedule, body.parameters, body.enabled, _options(body))
    return await admin.put_cron(caller(request), action, spec)


@operation(codes.FORBIDDEN, codes.NO_SUCH_CRON)
async def delete_cron(request: web.Request, action: str) -> None:
    """Delete the schedule of an action."""
    await admin.delete_cron(caller(request), action)


@operation(codes.FORBIDDEN)
async def list_workers(request: web.Request) -> s.WorkerList:
    """Workers seen in the last hour: capacity, heartbeat expiration, running jobs."""
    return {"workers": await admin.list_workers(caller(request))}


# -- storage usage -----------------------------------------------------------------------------


@operation(codes.FORBIDDEN)
async def list_namespace_usage(request: web.Request) -> s.NamespaceUsageList:
    """Storage used by each namespace, by name."""
    return {"namespaces": await usage.list_namespaces(caller(request))}


@operation(codes.FORBIDDEN, codes.NO_SUCH_NAMESPACE)
async def get_namespace_usage(request: web.Request, namespace: str) -> s.Usage:
    """Storage used by a namespace."""
    return await usage.namespace_usage(caller(request), namespace)


@operation(codes.FORBIDDEN)
async def list_repository_usage(request: web.Request, query: s.UsageQuery) -> s.RepositoryUsageList:
    """Storage used by each repository (of ``namespace`` only, if given), by name."""
    return {"repositories": await usage.list_repositories(caller(request), query.namespace)}


@operation(*_REPO)
async def get_repository_usage(request: web.Request, namespace: str, repo: str) -> s.Usage:
    """Storage used by a repository."""
    return await usage.repository_usage(caller(request), _name(namespace, repo))


# -- pruning -----------------------------------------------------------------------------------


def _policy(body: s.PolicySpec) -> pruning.Policy:
    return policies.parse_policy(body.model_dump(by_alias=True, exclude={"id"}))


@operation(*_REPO)
async def list_pruning_policies(request: web.Request, namespace: str, repo: str) -> s.PolicyList:
    """The repository's pruning policies, oldest first."""
    return await policies.list_policies(caller(request), _name(namespace, repo))


@operation(*_POLICY, status=201, invalid=codes.INVALID_PRUNING_POLICY)
async def create_pruning_policy(request: web.Request, namespace: str, repo: str, query: s.Evaluation,
                                body: s.PolicySpec) -> s.PruningPolicy:
    """Add a pruning policy to the repository (``initialEvaluation=true``: prune now)."""
    return await policies.create_policy(caller(request), _name(namespace, repo), _policy(body),
                                        evaluate_now=query.initial_evaluation)


@operation(*_REPO, codes.NO_SUCH_PRUNING_POLICY)
async def get_pruning_policy(request: web.Request, namespace: str, repo: str, id: str) -> s.PruningPolicy:
    """A pruning policy of the repository."""
    return await policies.get_policy(caller(request), _name(namespace, repo), policies.policy_id(id))


@operation(*_POLICY, codes.NO_SUCH_PRUNING_POLICY, invalid=codes.INVALID_PRUNING_POLICY)
async def update_pruning_policy(request: web.Request, namespace: str, repo: str, id: str, query: s.Evaluation,
                                body: s.PolicySpec) -> s.PruningPolicy:
    """Replace a pruning policy of the repository (``initialEvaluation=true``: prune now)."""
    return await policies.update_policy(caller(request), _name(namespace, repo), policies.policy_id(id),
                                        _policy(body), evaluate_now=query.initial_evaluation)


@operation(*_REPO, codes.NO_SUCH_PRUNING_POLICY)
async def delete_pruning_policy(request: web.Request, namespace: str, repo: str, id: str) -> None:
    """Delete a pruning policy of the repository."""
    await policies.delete_policy(caller(request), _name(namespace, repo), policies.policy_id(id))


@operation(*_REPO)
async def preview_pruning(request: web.Request, namespace: str, repo: str) -> s.WouldPrune:
    """What the repository's policies and tag limit would prune now (prunes nothing)."""
    return await policies.would_prune(caller(request), _name(namespace, repo))


@operation(*_BODY, codes.NO_SUCH_REPOSITORY, invalid=codes.INVALID_PRUNING_POLICY)
async def test_pruning_policy(request: web.Request, namespace: str, repo: str, body: s.PolicySpec) -> s.WouldPrune:
    """What the posted policy would prune now, as if enabled, without the tag limit (prunes nothing)."""
    return await policies.would_prune(caller(request), _name(namespace, repo), _policy(body))


@operation(*_REPO)
async def get_pruning_settings(request: web.Request, namespace: str, repo: str) -> s.PruningSettings:
    """The repository's tag limit and tag immutability."""
    return (await policies.get_settings(caller(request), _name(namespace, repo))).json()


@operation(*_POLICY, invalid=codes.INVALID_SETTINGS)
async def set_pruning_settings(request: web.Request, namespace: str, repo: str, query: s.Evaluation,
                               body: s.PruningSettingsChanges) -> s.PruningSettings:
    """Set the repository's tag limit (null: none) and tag immutability (``initialEvaluation=true``:
    prune now)."""
    settings = policies.Settings(body.tag_limit, body.immutable_tags)
    return (await policies.put_settings(caller(request), _name(namespace, repo), settings,
                                        evaluate_now=query.initial_evaluation)).json()


def register(app: web.Application) -> None:
    """The jobs routes of /api/v0 (authentication is the API's: ``dtr.api.app.create_api_app``)."""
    base = "/repositories/{namespace}/{repo}"
    add_all(app.router, (
        ("GET", "/jobs", list_jobs),
        ("POST", "/jobs", start_job),
        ("GET", "/jobs/{id}", get_job),
        ("POST", "/jobs/{id}/cancel", cancel_job),
        ("GET", "/jobs/{id}/logs", get_job_logs),
        ("GET", "/crons", list_crons),
        ("GET", "/crons/{action}", get_cron),
        ("PUT", "/crons/{action}", set_cron),
        ("DELETE", "/crons/{action}", delete_cron),
        ("GET", "/workers", list_workers),
        ("GET", "/usage/namespaces", list_namespace_usage),
        ("GET", "/usage/namespaces/{namespace}", get_namespace_usage),
        ("GET", "/usage/repositories", list_repository_usage),
        ("GET", "/usage/repositories/{namespace}/{repo}", get_repository_usage),
        ("GET", base + "/pruningPolicies", list_pruning_policies),
        ("POST", base + "/pruningPolicies", create_pruning_policy),
        ("GET", base + "/pruningPolicies/test", preview_pruning),
        ("POST", base + "/pruningPolicies/test", test_pruning_policy),
        ("GET", base + "/pruningPolicies/{id}", get_pruning_policy),
        ("PUT", base + "/pruningPolicies/{id}", update_pruning_policy),
        ("DELETE", base + "/pruningPolicies/{id}", delete_pruning_policy),
        ("GET", base + "/pruning", get_pruning_settings),
        ("PUT", base + "/pruning", set_pruning_settings),
    ))

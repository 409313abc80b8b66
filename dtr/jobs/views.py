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
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import web
from sqlalchemy import text

from dtr.api.app import APIError, read_json
from dtr.auth.api import require_admin
from dtr.jobs import actions, pruning
from dtr.jobs.schedule import ScheduleError
from dtr.jobs.service import FINAL, STATUSES, JobService, NotFound
from dtr.keys import CONFIG, DATABASE

FOLLOW_POLL = 0.5


def _service(request: web.Request) -> JobService:
    cfg = request.config_dict[CONFIG].jobs
    return JobService(request.config_dict[DATABASE].engine, cfg.stop_timeout, cfg.worker_timeout)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


def _job_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise APIError(404, "NO_SUCH_JOB", "no such job") from None


def _int(request: web.Request, name: str, default: int, lo: int = 0, hi: int = 10_000) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise APIError(400, "INVALID_PARAMETER", f"{name}: expected an integer from {lo} to {hi}")
    return int(raw)


def _number(body: dict[str, Any], name: str) -> float | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise APIError(400, "INVALID_JOB", f"{name}: expected a positive number of seconds")
    return float(v)


def _retries(body: dict[str, Any]) -> int | None:
    v = body.get("retries")
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100:
        raise APIError(400, "INVALID_JOB", "retries: expected an integer from 0 to 100")
    return v


# -- jobs -------------------------------------------------------------------------------------


async def list_jobs(request: web.Request) -> web.Response:
    require_admin(request)
    status = request.query.get("status")
    if status and not set(status.split(",")) <= set(STATUSES):
        raise APIError(400, "INVALID_PARAMETER", f"status: allowed: {', '.join(STATUSES)}")
    jobs = await _service(request).list_jobs(action=request.query.get("action"), status=status,
                                        worker=request.query.get("worker"),
                                        limit=_int(request, "limit", 100, 1, 1000), offset=_int(request, "offset", 0))
    return _json({"jobs": jobs})


async def start_job(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise APIError(400, "INVALID_JOB", "expected an object with action and parameters")
    unknown = set(body) - {"action", "parameters", "retries", "deadline", "stopTimeout"}
    if unknown:
        raise APIError(400, "INVALID_JOB", f"unknown key {sorted(unknown)[0]!r}")
    action = body.get("action")
    if not isinstance(action, str):
        raise APIError(400, "INVALID_JOB", f"action: required; allowed: {', '.join(sorted(actions.actions()))}")
    try:
        job = await _service(request).queue(action, body.get("parameters"), retries=_retries(body),
                                            deadline=_number(body, "deadline"),
                                            stop_timeout=_number(body, "stopTimeout"))
    except actions.ParameterError as e:
        raise APIError(400, "INVALID_JOB", str(e)) from None
    return _json(job, 202)


async def get_job(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        return _json(await _service(request).get(_job_id(request)))
    except NotFound:
        raise APIError(404, "NO_SUCH_JOB", "no such job") from None


async def cancel_job(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        return _json(await _service(request).cancel(_job_id(request)))
    except NotFound:
        raise APIError(404, "NO_SUCH_JOB", "no such job") from None


async def job_logs(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    service, job_id = _service(request), _job_id(request)
    after = _int(request, "after", 0, 0, 2**31)
    try:
        job = await service.get(job_id)
    except NotFound:
        raise APIError(404, "NO_SUCH_JOB", "no such job") from None
    if request.query.get("follow") not in ("1", "true"):
        return _json(await service.logs(job_id, after, _int(request, "limit", 1000, 1, 10_000)))
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"})
    await resp.prepare(request)
    progress = None
    while True:
        lines = await service.logs(job_id, after)
        for line in lines:
            await resp.write(json.dumps(line).encode() + b"\n")
            after = line["lineNum"]
        if lines:
            continue
        if job["progress"] != progress:
            progress = job["progress"]
            await resp.write(json.dumps({"progress": progress}).encode() + b"\n")
        if job["status"] in FINAL or (job["status"] == "worker_dead" and job["attempt"] >= job["retries"] + 1):
            # one last read: lines written together with the final status
            for line in await service.logs(job_id, after):
                await resp.write(json.dumps(line).encode() + b"\n")
            await resp.write(json.dumps({"job": job}).encode() + b"\n")
            break
        await asyncio.sleep(FOLLOW_POLL)
        job = await service.get(job_id)
    await resp.write_eof()
    return resp


# -- crons and workers -------------------------------------------------------------------------


async def list_crons(request: web.Request) -> web.Response:
    require_admin(request)
    return _json({"crons": await _service(request).crons()})


async def get_cron(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        return _json(await _service(request).cron(request.match_info["action"]))
    except NotFound:
        raise APIError(404, "NO_SUCH_CRON", "no schedule for that action") from None


async def put_cron(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("schedule"), str):
        raise APIError(400, "INVALID_CRON", "expected an object with schedule (six fields, seconds first)")
    unknown = set(body) - {"schedule", "parameters", "enabled", "retries", "deadline", "stopTimeout", "action"}
    if unknown:
        raise APIError(400, "INVALID_CRON", f"unknown key {sorted(unknown)[0]!r}")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise APIError(400, "INVALID_CRON", "enabled: expected true or false")
    try:
        cron = await _service(request).put_cron(
            request.match_info["action"], body["schedule"], body.get("parameters"), enabled=enabled,
            retries=_retries(body), deadline=_number(body, "deadline"), stop_timeout=_number(body, "stopTimeout"))
    except (actions.ParameterError, ScheduleError) as e:
        raise APIError(400, "INVALID_CRON", str(e)) from None
    return _json(cron)


async def delete_cron(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        await _service(request).delete_cron(request.match_info["action"])
    except NotFound:
        raise APIError(404, "NO_SUCH_CRON", "no schedule for that action") from None
    return web.Response(status=204)


async def list_workers(request: web.Request) -> web.Response:
    require_admin(request)
    return _json({"workers": await _service(request).workers()})


# -- storage usage -----------------------------------------------------------------------------


def _usage_json(r: Any) -> dict[str, Any]:
    return {"name": r.name, "bytes": r.bytes, "uniqueBytes": r.unique_bytes, "blobs": r.blobs,
            "manifests": r.manifests, "updatedAt": r.updated_at.isoformat().replace("+00:00", "Z")}


async def _usage(request: web.Request, scope: str, name: str | None = None,
                 namespace: str | None = None) -> list[dict[str, Any]]:
    q = "SELECT * FROM storage_usage WHERE scope = :scope"
    params: dict[str, Any] = {"scope": scope}
    if name is not None:
        q += " AND name = :name"
        params["name"] = name
    if namespace is not None:
        q += " AND split_part(name, '/', 1) = :ns"
        params["ns"] = namespace
    async with request.config_dict[DATABASE].engine.connect() as conn:
        return [_usage_json(r) for r in await conn.execute(text(q + " ORDER BY name LIMIT 10000"), params)]


async def usage_namespaces(request: web.Request) -> web.Response:
    require_admin(request)
    ns = request.match_info.get("namespace")
    rows = await _usage(request, "namespace", ns)
    if ns is not None:
        if not rows:
            raise APIError(404, "NO_SUCH_NAMESPACE", "no usage recorded for that namespace (yet)")
        return _json(rows[0])
    return _json({"namespaces": rows})


async def usage_repositories(request: web.Request) -> web.Response:
    require_admin(request)
    if "reponame" in request.match_info:
        rows = await _usage(request, "repository", _repo_name(request))
        if not rows:
            raise APIError(404, "NO_SUCH_REPOSITORY", "no usage recorded for that repository (yet)")
        return _json(rows[0])
    return _json({"repositories": await _usage(request, "repository", namespace=request.query.get("namespace"))})


# -- pruning -----------------------------------------------------------------------------------


def _repo_name(request: web.Request) -> str:
    return f"{request.match_info['namespace']}/{request.match_info['reponame']}"


async def _repo_id(conn: Any, request: web.Request) -> int:
    rid = (await conn.execute(text("SELECT id FROM repositories WHERE name = :n"), {"n": _repo_name(request)})).scalar()
    if rid is None:
        raise APIError(404, "NO_SUCH_REPOSITORY", "no such repository")
    return int(rid)


def _policy_json(r: Any) -> dict[str, Any]:
    return {"id": str(r.id), "enabled": r.enabled, "rules": r.rules, "keepNewest": r.keep_newest}


def _parse_policy(body: Any) -> pruning.Policy:
    try:
        return pruning.Policy.parse(body)
    except pruning.PolicyError as e:
        raise APIError(400, "INVALID_PRUNING_POLICY", str(e)) from None


def _policy_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise APIError(404, "NO_SUCH_PRUNING_POLICY", "no such pruning policy") from None


async def _queue_prune(request: web.Request) -> None:
    if request.query.get("initialEvaluation") in ("1", "true"):
        await _service(request).queue("prune", {"repository": _repo_name(request)},
                                      dedupe_key=f"prune:{_repo_name(request)}")


async def list_policies(request: web.Request) -> web.Response:
    require_admin(request)
    async with request.config_dict[DATABASE].engine.connect() as conn:
        rid = await _repo_id(conn, request)
        rows = await conn.execute(text("SELECT * FROM pruning_policies WHERE repository_id = :r "
                                       "ORDER BY created_at, id"), {"r": rid})
        return _json([_policy_json(r) for r in rows])


async def create_policy(request: web.Request) -> web.Response:
    require_admin(request)
    policy = _parse_policy(await read_json(request))
    async with request.config_dict[DATABASE].engine.begin() as conn:
        rid = await _repo_id(conn, request)
        row = (await conn.execute(text(
            "INSERT INTO pruning_policies (id, repository_id, enabled, rules, keep_newest) "
            "VALUES (:id, :r, :e, CAST(:rules AS jsonb), :k) RETURNING *"),
            {"id": uuid.uuid4(), "r": rid, "e": policy.enabled, "k": policy.keep_newest,
             "rules": json.dumps([x.json() for x in policy.rules])})).one()
    await _queue_prune(request)
    return _json(_policy_json(row), 201)


async def policy(request: web.Request) -> web.Response:
    require_admin(request)
    pid = _policy_id(request)
    engine = request.config_dict[DATABASE].engine
    async with engine.begin() as conn:
        rid = await _repo_id(conn, request)
        where = {"id": pid, "r": rid}
        if request.method == "GET":
            row = (await conn.execute(text("SELECT * FROM pruning_policies WHERE id = :id AND repository_id = :r"),
                                      where)).first()
        elif request.method == "PUT":
            p = _parse_policy(await read_json(request))
            row = (await conn.execute(text(
                "UPDATE pruning_policies SET enabled = :e, rules = CAST(:rules AS jsonb), keep_newest = :k "
                "WHERE id = :id AND repository_id = :r RETURNING *"),
                {**where, "e": p.enabled, "k": p.keep_newest,
                 "rules": json.dumps([x.json() for x in p.rules])})).first()
        else:
            row = (await conn.execute(text("DELETE FROM pruning_policies WHERE id = :id AND repository_id = :r "
                                           "RETURNING *"), where)).first()
    if row is None:
        raise APIError(404, "NO_SUCH_PRUNING_POLICY", "no such pruning policy")
    if request.method == "DELETE":
        return web.Response(status=204)
    if request.method == "PUT":
        await _queue_prune(request)
    return _json(_policy_json(row))


async def test_policy(request: web.Request) -> web.Response:
    """What would be pruned now: by the posted policy (POST), or by the repository's settings (GET)."""
    require_admin(request)
    posted = _parse_policy(await read_json(request)) if request.method == "POST" else None
    async with request.config_dict[DATABASE].engine.connect() as conn:
        rid = await _repo_id(conn, request)
        tags, policies, now = await pruning.load(conn, rid)
        settings = (await conn.execute(_SETTINGS, {"r": rid})).one()
    limit, immutable = settings.tag_limit, settings.immutable
    if posted is not None:
        verdict = pruning.evaluate(tags, [_as_enabled(posted)], None, immutable, now)
    else:
        verdict = pruning.evaluate(tags, policies, limit, immutable, now)
    pushed = {t.name: t.pushed_at for t in tags}
    return _json({"immutableTags": immutable, "tags": [
        {"name": n, "reason": why, "lastUpdatedAt": pushed[n].isoformat().replace("+00:00", "Z")}
        for n, why in sorted(verdict.items())]})


def _as_enabled(p: pruning.Policy) -> pruning.Policy:
    """A policy under test is evaluated as if enabled."""
    return pruning.Policy(p.rules, p.keep_newest, True)


async def repo_pruning(request: web.Request) -> web.Response:
    require_admin(request)
    async with request.config_dict[DATABASE].engine.begin() as conn:
        rid = await _repo_id(conn, request)
        if request.method == "PUT":
            body = await read_json(request)
            if not isinstance(body, dict) or set(body) - {"tagLimit", "immutableTags"}:
                raise APIError(400, "INVALID_SETTINGS", "expected an object with tagLimit and/or immutableTags")
            limit = body.get("tagLimit")
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
                raise APIError(400, "INVALID_SETTINGS", "tagLimit: expected a positive integer, or null for none")
            immutable = body.get("immutableTags", False)
            if not isinstance(immutable, bool):
                raise APIError(400, "INVALID_SETTINGS", "immutableTags: expected true or false")
            await conn.execute(text(
                "INSERT INTO repository_pruning (repository_id, tag_limit) VALUES (:r, :l) "
                "ON CONFLICT (repository_id) DO UPDATE SET tag_limit = :l"), {"r": rid, "l": limit})
            await conn.execute(text("UPDATE repositories SET immutable_tags = :i WHERE id = :r"),
                               {"r": rid, "i": immutable})
        row = (await conn.execute(_SETTINGS, {"r": rid})).one()
    if request.method == "PUT":
        await _queue_prune(request)
    return _json({"tagLimit": row.tag_limit, "immutableTags": row.immutable})


#: A repository's tag limit and immutability (``immutable_tags`` belongs to the registry).
_SETTINGS = text("SELECT s.tag_limit, r.immutable_tags AS immutable FROM repositories r "
                 "LEFT JOIN repository_pruning s ON s.repository_id = r.id WHERE r.id = :r")


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

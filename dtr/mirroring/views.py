"""``/api/v0``: a repository's push and poll mirroring policies (DTR's ``pushMirroringPolicies`` and
``pollMirroringPolicies``), for its admins: list, create, read, replace, delete, and run now."""

from __future__ import annotations

from aiohttp import web

from dtr.api.errors import codes
from dtr.api.operations import add_all, operation
from dtr.auth.api import principal
from dtr.jobs import shapes as job_shapes
from dtr.jobs.service import JobService
from dtr.keys import AUTH, CONFIG, DATABASE
from dtr.mirroring import policies as p
from dtr.mirroring import shapes as s
from dtr.trust.sealing import Sealer


def _caller(request: web.Request) -> p.Caller:
    cfg = request.config_dict[CONFIG]
    engine = request.config_dict[DATABASE].engine
    return p.Caller(engine, principal(request), request.remote or "", request.config_dict[AUTH],
                    JobService(engine, cfg.jobs.stop_timeout, cfg.jobs.worker_timeout), Sealer.from_config(cfg))


_REPO = (codes.NO_SUCH_REPOSITORY, codes.FORBIDDEN)
_ONE = (*_REPO, codes.NO_SUCH_MIRRORING_POLICY)


@operation(*_REPO)
async def list_push_mirroring_policies(request: web.Request, namespace: str, repo: str) -> s.PolicyList:
    """The repository's push mirroring policies, oldest first."""
    return await p.list_policies(_caller(request), p.PUSH, namespace, repo)


@operation(*_REPO, status=201, invalid=codes.INVALID_MIRRORING_POLICY)
async def create_push_mirroring_policy(request: web.Request, namespace: str, repo: str,
                                       body: s.PushPolicySpec) -> s.MirroringPolicy:
    """Push the tags pushed here that match every rule to the remote repository (audited)."""
    return await p.create_policy(_caller(request), namespace, repo, p.parse(p.PUSH, body))


@operation(*_ONE)
async def get_push_mirroring_policy(request: web.Request, namespace: str, repo: str, id: str) -> s.MirroringPolicy:
    """One push mirroring policy, with its last run's status."""
    return await p.get_policy(_caller(request), p.PUSH, namespace, repo, p.policy_id(id))


@operation(*_ONE, invalid=codes.INVALID_MIRRORING_POLICY)
async def update_push_mirroring_policy(request: web.Request, namespace: str, repo: str, id: str,
                                       body: s.PushPolicySpec) -> s.MirroringPolicy:
    """Replace a push mirroring policy (without ``remoteCredentials``: the stored ones are kept)."""
    return await p.update_policy(_caller(request), namespace, repo, p.policy_id(id), p.parse(p.PUSH, body))


@operation(*_ONE)
async def delete_push_mirroring_policy(request: web.Request, namespace: str, repo: str, id: str) -> None:
    """Delete a push mirroring policy."""
    await p.delete_policy(_caller(request), p.PUSH, namespace, repo, p.policy_id(id))


@operation(*_ONE, status=202)
async def run_push_mirroring_policy(request: web.Request, namespace: str, repo: str, id: str) -> job_shapes.Job:
    """Queue a ``push_mirror`` job pushing every tag the policy matches now; the job."""
    return await p.run_policy(_caller(request), p.PUSH, namespace, repo, p.policy_id(id))


@operation(*_REPO)
async def list_poll_mirroring_policies(request: web.Request, namespace: str, repo: str) -> s.PolicyList:
    """The repository's poll mirroring policies, oldest first."""
    return await p.list_policies(_caller(request), p.POLL, namespace, repo)


@operation(*_REPO, status=201, invalid=codes.INVALID_MIRRORING_POLICY)
async def create_poll_mirroring_policy(request: web.Request, namespace: str, repo: str,
                                       body: s.PollPolicySpec) -> s.MirroringPolicy:
    """Fetch the remote repository's tags that match every rule into this one when they change
    (on ``schedule``, at each poll tick; audited)."""
    return await p.create_policy(_caller(request), namespace, repo, p.parse(p.POLL, body))


@operation(*_ONE)
async def get_poll_mirroring_policy(request: web.Request, namespace: str, repo: str, id: str) -> s.MirroringPolicy:
    """One poll mirroring policy, with its last run's status."""
    return await p.get_policy(_caller(request), p.POLL, namespace, repo, p.policy_id(id))


@operation(*_ONE, invalid=codes.INVALID_MIRRORING_POLICY)
async def update_poll_mirroring_policy(request: web.Request, namespace: str, repo: str, id: str,
                                       body: s.PollPolicySpec) -> s.MirroringPolicy:
    """Replace a poll mirroring policy (without ``remoteCredentials``: the stored ones are kept)."""
    return await p.update_policy(_caller(request), namespace, repo, p.policy_id(id), p.parse(p.POLL, body))


@operation(*_ONE)
async def delete_poll_mirroring_policy(request: web.Request, namespace: str, repo: str, id: str) -> None:
    """Delete a poll mirroring policy."""
    await p.delete_policy(_caller(request), p.POLL, namespace, repo, p.policy_id(id))


@operation(*_ONE, status=202)
async def run_poll_mirroring_policy(request: web.Request, namespace: str, repo: str, id: str) -> job_shapes.Job:
    """Queue a ``poll_mirror`` job polling the remote now; the job."""
    return await p.run_policy(_caller(request), p.POLL, namespace, repo, p.policy_id(id))


def register(app: web.Application) -> None:
    """The mirroring routes of /api/v0."""
    base = "/repositories/{namespace}/{repo}"
    add_all(app.router, (
        ("GET", base + "/pushMirroringPolicies", list_push_mirroring_policies),
        ("POST", base + "/pushMirroringPolicies", create_push_mirroring_policy),
        ("GET", base + "/pushMirroringPolicies/{id}", get_push_mirroring_policy),
        ("PUT", base + "/pushMirroringPolicies/{id}", update_push_mirroring_policy),
        ("DELETE", base + "/pushMirroringPolicies/{id}", delete_push_mirroring_policy),
        ("POST", base + "/pushMirroringPolicies/{id}/run", run_push_mirroring_policy),
        ("GET", base + "/pollMirroringPolicies", list_poll_mirroring_policies),
        ("POST", base + "/pollMirroringPolicies", create_poll_mirroring_policy),
        ("GET", base + "/pollMirroringPolicies/{id}", get_poll_mirroring_policy),
        ("PUT", base + "/pollMirroringPolicies/{id}", update_poll_mirroring_policy),
        ("DELETE", base + "/pollMirroringPolicies/{id}", delete_poll_mirroring_policy),
        ("POST", base + "/pollMirroringPolicies/{id}/run", run_poll_mirroring_policy),
    ))

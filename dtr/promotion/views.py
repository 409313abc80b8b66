"""``/api/v0`` promotion policies of a source repository, in DTR's shapes (``shapes``): each handler
builds the policy from the validated body and calls its use case (``policies``) with the
request's ``Caller``."""

from __future__ import annotations

from aiohttp import web

from dtr.api.errors import codes
from dtr.api.operations import add_all, operation
from dtr.auth.api import principal
from dtr.jobs.service import JobService
from dtr.keys import AUTH, CONFIG, DATABASE
from dtr.promotion import policies
from dtr.promotion import shapes as s
from dtr.promotion.rules import Policy


def _caller(request: web.Request) -> policies.Caller:
    cfg = request.config_dict[CONFIG].jobs
    jobs = JobService(request.config_dict[DATABASE].engine, cfg.stop_timeout, cfg.worker_timeout)
    return policies.Caller(jobs.engine, principal(request), request.remote or "", request.config_dict[AUTH], jobs)


def _name(namespace: str, repo: str) -> str:
    return f"{namespace}/{repo}"


def _policy(body: s.PromotionPolicySpec) -> Policy:
    return policies.parse_policy(body.model_dump(by_alias=True, exclude={"id"}))


_REPO = (codes.FORBIDDEN, codes.NO_SUCH_REPOSITORY)
_POLICY = (*_REPO, codes.NO_SUCH_PROMOTION_POLICY)


@operation(*_REPO)
async def list_promotion_policies(request: web.Request, namespace: str, repo: str) -> s.PolicyList:
    """The repository's promotion policies, oldest first (repository admins)."""
    return await policies.list_policies(_caller(request), _name(namespace, repo))


@operation(*_REPO, status=201, invalid=codes.INVALID_PROMOTION_POLICY)
async def create_promotion_policy(request: web.Request, namespace: str, repo: str,
                                  body: s.PromotionPolicySpec) -> s.PromotionPolicy:
    """Add a promotion policy to the repository (its admins, with read-write access to the target)."""
    return await policies.create_policy(_caller(request), _name(namespace, repo), _policy(body))


@operation(*_POLICY)
async def get_promotion_policy(request: web.Request, namespace: str, repo: str, id: str) -> s.PromotionPolicy:
    """A promotion policy of the repository, with its last promotion and last error."""
    return await policies.get_policy(_caller(request), _name(namespace, repo), policies.policy_id(id))


@operation(*_POLICY, invalid=codes.INVALID_PROMOTION_POLICY)
async def update_promotion_policy(request: web.Request, namespace: str, repo: str, id: str,
                                  body: s.PromotionPolicySpec) -> s.PromotionPolicy:
    """Replace a promotion policy of the repository."""
    return await policies.update_policy(_caller(request), _name(namespace, repo), policies.policy_id(id),
                                        _policy(body))


@operation(*_POLICY)
async def delete_promotion_policy(request: web.Request, namespace: str, repo: str, id: str) -> None:
    """Delete a promotion policy of the repository."""
    await policies.delete_policy(_caller(request), _name(namespace, repo), policies.policy_id(id))


@operation(*_POLICY, status=202)
async def run_promotion_policy(request: web.Request, namespace: str, repo: str, id: str) -> s.RunStarted:
    """Evaluate the policy (enabled or not) against every tag of the repository now, in a
    ``promote`` job."""
    return await policies.run_policy(_caller(request), _name(namespace, repo), policies.policy_id(id))


def register(app: web.Application) -> None:
    """The promotion policy routes of /api/v0."""
    base = "/repositories/{namespace}/{repo}/promotionPolicies"
    add_all(app.router, (
        ("GET", base, list_promotion_policies),
        ("POST", base, create_promotion_policy),
        ("GET", base + "/{id}", get_promotion_policy),
        ("PUT", base + "/{id}", update_promotion_policy),
        ("DELETE", base + "/{id}", delete_promotion_policy),
        ("POST", base + "/{id}/run", run_promotion_policy),
    ))

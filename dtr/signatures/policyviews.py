"""``/api/v0``: the signed-images-only setting of a repository or a namespace (``policy``)."""

from __future__ import annotations

from aiohttp import web

from dtr.api.errors import codes
from dtr.api.operations import Body, add_all, operation
from dtr.auth.api import principal
from dtr.keys import AUTH, DATABASE, SIGNING_POLICY
from dtr.signatures import policy
from dtr.signatures.access import Caller


class PolicyChange(Body):
    signed_only: bool


def _caller(request: web.Request) -> Caller:
    return Caller(request.config_dict[DATABASE].engine, principal(request), request.remote or "",
                         request.config_dict[AUTH])


@operation(codes.NO_SUCH_REPOSITORY)
async def get_repository_signing_policy(request: web.Request, namespace: str, repo: str) -> policy.Policy:
    """Whether pulls by tag of the repository need a trusted signature (``enforced``: its own
    setting or its namespace's)."""
    return await policy.get_policy(_caller(request), namespace, repo)


@operation(codes.NO_SUCH_REPOSITORY)
async def set_repository_signing_policy(request: web.Request, namespace: str, repo: str,
                                        body: PolicyChange) -> policy.Policy:
    """Turn "signed images only" on or off for the repository (repository admins; audited)."""
    found = await policy.set_policy(_caller(request), namespace, repo, body.signed_only)
    request.config_dict[SIGNING_POLICY].forget()
    return found


@operation(codes.NO_SUCH_NAMESPACE)
async def get_namespace_signing_policy(request: web.Request, namespace: str) -> policy.Policy:
    """Whether pulls by tag in every repository of the namespace need a trusted signature."""
    return await policy.get_policy(_caller(request), namespace, None)


@operation(codes.NO_SUCH_NAMESPACE)
async def set_namespace_signing_policy(request: web.Request, namespace: str, body: PolicyChange) -> policy.Policy:
    """Turn "signed images only" on or off for the whole namespace (namespace admins; audited)."""
    found = await policy.set_policy(_caller(request), namespace, None, body.signed_only)
    request.config_dict[SIGNING_POLICY].forget()
    return found


def register(app: web.Application) -> None:
    """The signing policy routes of /api/v0."""
    add_all(app.router, (
        ("GET", "/repositories/{namespace}/{repo}/signingPolicy", get_repository_signing_policy),
        ("PUT", "/repositories/{namespace}/{repo}/signingPolicy", set_repository_signing_policy),
        ("GET", "/namespaces/{namespace}/signingPolicy", get_namespace_signing_policy),
        ("PUT", "/namespaces/{namespace}/signingPolicy", set_namespace_signing_policy),
    ))

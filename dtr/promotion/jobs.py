"""The ``promote`` job action (``dtr.promotion.promote.run``): its parameters are ``repository``
and one of ``tag`` (every enabled policy on that tag), ``digest`` (the enabled policies that read
scans, on the tags naming that image) or ``policy`` (that policy on every tag)."""

from __future__ import annotations

import uuid
from typing import Any

from dtr.jobs import actions
from dtr.jobs.context import JobContext
from dtr.jobs.params import ParameterError, only
from dtr.registry.names import DIGEST_RE, TAG_RE, is_name


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    only(params, {"repository", "tag", "digest", "policy"})
    repo, tag, digest, policy = (params.get(k) for k in ("repository", "tag", "digest", "policy"))
    if not isinstance(repo, str) or not is_name(repo):
        raise ParameterError("repository: expected a repository name")
    if tag is not None and (not isinstance(tag, str) or not TAG_RE.fullmatch(tag)):
        raise ParameterError("tag: expected a tag")
    if digest is not None and (not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest)):
        raise ParameterError("digest: expected a manifest digest")
    if sum(k in params for k in ("tag", "digest", "policy")) > 1:
        raise ParameterError("give at most one of tag, digest and policy")
    if policy is not None:
        try:
            uuid.UUID(str(policy))
        except ValueError:
            raise ParameterError("policy: expected a promotion policy id") from None
    return params


async def promote(ctx: JobContext) -> dict[str, Any]:
    from dtr.promotion.promote import run

    return await run(ctx)


_ACTION = actions.Action(promote, check_params, "evaluate promotion policies and promote the images that meet them")


def register_actions() -> None:
    """Make the ``promote`` action known to the job system (idempotent)."""
    actions.register("promote", _ACTION)

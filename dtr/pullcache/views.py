"""``/api/v0``: a namespace's pull-through cache setting (site admins)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from dtr.api.errors import codes
from dtr.api.operations import Body, add_all, operation
from dtr.auth.api import principal
from dtr.auth.caller import Caller
from dtr.keys import CONFIG, DATABASE, PULL_THROUGH
from dtr.pullcache import settings
from dtr.trust.sealing import Sealer


class CacheChange(Body):
    upstream: str = Field(max_length=2048, description="https://host[:port] of the upstream registry")
    upstream_namespace: str = Field("", max_length=255, description="prefix of the repository names upstream "
                                                                    "(e.g. library); empty: none")
    username: str = Field("", max_length=255)
    password: str | None = Field(None, max_length=4096, description="absent: keep the stored one; empty: none")
    ca: str = Field("", max_length=65536, description="PEM certificates trusted for the upstream's TLS")
    tag_ttl: int = Field(settings.DEFAULT_TAG_TTL, alias="tagTTL", ge=0, le=31536000,
                         description="seconds a cached tag is served before it is checked upstream again")


def _caller(request: web.Request) -> Caller:
    return Caller(request.config_dict[DATABASE].engine, principal(request), request.remote or "")


@operation(codes.FORBIDDEN, codes.NO_SUCH_NAMESPACE, codes.NOT_FOUND)
async def get_pull_through_cache(request: web.Request, namespace: str) -> settings.CacheSetting:
    """The namespace's pull-through cache setting (``hasPassword`` says whether a password is set)."""
    return await settings.get_setting(_caller(request), namespace)


@operation(codes.FORBIDDEN, codes.NO_SUCH_NAMESPACE, codes.INVALID_JSON, codes.INVALID_PARAMETER)
async def set_pull_through_cache(request: web.Request, namespace: str, body: CacheChange) -> settings.CacheSetting:
    """Make the namespace a pull-through cache of an upstream registry, or change its setting (audited)."""
    cfg = request.config_dict[CONFIG]
    change = settings.Change(body.upstream, body.upstream_namespace, body.username, body.password, body.ca,
                             body.tag_ttl)
    found = await settings.set_setting(_caller(request), lambda: Sealer.from_config(cfg), namespace, change)
    request.config_dict[PULL_THROUGH].configs.forget()
    return found


@operation(codes.FORBIDDEN, codes.NO_SUCH_NAMESPACE, codes.NOT_FOUND)
async def delete_pull_through_cache(request: web.Request, namespace: str) -> None:
    """The namespace caches nothing any more; what it cached stays as ordinary repositories (audited)."""
    await settings.remove_setting(_caller(request), namespace)
    request.config_dict[PULL_THROUGH].configs.forget()


def register(app: web.Application) -> None:
    """The pull-through cache routes of /api/v0."""
    add_all(app.router, (
        ("GET", "/namespaces/{namespace}/pullThroughCache", get_pull_through_cache),
        ("PUT", "/namespaces/{namespace}/pullThroughCache", set_pull_through_cache),
        ("DELETE", "/namespaces/{namespace}/pullThroughCache", delete_pull_through_cache),
    ))

"""``/api/v0``: a repository's tags and manifests (``dtr.images.service``, ``dtr.images.manifests``)
and DTR's autocomplete (``dtr.images.search``); the web UI calls the same functions."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from dtr.api.errors import codes
from dtr.api.operations import Paged, PageQuery, Query, add_all, operation
from dtr.auth.api import principal
from dtr.images import manifests, search, shapes
from dtr.images import service as svc
from dtr.keys import AUTH, DATABASE, REGISTRY, STORAGE
from dtr.signatures.trustedkeys import Caller


def caller(request: web.Request) -> Caller:
    return Caller(request.config_dict[DATABASE].engine, principal(request), request.remote or "",
                  request.config_dict[AUTH], request.config_dict[STORAGE])


class SearchQuery(Query):
    query: str = Field("", max_length=255, description="what names start with (case-insensitive)")
    include_repositories: bool = Field(True, description="find repositories and namespaces")
    include_accounts: bool = Field(True, description="find accounts (site admins only)")
    limit: int = Field(50, ge=1, le=search.MAX_LIMIT, description="at most this many of each kind")


@operation(codes.NO_SUCH_REPOSITORY)
async def list_tags(request: web.Request, namespace: str, repo: str, query: PageQuery) -> Paged[shapes.TagList]:
    """The repository's tags with digest, size, who pushed them and when, last pull, platforms,
    signed state and scan summary (readers), by name (case-insensitive)."""
    found, nxt = await svc.list_tags(caller(request), namespace, repo, query.page_start, query.page_size)
    return Paged({"tags": found}, nxt)


@operation(codes.NO_SUCH_REPOSITORY, codes.NO_SUCH_TAG)
async def get_tag(request: web.Request, namespace: str, repo: str, tag: str) -> shapes.Tag:
    """One tag (readers)."""
    return await svc.get_tag(caller(request), namespace, repo, tag)


@operation(codes.NO_SUCH_REPOSITORY, codes.NO_SUCH_TAG, codes.FORBIDDEN, codes.INVALID_OPERATION, status=204)
async def delete_tag(request: web.Request, namespace: str, repo: str, tag: str) -> None:
    """Untag (read-write access; INVALID_OPERATION for an immutable tag). The manifest stays,
    by digest, until garbage collection."""
    await svc.delete_tag(caller(request), request.config_dict[REGISTRY], namespace, repo, tag)


@operation(codes.NO_SUCH_REPOSITORY, codes.NO_SUCH_TAG, codes.NO_SUCH_MANIFEST, codes.INVALID_PARAMETER,
           codes.NOT_FOUND, codes.UNSUPPORTED)
async def get_manifest(request: web.Request, namespace: str, repo: str, reference: str) -> shapes.ManifestDetail:
    """The manifest a tag or digest names: an image's config and its Dockerfile instruction by
    instruction with the layer each made, or an index's platforms with each image's detail
    (readers). NOT_FOUND: an image config missing from storage; UNSUPPORTED: one over 4 MiB."""
    return await manifests.get_manifest(caller(request), namespace, repo, reference)


@operation()
async def autocomplete(request: web.Request, query: SearchQuery) -> shapes.SearchResults:
    """Repositories and namespaces the caller may see, and accounts (site admins only), whose
    names start with ``query``."""
    return await search.autocomplete(caller(request), query.query, query.include_repositories,
                                     query.include_accounts, query.limit)


def register(app: web.Application) -> None:
    """The images routes of /api/v0."""
    add_all(app.router, (
        ("GET", "/repositories/{namespace}/{repo}/tags", list_tags),
        ("GET", "/repositories/{namespace}/{repo}/tags/{tag}", get_tag),
        ("DELETE", "/repositories/{namespace}/{repo}/tags/{tag}", delete_tag),
        ("GET", "/repositories/{namespace}/{repo}/manifests/{reference}", get_manifest),
        ("GET", "/index/autocomplete", autocomplete),
    ))

"""``/api/v0``: a repository's tags (``dtr.images.service``)."""

from __future__ import annotations

from aiohttp import web

from dtr.api.errors import codes
from dtr.api.operations import Paged, PageQuery, add_all, operation
from dtr.auth.api import principal
from dtr.images import service as svc
from dtr.keys import AUTH, DATABASE, REGISTRY
from dtr.signatures.access import Caller


def caller(request: web.Request) -> Caller:
    return Caller(request.config_dict[DATABASE].engine, principal(request), request.remote or "",
                  request.config_dict[AUTH])


@operation(codes.NO_SUCH_REPOSITORY)
async def list_tags(request: web.Request, namespace: str, repo: str, query: PageQuery) -> Paged[svc.TagList]:
    """The repository's tags with digest, media type, size, who pushed them and when (readers)."""
    rows = await svc.list_tags(caller(request), namespace, repo, query.page_start, query.page_size)
    nxt = rows[query.page_size].name if len(rows) > query.page_size else None
    return Paged({"tags": [svc.tag_json(r) for r in rows[:query.page_size]]}, nxt)


@operation(codes.NO_SUCH_REPOSITORY, codes.NO_SUCH_TAG)
async def get_tag(request: web.Request, namespace: str, repo: str, tag: str) -> svc.Tag:
    """One tag (readers)."""
    return svc.tag_json(await svc.get_tag(caller(request), namespace, repo, tag))


@operation(codes.NO_SUCH_REPOSITORY, codes.NO_SUCH_TAG, codes.INVALID_OPERATION, status=204)
async def delete_tag(request: web.Request, namespace: str, repo: str, tag: str) -> None:
    """Untag (read-write access; INVALID_OPERATION for an immutable tag). The manifest stays,
    by digest, until garbage collection."""
    await svc.delete_tag(caller(request), request.config_dict[REGISTRY], namespace, repo, tag)


def register(app: web.Application) -> None:
    """The tag routes of /api/v0."""
    add_all(app.router, (
        ("GET", "/repositories/{namespace}/{repo}/tags", list_tags),
        ("GET", "/repositories/{namespace}/{repo}/tags/{tag}", get_tag),
        ("DELETE", "/repositories/{namespace}/{repo}/tags/{tag}", delete_tag),
    ))

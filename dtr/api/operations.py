"""Typed ``/api/v0`` operations: a handler's annotations are its contract, for the request it parses,
the answer it renders and the OpenAPI document (``dtr.api.openapi``), so the three cannot drift.

    @operation(codes.INVALID_NAME, codes.CONFLICT, status=201)
    async def create_team(request: web.Request, org: str, body: NewTeam) -> Team:
        \"\"\"Create a team in the organisation.\"\"\"

- ``body: M`` (a ``Body`` model): the request body, parsed with ``dtr.text.loads`` (strict JSON,
  clean text) and validated by ``M`` (unknown fields refused); errors answer ``invalid`` (400).
- ``query: Q`` (a ``Query`` model): the query string, validated by ``Q``; unknown keys ignored.
- any other ``str`` parameter: the path parameter of that name (the route must have it).
- the return annotation: the JSON answer's type (a ``TypedDict`` or a list of them) sent with
  ``status``; ``None`` answers 204; ``Paged[T]`` adds ``X-Next-Page-Start``; a handler may also
  return a ``web.StreamResponse`` of its own when its annotation says so (a streamed answer, of
  the media types ``streams`` names: NDJSON unless told).
- positional ``raises``: the error codes the handler may answer besides ``EVERY_ROUTE``.

``add_all(router, routes)`` registers a table of ``(method, path, handler)`` and checks each
handler's path parameters against its path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import re
import types
import typing
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, Generic, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from dtr import text
from dtr.api.errors import APIError, codes
from dtr.api.http import json_response
from dtr.errors import ErrorCode

T = TypeVar("T")


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


#: A time in a body or query: ISO 8601, read as UTC when it names no zone (always aware).
Time = Annotated[dt.datetime, Field(strict=False, description="ISO 8601; UTC when it names no zone"),
                 AfterValidator(_as_utc)]


class Body(BaseModel):
    """A JSON request body: camelCase field names, unknown fields refused, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel, populate_by_name=False,
                              allow_inf_nan=False, frozen=True)


class Query(BaseModel):
    """A query string: camelCase keys, values coerced from text; keys it does not name are ignored."""

    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=False,
                              allow_inf_nan=False, frozen=True)


class PageQuery(Query):
    """Where a page of a list starts and how long it is (every list of /api/v0 pages so)."""

    page_start: str | None = Field(None, max_length=255, description="where the page starts: the "
                                   "X-Next-Page-Start of the previous page")
    page_size: int = Field(100, ge=1, le=1000, description="at most this many items")


@dataclasses.dataclass(frozen=True)
class Paged(Generic[T]):
    """One page of a list: ``body`` and the ``pageStart`` of the next page (None on the last)."""

    body: T
    next_start: str | None = None


@dataclasses.dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says of one handler (built from its annotations)."""

    name: str
    summary: str
    description: str
    body: type[Body] | None
    query: type[Query] | None
    path_params: tuple[str, ...]
    response: Any
    status: int
    paged: bool
    streamed: bool
    raises: tuple[ErrorCode, ...]
    #: The media types of a streamed answer.
    streams: tuple[str, ...] = ("application/x-ndjson",)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPERATION_KEY = "__dtr_operation__"
_PARAM = re.compile(r"\{([^}:]+)")
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
MAX_BODY = 1 << 20


def describe(handler: Callable[..., Any]) -> Operation | None:
    """The operation behind a registered handler, None for a plain aiohttp handler."""
    return getattr(handler, OPERATION_KEY, None)


def _unwrap(hint: Any) -> tuple[Any, bool, bool]:
    """(the JSON type, paged, streamed) of a return annotation."""
    streamed = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in typing.get_args(hint) if not (isinstance(a, type) and issubclass(a, web.StreamResponse))]
        streamed = len(rest) < len(typing.get_args(hint))
        hint = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
    if typing.get_origin(hint) is Paged:
        return typing.get_args(hint)[0], True, streamed
    return hint, False, streamed


def operation(*raises: ErrorCode, status: int = 200, invalid: ErrorCode = codes.INVALID_PARAMETER,
              streams: tuple[str, ...] = ("application/x-ndjson",)
              ) -> Callable[[Callable[..., Awaitable[Any]]], Handler]:
    """Make an aiohttp handler of a typed one (see the module's docstring)."""
    def wrap(fn: Callable[..., Awaitable[Any]]) -> Handler:
        hints = typing.get_type_hints(fn)
        params = [p for p in inspect.signature(fn).parameters if p != "request"]
        body_model = hints.get("body") if "body" in params else None
        query_model = hints.get("query") if "query" in params else None
        path_params = tuple(p for p in params if p not in ("body", "query"))
        response, paged, streamed = _unwrap(hints.get("return"))
        no_content = response is type(None)
        doc = inspect.getdoc(fn) or fn.__name__.replace("_", " ").capitalize() + "."
        op = Operation(name=to_camel(fn.__name__), summary=doc.split("\n\n")[0].replace("\n", " "),
                       description=doc, body=body_model, query=query_model, path_params=path_params,
                       response=None if no_content else response, status=204 if no_content else status,
                       paged=paged, streamed=streamed, raises=raises + _parsing(body_model, query_model, invalid),
                       streams=streams)

        async def handler(request: web.Request) -> web.StreamResponse:
            kwargs: dict[str, Any] = {p: request.match_info[p] for p in path_params}
            if body_model is not None:
                kwargs["body"] = _validate(body_model, await read_body(request), invalid)
            if query_model is not None:
                kwargs["query"] = _validate(query_model, dict(request.query), codes.INVALID_PARAMETER)
            result = await fn(request, **kwargs)
            if isinstance(result, web.StreamResponse):
                return result
            if no_content:
                return web.Response(status=204)
            if isinstance(result, Paged):
                headers = {"X-Next-Page-Start": result.next_start} if result.next_start is not None else None
                return json_response(result.body, op.status, headers)
            return json_response(result, op.status)

        handler.__name__, handler.__doc__ = fn.__name__, fn.__doc__
        setattr(handler, OPERATION_KEY, op)
        return handler

    return wrap


def _parsing(body: type[Body] | None, query: type[Query] | None, invalid: ErrorCode) -> tuple[ErrorCode, ...]:
    """The codes parsing a body (``read_body``, aiohttp's size limit, ``invalid``) or a query may answer."""
    found = (invalid, codes.INVALID_JSON, codes.BAD_REQUEST, codes.PAYLOAD_TOO_LARGE,
             codes.UNSUPPORTED_MEDIA_TYPE) if body is not None else ()
    return found + ((codes.INVALID_PARAMETER,) if query is not None else ())


def add_all(router: web.UrlDispatcher, routes: Iterable[tuple[str, str, Handler]]) -> None:
    """Register each ``(method, path, handler)`` of ``routes``: every handler an ``operation``
    whose path parameters are the path's (TypeError otherwise)."""
    for method, path, handler in routes:
        op = describe(handler)
        if op is None:
            raise TypeError(f"{handler.__name__} is not an operation")
        if set(_PARAM.findall(path)) != set(op.path_params):
            raise TypeError(f"{handler.__name__} takes {op.path_params} but {path} has {_PARAM.findall(path)}")
        router.add_route(method, path, handler)


async def read_body(request: web.Request) -> Any:
    """The request body as strict JSON (``dtr.text.loads``); no body at all is ``{}``.

    A ``Content-Encoding`` of gzip or deflate is decoded here, with the size limit applied to the
    decoded bytes; anything undecodable answers 400.
    """
    raw = await request.read()
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", ""):
        raw = _decode(raw, encoding)
    if not raw:
        return {}
    try:
        return text.loads(raw)
    except text.BadInput as e:
        raise APIError(codes.INVALID_JSON, f"the request body is not acceptable JSON: {e}") from None


def _decode(raw: bytes, encoding: str) -> bytes:
    wbits = _ENCODINGS.get(encoding)
    if wbits is None:
        raise APIError(codes.UNSUPPORTED_MEDIA_TYPE, f"Content-Encoding {encoding[:20]!r} is not supported "
                                                     f"(use gzip, deflate or none)")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, MAX_BODY + 1)
    except zlib.error:
        raise APIError(codes.BAD_REQUEST, f"the body is not valid {encoding} data") from None
    if len(out) > MAX_BODY:
        raise APIError(codes.PAYLOAD_TOO_LARGE, f"the decoded body is larger than {MAX_BODY} bytes")
    if not inflater.eof:
        raise APIError(codes.BAD_REQUEST, f"the {encoding} data is truncated")
    return out


def _validate(model: type[BaseModel], data: Any, invalid: ErrorCode) -> Any:
    if not isinstance(data, dict):
        raise APIError(invalid, "the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = [_problem(err) for err in e.errors(include_url=False, include_input=False)]
        raise APIError(invalid, "; ".join(problems), detail=problems) from None


def _problem(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "the body"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown field {where!r}"
    if kind == "missing":
        return f"{where} is required"
    return f"{where}: {err['msg'][0].lower() + err['msg'][1:]}"

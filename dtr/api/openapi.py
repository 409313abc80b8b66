"""``/api/v0/docs.json``: the OpenAPI 3 document of every /api/v0 route, built from the router.

Each operation's error responses are the codes its handler declared (``dtr.api.errors.raises``)
and those every route may answer, grouped by status, one example per code.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dtr.api.errors import EVERY_ROUTE, declared
from dtr.api.http import json_response
from dtr.errors import ErrorCode

_ERROR_SCHEMA = {"type": "object", "required": ["errors"], "properties": {"errors": {
    "type": "array", "items": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "detail": {}}}}}}


def error_responses(found: tuple[ErrorCode, ...]) -> dict[str, Any]:
    """OpenAPI responses for the codes ``found`` (and ``EVERY_ROUTE``), keyed by status."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in dict.fromkeys(found + EVERY_ROUTE):
        by_status.setdefault(code.status, []).append(code)
    return {str(status): {
        "description": "; ".join(f"{c.code}: {c.message}" for c in group),
        "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Errors"},
            "examples": {c.code: {"value": {"errors": [{"code": c.code, "message": c.message}]}}
                         for c in group}}}}
        for status, group in sorted(by_status.items())}


async def docs(request: web.Request) -> web.Response:
    """The OpenAPI 3 document of every /api/v0 route, built from the router."""
    paths: dict[str, dict[str, Any]] = {}
    for route in request.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "*"):
            continue
        doc = (route.handler.__doc__ or route.handler.__name__.replace("_", " ")).strip()
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in _path_params(path)]
        op: dict[str, Any] = {"summary": doc.splitlines()[0], "description": doc,
                              "operationId": f"{route.method.lower()}_{route.handler.__name__}",
                              "responses": {"200": {"description": "success"},
                                            **error_responses(declared(route.handler))}}
        if params:
            op["parameters"] = params
        paths.setdefault(path, {})[route.method.lower()] = op
    return json_response({
        "openapi": "3.0.3", "info": {"title": "dtr API", "version": "v0"},
        "components": {"securitySchemes": {"basic": {"type": "http", "scheme": "basic"},
                                           "bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": {"Errors": _ERROR_SCHEMA}},
        "security": [{"basic": []}, {"bearer": []}], "paths": dict(sorted(paths.items()))})


def _path_params(path: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in path:
        if ch == "{":
            depth, cur = depth + 1, ""
        elif ch == "}":
            depth -= 1
            out.append(cur.split(":")[0])
        elif depth:
            cur += ch
    return out

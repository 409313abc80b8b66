"""``/api/v0/docs.json``: the OpenAPI 3.1 document of every /api/v0 route, built from the router and
each handler's typed operation (``dtr.api.operations``): its summary, path and query parameters,
request body schema, success status and response schema, and the error codes it declared (with
those every route may answer), grouped by status, one example per code. Schemas are JSON Schema
2020-12 made by pydantic from the same models and TypedDicts the handlers use.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import TypeAdapter

from dtr.api.errors import EVERY_ROUTE, codes
from dtr.api.http import json_response
from dtr.api.operations import Operation, describe
from dtr.errors import ErrorCode

REF = "#/components/schemas/{model}"
_ERROR_SCHEMA = {"type": "object", "required": ["errors"], "properties": {"errors": {
    "type": "array", "items": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "detail": {}}}}}}
_NEXT_PAGE = {"X-Next-Page-Start": {"description": "the pageStart of the next page (absent on the last)",
                                    "schema": {"type": "string"}}}
_SECURITY = {"basic": {"type": "http", "scheme": "basic", "description": "a password or an access token"},
             "bearer": {"type": "http", "scheme": "bearer", "description": "a token from /auth/token"}}


#: What every operation may answer: ``EVERY_ROUTE``'s codes, and the 400 of the API's middleware for
#: a NUL or an unpaired surrogate in the path or query (``dtr.api.app``).
EVERY_OPERATION = (codes.INVALID_PARAMETER, *EVERY_ROUTE)


def error_responses(found: tuple[ErrorCode, ...]) -> dict[str, Any]:
    """OpenAPI responses for the codes ``found`` (and ``EVERY_OPERATION``), keyed by status."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in dict.fromkeys(found + EVERY_OPERATION):
        by_status.setdefault(code.status, []).append(code)
    return {str(status): {
        "description": "; ".join(f"{c.code}: {c.message}" for c in group),
        "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Errors"},
            "examples": {c.code: {"value": {"errors": [{"code": c.code, "message": c.message}]}}
                         for c in group}}}}
        for status, group in sorted(by_status.items())}


def document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s operations (routes that are no operation are left out)."""
    routes: list[tuple[str, str, Operation]] = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        op = describe(route.handler)
        if path and op is not None and route.method not in ("HEAD", "*"):
            routes.append((path, route.method.lower(), op))
    adapters: list[tuple[Any, Any, TypeAdapter[Any]]] = []
    for _, _, op in routes:
        if op.body is not None:
            adapters.append(((op.name, "body"), "validation", TypeAdapter(op.body)))
        if op.query is not None:
            adapters.append(((op.name, "query"), "validation", TypeAdapter(op.query)))
        if op.response is not None:
            adapters.append(((op.name, "response"), "serialization", TypeAdapter(op.response)))
    made, defs = TypeAdapter.json_schemas(adapters, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}
    for path, method, op in routes:
        if op.name in seen:
            raise ValueError(f"operation id {op.name} is used by {seen[op.name]} and {method} {path}")
        seen[op.name] = f"{method} {path}"
        schemas = {key[1]: schema for (key, _), schema in made.items() if key[0] == op.name}
        paths.setdefault(path, {})[method] = _operation(op, schemas, defs.get("$defs", {}))
    return {"openapi": "3.1.0",
            "info": {"title": "dtr API", "version": "v0",
                     "description": "The administration API of dtr. Every error answers "
                                    "{\"errors\": [{\"code\", \"message\", \"detail\"?}]}."},
            "components": {"securitySchemes": _SECURITY,
                           "schemas": {"Errors": _ERROR_SCHEMA, **defs.get("$defs", {})}},
            "security": [{"basic": []}, {"bearer": []}], "paths": dict(sorted(paths.items()))}


def _operation(op: Operation, schemas: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                                    for n in op.path_params]
    if "query" in schemas:
        query = _resolve(schemas["query"], defs)
        required = set(query.get("required", ()))
        for name, schema in query.get("properties", {}).items():
            doc = _present({k: v for k, v in schema.items() if k not in ("title", "description")})
            params.append({"name": name, "in": "query", "required": name in required, "schema": doc,
                           **({"description": schema["description"]} if "description" in schema else {})})
    success: dict[str, Any] = {"description": "success" if op.status != 202 else "accepted"}
    if "response" in schemas:
        success["content"] = {"application/json": {"schema": schemas["response"]}}
        if op.streamed:
            success["content"].update({media: {"schema": {"type": "string"}} for media in op.streams})
    if op.paged:
        success["headers"] = _NEXT_PAGE
    out: dict[str, Any] = {"operationId": op.name, "summary": op.summary, "description": op.description,
                           "responses": {str(op.status): success, **error_responses(op.raises)}}
    if params:
        out["parameters"] = params
    if "body" in schemas:
        # Without a body, a body of no required fields is {}.
        needed = op.body is not None and any(f.is_required() for f in op.body.model_fields.values())
        out["requestBody"] = {"required": needed, "content": {"application/json": {"schema": schemas["body"]}}}
    return out


def _present(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without its ``null`` alternative: a parameter absent is the null."""
    options = [o for o in schema.get("anyOf", ()) if o != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    if "anyOf" not in schema:
        return rest
    return {**options[0], **rest} if len(options) == 1 else {**rest, "anyOf": options}


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return defs[ref.rsplit("/", 1)[1]] if isinstance(ref, str) else schema


async def docs(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    return json_response(document(request.app))

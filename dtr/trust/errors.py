"""Notary's errors: ``{"errors":[{"code","message","detail"}]}`` with notary-server's codes and
statuses (``TrustError``); the update validation's failures carry the detail notary-server
sends (``{"Name": "ErrBadRoot", "Error": {"Msg": ...}}``)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web


@dataclasses.dataclass(frozen=True, slots=True)
class TrustCode:
    """One of notary-server's error codes: its name, HTTP status and message."""

    name: str
    status: int
    message: str


INVALID_UPDATE = TrustCode("INVALID_UPDATE", 400, "Update sent by the client is invalid.")
VERSION = TrustCode("VERSION", 400, "A newer version of metadata is already available.")
MALFORMED_UPLOAD = TrustCode("MALFORMED_UPLOAD", 400, "The body of your request is malformed.")
MALFORMED_JSON = TrustCode("MALFORMED_JSON", 400, "JSON sent by the client could not be parsed by the server")
INVALID_ROLE = TrustCode("INVALID_ROLE", 400, "The role you are attempting to operate on is invalid.")
NO_FILENAME = TrustCode("NO_FILENAME", 400, "No file was included in the update.")
INVALID_PARAMETERS = TrustCode("INVALID_PARAMETERS", 400, "The parameters provided are not valid.")
INVALID_GUN = TrustCode("INVALID_GUN", 400, "The Global Unique Name you have provided is invalid.")
METADATA_NOT_FOUND = TrustCode("METADATA_NOT_FOUND", 404, "You have requested metadata that does not exist.")
UNAUTHORIZED = TrustCode("UNAUTHORIZED", 401, "The client is not authorized to perform this request.")
UPDATING = TrustCode("UPDATING", 500, "An error has occurred while updating the TUF repository.")
UNKNOWN = TrustCode("UNKNOWN", 500, "Unknown error")

#: The ``Name`` values of an INVALID_UPDATE's detail (notary's validation error types).
BAD_ROOT = "ErrBadRoot"
BAD_TARGETS = "ErrBadTargets"
BAD_SNAPSHOT = "ErrBadSnapshot"
BAD_HIERARCHY = "ErrBadHierarchy"
VALIDATION = "ErrValidation"


class TrustError(Exception):
    """A refused trust request: ``code`` and a ``detail`` (any JSON value, or None)."""

    def __init__(self, code: TrustCode, detail: Any = None) -> None:
        super().__init__(f"{code.name}: {detail}" if detail is not None else code.name)
        self.code = code
        self.detail = detail

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        body = {"errors": [{"code": self.code.name, "message": self.code.message, "detail": self.detail}]}
        return web.Response(status=self.code.status, body=json.dumps(body).encode(),
                            content_type="application/json", headers=headers)


def invalid_update(name: str, message: str) -> TrustError:
    """notary-server's INVALID_UPDATE with a validation error of type ``name`` (``BAD_ROOT`` ...)."""
    return TrustError(INVALID_UPDATE, {"Name": name, "Error": {"Msg": message}})

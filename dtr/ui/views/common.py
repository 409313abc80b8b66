"""What the UI's page handlers share: the use cases' callers for the visitor, the access decision
for which controls a page shows, redirects, forms, and use-case errors as pages."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from dtr.accounts.context import Caller as AccountsCaller
from dtr.api.errors import APIError, codes
from dtr.auth.access import Action, decide
from dtr.jobs.caller import Caller as JobsCaller
from dtr.jobs.service import JobService
from dtr.keys import AUTH, CONFIG, DATABASE, REGISTRY, STORAGE
from dtr.scanning.access import Caller as ScanCaller
from dtr.signatures.trustedkeys import Caller as RepoCaller
from dtr.ui.render import error_page
from dtr.ui.security import visitor

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOGIN = "/ui/login"
HOME = "/ui/repositories"


def accounts_caller(request: web.Request) -> AccountsCaller:
    """The visitor as the accounts use cases (repositories, grants) take it."""
    cfg = request.config_dict[CONFIG]
    return AccountsCaller(request.config_dict[DATABASE].engine, visitor(request).principal, request.remote or "",
                          request.config_dict[AUTH], cfg.auth.min_password_length, cfg.scanning.scan_on_push)


def repo_caller(request: web.Request) -> RepoCaller:
    """The visitor as the image and signature use cases take it."""
    return RepoCaller(request.config_dict[DATABASE].engine, visitor(request).principal, request.remote or "",
                      request.config_dict[AUTH], request.config_dict[STORAGE])


def job_service(request: web.Request) -> JobService:
    """The job queue, for use cases that queue jobs."""
    cfg = request.config_dict[CONFIG]
    return JobService(request.config_dict[DATABASE].engine, cfg.jobs.stop_timeout, cfg.jobs.worker_timeout)


def scan_caller(request: web.Request) -> ScanCaller:
    """The visitor as the scanning use cases (reports, SBOMs, overrides, the vulnerability database) take it."""
    cfg = request.config_dict[CONFIG]
    return ScanCaller(request.config_dict[DATABASE].engine, visitor(request).principal, request.remote or "",
                      request.config_dict[AUTH], job_service(request), cfg.scanning, cfg.data_path,
                      request.config_dict[REGISTRY])


def jobs_caller(request: web.Request) -> JobsCaller:
    """The visitor as the jobs, schedules, workers and storage usage use cases take it (site admins)."""
    return JobsCaller(request.config_dict[DATABASE].engine, visitor(request).principal, request.remote or "",
                      job_service(request), request.config_dict[REGISTRY])


@dataclasses.dataclass(frozen=True)
class Abilities:
    """What the visitor may do to one repository (the access decision's answer): which controls show."""

    delete: bool
    admin: bool
    #: A site admin (pruning policies are theirs).
    site_admin: bool = False


async def abilities(request: web.Request, full_name: str) -> Abilities:
    auth = request.config_dict[AUTH]
    if auth is None:
        return Abilities(True, True, True)
    p = visitor(request).principal
    facts = await auth.repo_facts(p, full_name)
    return Abilities(decide(p, facts, Action.DELETE), decide(p, facts, Action.ADMIN), p.is_admin)


def redirect(location: str) -> web.Response:
    """303 See Other to ``location`` (after a form: the browser GETs it)."""
    return web.Response(status=303, headers={"Location": location})


def repo_url(full_name: str, tail: str = "") -> str:
    return f"/ui/repositories/{quote(full_name)}{tail}"


def with_query(path: str, **params: str | None) -> str:
    given = {k: v for k, v in params.items() if v}
    return f"{path}?{urlencode(given)}" if given else path


def signed_in(handler: Handler) -> Handler:
    """Only for a signed-in visitor: anyone else is sent to the login page (and back after it)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        v = visitor(request)
        if not v.signed_in:
            if request.method != "GET":
                return error_page(request, 401, "sign in first")
            return redirect(with_query(LOGIN, next=request.path_qs, expired="1" if v.expired else None))
        return await handler(request)

    return wrapper


def site_admin(handler: Handler) -> Handler:
    """Only for a signed-in site admin (403 for anyone else signed in); the use cases check again."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if not visitor(request).principal.is_admin:
            return error_page(request, 403, "this page is for site admins")
        return await handler(request)

    return signed_in(wrapper)


def refused(request: web.Request, e: APIError) -> web.StreamResponse:
    """A use case's refusal as a page (its status: 403, 404, ...); sign-in for an anonymous caller."""
    if e.code == codes.UNAUTHORIZED:
        return redirect(with_query(LOGIN, next=request.path_qs if request.method == "GET" else None))
    return error_page(request, e.status, e.message)


@dataclasses.dataclass
class Form:
    """A submitted form: what was typed (shown again when it fails) and errors by field."""

    values: dict[str, str]
    errors: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    async def read(cls, request: web.Request, *names: str) -> Form:
        data = await request.post()
        return cls({n: v if isinstance(v := data.get(n, ""), str) else "" for n in names})

    def text(self, name: str, label: str, *, required: bool = False, max_length: int = 0) -> str:
        """The field ``name`` stripped, its error noted when missing or too long."""
        value = self.values.get(name, "").strip()
        if required and not value:
            self.errors[name] = f"{label} is required"
        elif max_length and len(value) > max_length:
            self.errors[name] = f"{label} is at most {max_length} characters ({len(value)} given)"
        return value

    def multiline(self, name: str, label: str, max_length: int) -> str:
        """The textarea ``name`` with browser line ends (CRLF) made ``\\n``, its error noted when too long."""
        value = self.values.get(name, "").replace("\r\n", "\n")
        if len(value) > max_length:
            self.errors[name] = f"{label} is at most {max_length} characters ({len(value)} given)"
        return value

    def choice(self, name: str, label: str, allowed: tuple[str, ...]) -> str:
        value = self.values.get(name, "")
        if value not in allowed:
            self.errors[name] = f"{label} must be one of: {', '.join(allowed)}"
        return value

    def context(self) -> dict[str, Any]:
        return {"form": self.values, "errors": self.errors}

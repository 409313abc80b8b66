"""Administration of the directory (LDAP), for site admins: its settings (from ``auth.ldap`` in the
configuration; whether a bind password is set, never the password), "Test connection" of the
settings as typed (a bind as the service account and a search of its users: what a change of the
configuration would do, changing nothing), and "Sync now" (the ``ldap_sync`` job; its page).
Everything through ``dtr.accounts.ldapadmin``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from dtr.accounts import ldapadmin
from dtr.api.errors import APIError
from dtr.config import LDAPConfig
from dtr.keys import CONFIG
from dtr.sections import ConfigError
from dtr.ui.render import render
from dtr.ui.views.common import Form, accounts_caller, job_service, redirect, refused, site_admin

#: The yes/no settings (checkboxes).
_BOOLS = {f.name for f in dataclasses.fields(LDAPConfig) if f.type in ("bool", bool)}


def _configured(request: web.Request) -> LDAPConfig | None:
    return request.config_dict[CONFIG].auth.ldap


def _form(cfg: LDAPConfig | None) -> dict[str, str]:
    """The form filled with ``cfg`` (the defaults without one); never the password."""
    values = dataclasses.asdict(cfg) if cfg is not None else {
        f.name: f.default for f in dataclasses.fields(LDAPConfig) if f.default is not dataclasses.MISSING}
    out = {}
    for name in ldapadmin.FIELDS:
        value = values.get(name)
        out[name] = ("on" if value else "") if name in _BOOLS else ("" if value is None else str(value))
    return out


def _page(request: web.Request, form: Form, result: ldapadmin.TestResult | None = None,
          status: int = 200) -> web.Response:
    found = ldapadmin.settings(accounts_caller(request), _configured(request))
    return render(request, "admin_ldap.html", {
        "title": "LDAP", "tab": "ldap", "settings": found, "result": result, **form.context()}, status)


@site_admin
async def ldap_page(request: web.Request) -> web.StreamResponse:
    try:
        return _page(request, Form(_form(_configured(request))))
    except APIError as e:
        return refused(request, e)


@site_admin
async def test(request: web.Request) -> web.StreamResponse:
    """Test the typed settings (an empty bind password: the configured one); typed values are kept
    (never the password), a value that cannot work is shown beside its field."""
    form = await Form.read(request, *ldapadmin.FIELDS, "bind_password")
    password = form.values.pop("bind_password")
    typed: dict[str, Any] = {k: bool(v) if k in _BOOLS else v.strip() for k, v in form.values.items()}
    try:
        cfg = ldapadmin.candidate(_configured(request), typed, password)
    except ConfigError as e:
        key, _, message = str(e).partition(": ")
        field = key.removeprefix("ldap.")
        form.errors[field if field in ldapadmin.FIELDS else "_form"] = message or str(e)
        return _page(request, form, status=400)
    try:
        result = await ldapadmin.test_connection(accounts_caller(request), cfg)
    except APIError as e:
        return refused(request, e)
    return _page(request, form, result)


@site_admin
async def sync_now(request: web.Request) -> web.StreamResponse:
    """Queue the sync with the configured directory and go to its job's page."""
    try:
        job = await ldapadmin.queue_sync(accounts_caller(request), job_service(request), _configured(request))
    except APIError as e:
        return refused(request, e)
    return redirect(f"/ui/jobs/{job['id']}")


def register(app: web.Application) -> None:
    app.router.add_get("/admin/ldap", ldap_page)
    app.router.add_post("/admin/ldap/test", test)
    app.router.add_post("/admin/ldap/sync", sync_now)

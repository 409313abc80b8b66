"""Administration of the directory (LDAP), for site admins: its settings in effect (saved ones over
``auth.ldap`` of the configuration file; whether a bind password is set, never the password),
"Test connection" of the settings as typed (a bind as the service account and a search of its
users, changing nothing), "Save" (for every replica, as ``PUT /api/v0/meta/ldap``: an empty
password keeps the saved one), and "Sync now" (the ``ldap_sync`` job; its page).
Everything through ``dtr.accounts.ldapadmin``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from dtr.accounts import ldapadmin
from dtr.api.errors import APIError, codes
from dtr.config import LDAPConfig
from dtr.sections import ConfigError
from dtr.ui.render import render
from dtr.ui.views.common import Form, accounts_caller, job_service, redirect, refused, site_admin

#: The yes/no settings (checkboxes).
_BOOLS = {f.name for f in dataclasses.fields(LDAPConfig) if f.type in ("bool", bool)}


def _form(cfg: LDAPConfig | None) -> dict[str, str]:
    """The form filled with ``cfg`` (the defaults without one); never the password."""
    values = dataclasses.asdict(cfg) if cfg is not None else {
        f.name: f.default for f in dataclasses.fields(LDAPConfig) if f.default is not dataclasses.MISSING}
    out = {}
    for name in ldapadmin.FIELDS:
        value = values.get(name)
        out[name] = ("on" if value else "") if name in _BOOLS else ("" if value is None else str(value))
    return out


async def _page(request: web.Request, form: Form | None = None, result: ldapadmin.TestResult | None = None,
                status: int = 200) -> web.Response:
    """The page: ``form`` as typed, or (None) filled with the settings in effect."""
    found = await ldapadmin.settings(accounts_caller(request))
    form = form if form is not None else Form(_form(found.config))
    return render(request, "admin_ldap.html", {
        "title": "LDAP", "tab": "ldap", "settings": found, "result": result,
        "saved": bool(request.query.get("saved")), **form.context()}, status)


def _refuse(form: Form, e: APIError) -> None:
    """Show INVALID_PARAMETER ``e`` beside its field (``ldapadmin.invalid``)."""
    field = e.detail.get("field", "") if isinstance(e.detail, dict) else ""
    form.errors[field if field in ldapadmin.FIELDS else "_form"] = e.message.partition(": ")[2] or e.message


async def _typed(request: web.Request) -> tuple[Form, dict[str, Any], str]:
    """The form as posted, its values typed, and the bind password (popped: never shown again)."""
    form = await Form.read(request, *ldapadmin.FIELDS, "bind_password")
    password = form.values.pop("bind_password")
    return form, {k: bool(v) if k in _BOOLS else v.strip() for k, v in form.values.items()}, password


@site_admin
async def ldap_page(request: web.Request) -> web.StreamResponse:
    try:
        return await _page(request)
    except APIError as e:
        return refused(request, e)


@site_admin
async def test(request: web.Request) -> web.StreamResponse:
    """Test the typed settings (an empty bind password: the one in effect); typed values are kept
    (never the password), a value that cannot work is shown beside its field."""
    form, typed, password = await _typed(request)
    try:
        cfg = ldapadmin.candidate((await ldapadmin.settings(accounts_caller(request))).config, typed, password)
        result = await ldapadmin.test_connection(accounts_caller(request), cfg)
    except ConfigError as e:
        _refuse(form, ldapadmin.invalid(e))
        return await _page(request, form, status=400)
    except APIError as e:
        return refused(request, e)
    return await _page(request, form, result)


@site_admin
async def save(request: web.Request) -> web.StreamResponse:
    """Save the typed settings for every replica (an empty bind password keeps the saved one);
    on a refusal the typed values are kept (never the password), the problem beside its field."""
    form, typed, password = await _typed(request)
    try:
        await ldapadmin.save_settings(accounts_caller(request), typed, password)
    except APIError as e:
        if e.code != codes.INVALID_PARAMETER:
            return refused(request, e)
        _refuse(form, e)
        return await _page(request, form, status=400)
    return redirect("/ui/admin/ldap?saved=1")


@site_admin
async def sync_now(request: web.Request) -> web.StreamResponse:
    """Queue the sync with the directory in effect and go to its job's page."""
    try:
        job = await ldapadmin.queue_sync(accounts_caller(request), job_service(request))
    except APIError as e:
        return refused(request, e)
    return redirect(f"/ui/jobs/{job['id']}")


def register(app: web.Application) -> None:
    app.router.add_get("/admin/ldap", ldap_page)
    app.router.add_post("/admin/ldap/test", test)
    app.router.add_post("/admin/ldap/save", save)
    app.router.add_post("/admin/ldap/sync", sync_now)

"""Administration: the site settings (every field of ``/api/v0/meta/settings``, saved through the
same use case) and the vulnerability database (its status as ``GET /api/v0/imagescan/status``
shows it, an online update queued, an offline bundle imported), for site admins.

The settings form is made from the settings shape (``dtr.accounts.shapes.SettingsChanges``): each
field's title and description are its label and help text, so a new setting shows up by itself.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from dtr.accounts import usecases
from dtr.accounts.shapes import SettingsChanges
from dtr.api.errors import APIError, codes
from dtr.scanning import control
from dtr.scanning.views import spooled_upload
from dtr.ui.render import render
from dtr.ui.security import CSRF_HEADER
from dtr.ui.views.common import Form, accounts_caller, redirect, refused, scan_caller, site_admin

#: What a yes/no setting's select sends.
_BOOLS = {"true": True, "false": False}


def _fields() -> list[dict[str, Any]]:
    """Each setting: its API name (the form field), label, help text and kind."""
    out = []
    for name, f in SettingsChanges.model_fields.items():
        alias = f.alias or name
        out.append({"name": alias, "label": f.title or alias, "help": f.description or "",
                    "kind": "bool" if "bool" in str(f.annotation) else "text"})
    return out


def _as_form(values: dict[str, Any]) -> dict[str, str]:
    return {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in values.items()}


def _settings_page(request: web.Request, form: Form, saved: bool = False, status: int = 200) -> web.Response:
    return render(request, "admin_settings.html", {
        "title": "Settings", "tab": "settings", "fields": _fields(), "saved": saved, **form.context()}, status)


@site_admin
async def admin_home(request: web.Request) -> web.StreamResponse:
    return redirect("/ui/admin/settings")


@site_admin
async def settings_form(request: web.Request) -> web.StreamResponse:
    try:
        values = await usecases.get_settings(accounts_caller(request))
    except APIError as e:
        return refused(request, e)
    return _settings_page(request, Form(_as_form(values)), bool(request.query.get("saved")))


@site_admin
async def save_settings(request: web.Request) -> web.StreamResponse:
    """Checked as the API checks a body (the settings shape), then saved by its use case."""
    fields = _fields()
    form = await Form.read(request, *(f["name"] for f in fields))
    typed: dict[str, Any] = {}
    for f in fields:
        value = form.values[f["name"]]
        if f["kind"] == "bool" and value not in _BOOLS:
            form.errors[f["name"]] = f"{f['label']} must be yes or no"
        typed[f["name"]] = _BOOLS.get(value, value) if f["kind"] == "bool" else value
    if not form.errors:
        try:
            body = SettingsChanges.model_validate(typed)
            await usecases.update_settings(accounts_caller(request), body.model_dump(by_alias=True))
        except ValidationError as e:
            for err in e.errors():
                form.errors[str(err["loc"][0]) if err["loc"] else "_form"] = err["msg"]
        except APIError as e:
            if e.code not in (codes.INVALID_PARAMETER, codes.INVALID_OPERATION):
                return refused(request, e)
            form.errors["_form"] = e.message
        else:
            return redirect("/ui/admin/settings?saved=1")
    return _settings_page(request, form, status=400)


def _scanning_page(request: web.Request, status_: dict[str, Any], *, error: str = "", imported: bool = False,
                   code: int = 200) -> web.Response:
    return render(request, "admin_scanning.html", {
        "title": "Vulnerability database", "tab": "scanning", "status": status_, "error": error,
        "imported": imported}, code)


@site_admin
async def scanning_page(request: web.Request) -> web.StreamResponse:
    try:
        found = await control.status(scan_caller(request))
    except APIError as e:
        return refused(request, e)
    return _scanning_page(request, dict(found))


@site_admin
async def update_now(request: web.Request) -> web.StreamResponse:
    """Queue the online update (one waiting at a time) and go to its job's page."""
    try:
        job = await control.queue_update(scan_caller(request))
    except APIError as e:
        return refused(request, e)
    return redirect(f"/ui/jobs/{job['id']}")


@site_admin
async def upload(request: web.Request) -> web.StreamResponse:
    """Import an offline bundle (multipart field ``upload``), spooled to disk as the API does; a
    refused bundle is shown as its reason (the database is then unchanged)."""
    c = scan_caller(request)
    if CSRF_HEADER not in request.headers:  # a plain form post: the CSRF check has read the body already
        return _scanning_page(request, dict(await control.status(c)), code=400, error=(
            "uploading a bundle needs JavaScript in this page (or use dtr vulndb import, or PUT "
            "/api/v0/imagescan/scan/update)"))
    try:
        async with spooled_upload(request, c.data_path) as path:
            found = await control.import_upload(c, path)
    except APIError as e:
        if e.code == codes.FORBIDDEN:
            return refused(request, e)
        return _scanning_page(request, dict(await control.status(c)), error=e.message, code=400)
    return _scanning_page(request, dict(found), imported=True)


def register(app: web.Application) -> None:
    app.router.add_get("/admin", admin_home)
    app.router.add_get("/admin/settings", settings_form)
    app.router.add_post("/admin/settings", save_settings)
    app.router.add_get("/admin/scanning", scanning_page)
    app.router.add_post("/admin/scanning/update", update_now)
    app.router.add_post("/admin/scanning/upload", upload)

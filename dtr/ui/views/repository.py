"""One repository: its tags (paged, with the ``docker pull`` command), deleting a tag, and the
settings tab (visibility, immutability, scan on push, descriptions) for its admins.

Controls show only when the access decision allows them (``abilities``); the actions call the
use cases, which decide again: a forged request is refused whatever the page showed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dtr.accounts import repositories as repos
from dtr.api.errors import APIError, codes
from dtr.images import service as images
from dtr.keys import REGISTRY
from dtr.ui.render import error_page, render
from dtr.ui.views.common import (
    Form,
    abilities,
    accounts_caller,
    redirect,
    refused,
    repo_caller,
    repo_url,
    signed_in,
    with_query,
)

TAGS_PAGE = 50


def _names(request: web.Request) -> tuple[str, str]:
    return request.match_info["ns"], request.match_info["repo"]


@signed_in
async def page(request: web.Request) -> web.StreamResponse:
    ns, name = _names(request)
    start = request.query.get("start", "")[:256] or None
    try:
        row, _ = await repos.get_repository(accounts_caller(request), ns, name)
        tags, after = await images.list_tags(repo_caller(request), ns, name, start, TAGS_PAGE)
    except APIError as e:
        return refused(request, e)
    following = with_query(repo_url(row.name), start=after) if after else None
    return render(request, "repository.html", {
        "title": row.name, "repo": row, "tags": tags, "can": await abilities(request, row.name),
        "next_url": following, "start": start, "tab": "tags", "deleted": request.query.get("deleted", "")[:128]})


@signed_in
async def delete_tag(request: web.Request) -> web.StreamResponse:
    ns, name = _names(request)
    tag = request.match_info["tag"]
    try:
        await images.delete_tag(repo_caller(request), request.config_dict[REGISTRY], ns, name, tag)
    except APIError as e:
        if e.code == codes.INVALID_OPERATION:  # an immutable tag
            return error_page(request, 409, e.message)
        return refused(request, e)
    return redirect(with_query(repo_url(f"{ns}/{name}"), deleted=tag))


async def _admin_repo(request: web.Request) -> tuple[Any, web.StreamResponse | None]:
    ns, name = _names(request)
    try:
        row, _ = await repos.get_repository(accounts_caller(request), ns, name)
    except APIError as e:
        return None, refused(request, e)
    if not (await abilities(request, row.name)).admin:
        return row, refused(request, APIError(codes.FORBIDDEN, f"the settings of {row.name} need admin access"))
    return row, None


def _settings_form(row: Any) -> dict[str, str]:
    """The settings form filled with the repository's current settings."""
    return {"visibility": row.visibility or "private", "immutable_tags": "on" if row.immutable_tags else "",
            "scan_on_push": "on" if row.scan_on_push else "", "short_description": row.short_description or "",
            "long_description": row.long_description or ""}


@signed_in
async def settings_form(request: web.Request) -> web.StreamResponse:
    row, refusal = await _admin_repo(request)
    if refusal is not None:
        return refusal
    return render(request, "repository_settings.html", {
        "title": f"Settings of {row.name}", "repo": row, "tab": "settings",
        "can": await abilities(request, row.name), "form": _settings_form(row), "errors": {},
        "saved": bool(request.query.get("saved"))})


@signed_in
async def save_settings(request: web.Request) -> web.StreamResponse:
    """Save through the JSON API's update use case (it checks admin access itself)."""
    ns, name = _names(request)
    form = await Form.read(request, "visibility", "immutable_tags", "scan_on_push", "short_description",
                           "long_description")
    visibility = form.choice("visibility", "Visibility", repos.VISIBILITIES)
    short = form.text("short_description", "Short description", max_length=140)
    long = form.multiline("long_description", "Description", 100_000)
    if not form.errors:
        change = repos.RepoChanges(visibility, short, long, immutable_tags=bool(form.values["immutable_tags"]),
                                   scan_on_push=bool(form.values["scan_on_push"]))
        try:
            row, _ = await repos.update_repository(accounts_caller(request), ns, name, change)
        except APIError as e:
            if e.code != codes.INVALID_PARAMETER:
                return refused(request, e)
            form.errors["visibility"] = e.message
        else:
            return redirect(repo_url(row.name, "/settings?saved=1"))
    try:
        row, _ = await repos.get_repository(accounts_caller(request), ns, name)
    except APIError as e:
        return refused(request, e)
    return render(request, "repository_settings.html", {
        "title": f"Settings of {row.name}", "repo": row, "tab": "settings", "saved": False,
        "can": await abilities(request, row.name), **form.context()}, 400)


def register(app: web.Application) -> None:
    app.router.add_get("/repositories/{ns}/{repo}", page)
    app.router.add_post("/repositories/{ns}/{repo}/tags/{tag}/delete", delete_tag)
    app.router.add_get("/repositories/{ns}/{repo}/settings", settings_form)
    app.router.add_post("/repositories/{ns}/{repo}/settings", save_settings)

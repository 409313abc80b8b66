"""Administration of organisations, for site admins: the list (search, paged by name) with create,
delete after typing the organisation's name, an organisation's teams (create, delete) and a team's
members (add, remove). Everything through the use cases ``/api/v0/accounts`` calls
(``dtr.accounts.usecases``, ``dtr.accounts.orgs``), which check access themselves.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from dtr.accounts import orgs, usecases
from dtr.api.errors import APIError, codes
from dtr.ui.render import render
from dtr.ui.views.common import Form, accounts_caller, redirect, refused, site_admin, with_query

PAGE_SIZE = 50
LIST = "/ui/admin/orgs"
#: Which form field a refusal of a create is about.
_FIELD = {codes.INVALID_NAME: "name", codes.CONFLICT: "name", codes.INVALID_PARAMETER: "name"}


def org_url(org: str, tail: str = "") -> str:
    return f"{LIST}/{quote(org)}{tail}"


def team_url(org: str, team: str, tail: str = "") -> str:
    return org_url(org, f"/teams/{quote(team)}{tail}")


async def _list(request: web.Request, form: Form, status: int = 200) -> web.StreamResponse:
    q = request.query.get("q", "").strip()[:255]
    start = request.query.get("start", "")[:255] or None
    try:
        rows = await usecases.list_accounts(accounts_caller(request), "orgs", start, PAGE_SIZE, q)
    except APIError as e:
        return refused(request, e)
    following = with_query(LIST, q=q, start=rows[PAGE_SIZE].name) if len(rows) > PAGE_SIZE else None
    return render(request, "admin_orgs.html", {
        "title": "Organisations", "tab": "orgs", "rows": rows[:PAGE_SIZE], "q": q, "next_url": following,
        "first_url": with_query(LIST, q=q) if start else None, "deleted": request.query.get("deleted", "")[:255],
        **form.context()}, status)


@site_admin
async def list_page(request: web.Request) -> web.StreamResponse:
    return await _list(request, Form({"name": "", "full_name": ""}))


@site_admin
async def create(request: web.Request) -> web.StreamResponse:
    form = await Form.read(request, "name", "full_name")
    name = form.text("name", "Name", required=True, max_length=255)
    full_name = form.text("full_name", "Full name", max_length=255)
    if not form.errors:
        try:
            row = await usecases.create_account(accounts_caller(request),
                                                usecases.NewAccount(name=name, is_org=True, full_name=full_name))
        except APIError as e:
            if (field := _FIELD.get(e.code)) is None:
                return refused(request, e)
            form.errors[field] = e.message
        else:
            return redirect(org_url(row.name))
    return await _list(request, form, 400)


async def _org_page(request: web.Request, form: Form, status: int = 200) -> web.StreamResponse:
    try:
        org, teams = await orgs.list_teams(accounts_caller(request), request.match_info["org"])
    except APIError as e:
        return refused(request, e)
    return render(request, "admin_org.html", {
        "title": org.name, "tab": "orgs", "org": org, "teams": teams,
        "deleted": request.query.get("deleted", "")[:255], **form.context()}, status)


@site_admin
async def org_page(request: web.Request) -> web.StreamResponse:
    return await _org_page(request, Form({"name": "", "description": ""}))


@site_admin
async def delete_form(request: web.Request) -> web.StreamResponse:
    try:
        org, _ = await orgs.list_teams(accounts_caller(request), request.match_info["org"])
    except APIError as e:
        return refused(request, e)
    return render(request, "admin_org_delete.html", {"title": f"Delete {org.name}", "tab": "orgs", "org": org,
                                                      "form": {"confirm": ""}, "errors": {}})


@site_admin
async def delete(request: web.Request) -> web.StreamResponse:
    """Delete the organisation once its name was typed (its namespace must hold no repositories)."""
    name = request.match_info["org"]
    form = await Form.read(request, "confirm")
    if form.values["confirm"].strip() != name:
        form.errors["confirm"] = f"type {name} to delete it"
    else:
        try:
            await usecases.delete_account(accounts_caller(request), name)
        except APIError as e:
            if e.code != codes.CONFLICT:
                return refused(request, e)
            form.errors["confirm"] = e.message
        else:
            return redirect(with_query(LIST, deleted=name))
    try:
        org = await usecases.get_account(accounts_caller(request), name)
    except APIError as e:
        return refused(request, e)
    return render(request, "admin_org_delete.html", {"title": f"Delete {name}", "tab": "orgs", "org": org,
                                                      **form.context()}, 400)


@site_admin
async def create_team(request: web.Request) -> web.StreamResponse:
    org = request.match_info["org"]
    form = await Form.read(request, "name", "description")
    name = form.text("name", "Name", required=True, max_length=255)
    description = form.text("description", "Description", max_length=255)
    if not form.errors:
        try:
            _, row = await orgs.create_team(accounts_caller(request), org, name, description)
        except APIError as e:
            if (field := _FIELD.get(e.code)) is None:
                return refused(request, e)
            form.errors[field] = e.message
        else:
            return redirect(team_url(org, row.name))
    return await _org_page(request, form, 400)


@site_admin
async def delete_team(request: web.Request) -> web.StreamResponse:
    org, team = request.match_info["org"], request.match_info["team"]
    try:
        await orgs.delete_team(accounts_caller(request), org, team)
    except APIError as e:
        return refused(request, e)
    return redirect(with_query(org_url(org), deleted=team))


async def _team_page(request: web.Request, form: Form, status: int = 200) -> web.StreamResponse:
    c = accounts_caller(request)
    try:
        org, team = await orgs.get_team(c, request.match_info["org"], request.match_info["team"])
        members = await orgs.list_team_members(c, org.name, team.name)
    except APIError as e:
        return refused(request, e)
    return render(request, "admin_team.html", {
        "title": f"{org.name} / {team.name}", "tab": "orgs", "org": org, "team": team, "members": members,
        "removed": request.query.get("removed", "")[:255], **form.context()}, status)


@site_admin
async def team_page(request: web.Request) -> web.StreamResponse:
    return await _team_page(request, Form({"member": ""}))


@site_admin
async def add_member(request: web.Request) -> web.StreamResponse:
    org, team = request.match_info["org"], request.match_info["team"]
    form = await Form.read(request, "member")
    member = form.text("member", "User", required=True, max_length=255)
    if not form.errors:
        try:
            await orgs.set_team_member(accounts_caller(request), org, team, member, False)
        except APIError as e:
            if e.code != codes.NO_SUCH_ACCOUNT:  # a missing organisation: the team page below says so
                return refused(request, e)
            form.errors["member"] = e.message
        else:
            return redirect(team_url(org, team))
    return await _team_page(request, form, 400)


@site_admin
async def remove_member(request: web.Request) -> web.StreamResponse:
    org, team, member = request.match_info["org"], request.match_info["team"], request.match_info["member"]
    try:
        await orgs.remove_team_member(accounts_caller(request), org, team, member)
    except APIError as e:
        return refused(request, e)
    return redirect(with_query(team_url(org, team), removed=member))


def register(app: web.Application) -> None:
    app.router.add_get("/admin/orgs", list_page)
    app.router.add_post("/admin/orgs", create)
    app.router.add_get("/admin/orgs/{org}", org_page)
    app.router.add_get("/admin/orgs/{org}/delete", delete_form)
    app.router.add_post("/admin/orgs/{org}/delete", delete)
    app.router.add_post("/admin/orgs/{org}/teams", create_team)
    app.router.add_get("/admin/orgs/{org}/teams/{team}", team_page)
    app.router.add_post("/admin/orgs/{org}/teams/{team}/delete", delete_team)
    app.router.add_post("/admin/orgs/{org}/teams/{team}/members", add_member)
    app.router.add_post("/admin/orgs/{org}/teams/{team}/members/{member}/remove", remove_member)

"""The Access tab of an organisation's repository (its admins): the teams granted access and
their level; grant, change, revoke. The same use cases as ``/api/v0/repositories/NS/REPO/teamAccess``
(``dtr.accounts.repositories``), which check admin access themselves."""

from __future__ import annotations

from aiohttp import web

from dtr.accounts import orgs
from dtr.accounts import repositories as repos
from dtr.api.errors import APIError, codes
from dtr.auth.access import Level
from dtr.ui.render import render
from dtr.ui.views.common import Form, accounts_caller, redirect, refused, repo_url, with_query
from dtr.ui.views.repo_tabs import names, open_tab, tab_handler

LEVELS = ("read-only", "read-write", "admin")


async def _show(request: web.Request, form: Form, status: int = 200) -> web.StreamResponse:
    ctx = await open_tab(request, "access", "Access", admin=True)
    grants: list[object] = []
    teams: list[str] = []
    if ctx["namespace_type"] == "organization":
        ns, name = names(request)
        try:
            _, _, grants = await repos.list_repo_team_access(accounts_caller(request), ns, name)
        except APIError as e:
            return refused(request, e)
        try:  # the organisation's teams, to pick from (its members may list them)
            _, rows = await orgs.list_teams(accounts_caller(request), ns)
            teams = [t.name for t in rows]
        except APIError:
            teams = []
    return render(request, "repository_access.html", {
        **ctx, "grants": grants, "teams": teams, "levels": LEVELS, **form.context(),
        "done": request.query.get("done", "")[:300]}, status)


@tab_handler
async def page(request: web.Request) -> web.StreamResponse:
    return await _show(request, Form({"level": "read-only"}))


@tab_handler
async def grant(request: web.Request) -> web.StreamResponse:
    """Grant a team a level, or change its level (the team field names it)."""
    ns, name = names(request)
    form = await Form.read(request, "team", "level")
    team = form.text("team", "Team", required=True, max_length=255)
    level = form.choice("level", "Access level", LEVELS)
    if not form.errors:
        try:
            await repos.set_repo_team_access(accounts_caller(request), ns, name, team, Level.parse(level))
        except APIError as e:
            if e.code != codes.NO_SUCH_TEAM:
                return refused(request, e)
            form.errors["team"] = e.message
        else:
            return redirect(with_query(repo_url(f"{ns}/{name}", "/access"), done=f"{team} has {level} access"))
    return await _show(request, form, 400)


@tab_handler
async def revoke(request: web.Request) -> web.StreamResponse:
    ns, name = names(request)
    team = request.match_info["team"]
    try:
        await repos.remove_repo_team_access(accounts_caller(request), ns, name, team)
    except APIError as e:
        return refused(request, e)
    return redirect(with_query(repo_url(f"{ns}/{name}", "/access"), done=f"{team} has no access now"))


def register(app: web.Application) -> None:
    app.router.add_get("/repositories/{ns}/{repo}/access", page)
    app.router.add_post("/repositories/{ns}/{repo}/access", grant)
    app.router.add_post("/repositories/{ns}/{repo}/access/{team}/revoke", revoke)

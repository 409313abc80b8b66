"""Repositories: the list (search, namespace filter, paged by name), create, delete (after a
confirmation naming the repository). The list is the JSON API's listing
(``dtr.accounts.repositories.list_repositories``): a keyset page of the repositories the visitor
may read, so its cost does not grow with the number of repositories."""

from __future__ import annotations

from aiohttp import web

from dtr.accounts import repositories as repos
from dtr.api.errors import APIError, codes
from dtr.ui.render import render
from dtr.ui.security import visitor
from dtr.ui.views.common import Form, abilities, accounts_caller, redirect, refused, repo_url, signed_in, with_query

PAGE_SIZE = 50
#: Which form field a use case's refusal is about.
_FIELD = {codes.INVALID_NAME: "name", codes.CONFLICT: "name", codes.NO_SUCH_ACCOUNT: "namespace",
          codes.FORBIDDEN: "namespace", codes.INVALID_PARAMETER: "visibility"}


@signed_in
async def list_page(request: web.Request) -> web.StreamResponse:
    q = request.query.get("q", "").strip()[:255]
    namespace = request.query.get("namespace", "").strip()[:255]
    start = request.query.get("start", "")[:512] or None
    rows, _ = await repos.list_repositories(accounts_caller(request), namespace or None, start, PAGE_SIZE, q)
    following = None
    if len(rows) > PAGE_SIZE:
        following = with_query("/ui/repositories", q=q, namespace=namespace, start=rows[PAGE_SIZE].name)
    return render(request, "repositories.html", {
        "title": "Repositories", "rows": rows[:PAGE_SIZE], "q": q, "namespace": namespace, "start": start,
        "next_url": following, "first_url": with_query("/ui/repositories", q=q, namespace=namespace) if start else None,
        "deleted": request.query.get("deleted", "")[:300]})


@signed_in
async def new_form(request: web.Request) -> web.StreamResponse:
    defaults = {"namespace": request.query.get("namespace") or visitor(request).principal.name or "", "name": "",
                "visibility": "private", "short_description": "", "long_description": ""}
    return render(request, "repository_new.html", {"title": "New repository", "form": defaults, "errors": {}})


@signed_in
async def create(request: web.Request) -> web.StreamResponse:
    form = await Form.read(request, "namespace", "name", "visibility", "short_description", "long_description")
    namespace = form.text("namespace", "Namespace", required=True, max_length=255)
    name = form.text("name", "Name", required=True, max_length=255)
    visibility = form.choice("visibility", "Visibility", repos.VISIBILITIES)
    short = form.text("short_description", "Short description", max_length=140)
    long = form.multiline("long_description", "Description", 100_000)
    if not form.errors:
        try:
            row, _ = await repos.create_repository(accounts_caller(request), namespace, name,
                                                   repos.RepoChanges(visibility, short, long))
        except APIError as e:
            field = _FIELD.get(e.code)
            if field is None:
                return refused(request, e)
            form.errors[field] = e.message
        else:
            return redirect(repo_url(row.name))
    return render(request, "repository_new.html", {"title": "New repository", **form.context()}, 400)


async def _deletable(request: web.Request) -> tuple[str, web.StreamResponse | None]:
    """The repository's full name, and a refusal page unless the visitor may delete it."""
    ns, name = request.match_info["ns"], request.match_info["repo"]
    try:
        row, _ = await repos.get_repository(accounts_caller(request), ns, name)
    except APIError as e:
        return f"{ns}/{name}", refused(request, e)
    if not (await abilities(request, row.name)).admin:
        return row.name, refused(request, APIError(codes.FORBIDDEN, f"deleting {row.name} needs admin access"))
    return row.name, None


@signed_in
async def delete_form(request: web.Request) -> web.StreamResponse:
    full, refusal = await _deletable(request)
    if refusal is not None:
        return refusal
    return render(request, "repository_delete.html", {"title": f"Delete {full}", "full_name": full,
                                                       "form": {"confirm": ""}, "errors": {}})


@signed_in
async def delete(request: web.Request) -> web.StreamResponse:
    """Delete after the visitor typed the repository's name; the use case checks admin access
    again, whatever the form said."""
    ns, name = request.match_info["ns"], request.match_info["repo"]
    full = f"{ns}/{name}"
    form = await Form.read(request, "confirm")
    if form.values["confirm"].strip() != full:
        form.errors["confirm"] = f"type {full} to confirm"
        return render(request, "repository_delete.html", {"title": f"Delete {full}", "full_name": full,
                                                           **form.context()}, 400)
    try:
        await repos.delete_repository(accounts_caller(request), ns, name)
    except APIError as e:
        return refused(request, e)
    return redirect(with_query("/ui/repositories", deleted=full))


def register(app: web.Application) -> None:
    app.router.add_get("/repositories", list_page)
    app.router.add_get("/repositories/new", new_form)
    app.router.add_post("/repositories/new", create)
    app.router.add_get("/repositories/{ns}/{repo}/delete", delete_form)
    app.router.add_post("/repositories/{ns}/{repo}/delete", delete)

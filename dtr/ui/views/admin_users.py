"""Administration of users, for site admins: the list (search, admins only, paged by name), create,
and one user's page: activate or deactivate (deactivating ends their sessions and the use of their
tokens), make or unmake site admin, reset the password. Everything through the accounts use cases
``/api/v0/accounts`` calls (``dtr.accounts.usecases``), which check site admin access themselves.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from dtr.accounts import usecases
from dtr.api.errors import APIError, codes
from dtr.ui.render import error_page, render
from dtr.ui.views.common import Form, accounts_caller, redirect, refused, site_admin, with_query

PAGE_SIZE = 50
LIST = "/ui/admin/users"
#: Which form field a refusal of ``create_account`` is about.
_FIELD = {codes.INVALID_NAME: "name", codes.CONFLICT: "name", codes.INVALID_PASSWORD: "password",
          codes.INVALID_PARAMETER: "name"}


def user_url(name: str, tail: str = "") -> str:
    return f"{LIST}/{quote(name)}{tail}"


@site_admin
async def list_page(request: web.Request) -> web.StreamResponse:
    q = request.query.get("q", "").strip()[:255]
    admins = request.query.get("admins") == "1"
    start = request.query.get("start", "")[:255] or None
    try:
        rows = await usecases.list_accounts(accounts_caller(request), "admins" if admins else "users", start,
                                            PAGE_SIZE, q)
    except APIError as e:
        return refused(request, e)
    following = None
    if len(rows) > PAGE_SIZE:
        following = with_query(LIST, q=q, admins="1" if admins else None, start=rows[PAGE_SIZE].name)
    return render(request, "admin_users.html", {
        "title": "Users", "tab": "users", "rows": rows[:PAGE_SIZE], "q": q, "admins": admins,
        "next_url": following, "first_url": with_query(LIST, q=q, admins="1" if admins else None) if start else None})


def _new_page(request: web.Request, form: Form, status: int = 200) -> web.Response:
    return render(request, "admin_user_new.html", {"title": "New user", "tab": "users", **form.context()}, status)


@site_admin
async def new_form(request: web.Request) -> web.StreamResponse:
    return _new_page(request, Form({"name": "", "full_name": "", "is_admin": ""}))


@site_admin
async def create(request: web.Request) -> web.StreamResponse:
    form = await Form.read(request, "name", "password", "full_name", "is_admin")
    name = form.text("name", "Name", required=True, max_length=255)
    full_name = form.text("full_name", "Full name", max_length=255)
    password = form.values["password"]
    if not password:
        form.errors["password"] = "Password is required"
    if not form.errors:
        new = usecases.NewAccount(name=name, full_name=full_name, password=password,
                                  is_admin=bool(form.values["is_admin"]))
        try:
            row = await usecases.create_account(accounts_caller(request), new)
        except APIError as e:
            field = _FIELD.get(e.code)
            if field is None:
                return refused(request, e)
            form.errors[field] = e.message
        else:
            return redirect(user_url(row.name, "?done=created"))
    form.values.pop("password")  # never sent back
    return _new_page(request, form, 400)


#: What a user page says after an action (``?done=``).
_DONE = {"created": "User created.", "activated": "Activated: the user may log in.",
         "deactivated": "Deactivated: their sessions ended and they may not log in or use their tokens.",
         "admin": "Now a site admin.", "not-admin": "No longer a site admin.", "password": "Password reset."}


async def _user_page(request: web.Request, form: Form, status: int = 200) -> web.StreamResponse:
    try:
        row = await usecases.get_account(accounts_caller(request), request.match_info["name"])
    except APIError as e:
        return refused(request, e)
    if row.is_org:
        return error_page(request, 404, f"{row.name} is an organisation")
    return render(request, "admin_user.html", {
        "title": row.name, "tab": "users", "account": row, "done": _DONE.get(request.query.get("done", ""), ""),
        **form.context()}, status)


@site_admin
async def user_page(request: web.Request) -> web.StreamResponse:
    return await _user_page(request, Form({}))


async def _change(request: web.Request, changes: usecases.AccountChanges, done: str) -> web.StreamResponse:
    name = request.match_info["name"]
    try:
        await usecases.update_account(accounts_caller(request), name, changes)
    except APIError as e:
        return refused(request, e)
    return redirect(user_url(name, f"?done={done}"))


@site_admin
async def set_active(request: web.Request) -> web.StreamResponse:
    active = (await Form.read(request, "active")).values["active"] == "true"
    return await _change(request, usecases.AccountChanges(is_active=active), "activated" if active else "deactivated")


@site_admin
async def set_admin(request: web.Request) -> web.StreamResponse:
    admin = (await Form.read(request, "admin")).values["admin"] == "true"
    return await _change(request, usecases.AccountChanges(is_admin=admin), "admin" if admin else "not-admin")


@site_admin
async def reset_password(request: web.Request) -> web.StreamResponse:
    """A new password for the user (their sessions and bearer tokens end with the old one)."""
    name = request.match_info["name"]
    form = await Form.read(request, "new_password")
    password = form.values["new_password"]
    if not password:
        form.errors["new_password"] = "New password is required"
    else:
        try:
            await usecases.change_password(accounts_caller(request), name, password)
        except APIError as e:
            if e.code not in (codes.INVALID_PASSWORD, codes.INVALID_OPERATION):
                return refused(request, e)
            form.errors["new_password"] = e.message
        else:
            return redirect(user_url(name, "?done=password"))
    form.values.clear()  # never sent back
    return await _user_page(request, form, 400)


def register(app: web.Application) -> None:
    app.router.add_get("/admin/users", list_page)
    app.router.add_get("/admin/new-user", new_form)
    app.router.add_post("/admin/new-user", create)
    app.router.add_get("/admin/users/{name}", user_page)
    app.router.add_post("/admin/users/{name}/active", set_active)
    app.router.add_post("/admin/users/{name}/admin", set_admin)
    app.router.add_post("/admin/users/{name}/password", reset_password)

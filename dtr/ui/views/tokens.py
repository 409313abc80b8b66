"""The visitor's own personal access tokens: the list (label, created, last used, expiry), create
(the token is on the answer to the creating POST only, never again: only its hash is kept), revoke.
All through the accounts use cases of ``/api/v0/api_tokens`` (``dtr.accounts.usecases``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dtr.accounts import usecases
from dtr.api.errors import APIError, codes
from dtr.ui.render import render
from dtr.ui.views.common import Form, accounts_caller, redirect, refused, signed_in, with_query

#: The most tokens one page lists (the use case pages them; a user rarely has more).
PAGE_SIZE = 100
PATH = "/ui/tokens"


async def _page(request: web.Request, form: Form, created: dict[str, Any] | None = None,
                status: int = 200) -> web.StreamResponse:
    try:
        user, rows = await usecases.list_tokens(accounts_caller(request), None, 0, PAGE_SIZE)
    except APIError as e:
        return refused(request, e)
    return render(request, "tokens.html", {
        "title": "My access tokens", "owner": user, "rows": rows[:PAGE_SIZE], "created": created,
        "revoked": request.query.get("revoked", "")[:255], **form.context()}, status)


@signed_in
async def list_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, Form({"label": ""}))


@signed_in
async def create(request: web.Request) -> web.StreamResponse:
    """Create a token and show it, this once (the answer is not a redirect: reloading it shows nothing
    new, the browser asks before posting again and the page is never cached)."""
    form = await Form.read(request, "label")
    label = form.text("label", "Label", required=True, max_length=255)
    if not form.errors:
        try:
            _, row, token = await usecases.create_token(accounts_caller(request), None, label, None)
        except APIError as e:
            if e.code not in (codes.INVALID_PARAMETER, codes.FORBIDDEN):
                return refused(request, e)
            form.errors["label"] = e.message
        else:
            return await _page(request, Form({"label": ""}), {"label": row.label, "token": token}, 201)
    return await _page(request, form, status=400)


@signed_in
async def revoke(request: web.Request) -> web.StreamResponse:
    try:
        _, row = await usecases.get_token(accounts_caller(request), None, request.match_info["hash"])
        await usecases.delete_token(accounts_caller(request), None, row.token_hash)
    except APIError as e:
        return refused(request, e)
    return redirect(with_query(PATH, revoked=row.label or "(no label)"))


def register(app: web.Application) -> None:
    app.router.add_get("/tokens", list_page)
    app.router.add_post("/tokens", create)
    app.router.add_post("/tokens/{hash}/revoke", revoke)

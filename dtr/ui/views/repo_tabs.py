"""What the repository tabs beyond tags and settings share: opening the repository for a tab
(the header's context), and the error of a form field from a use case's refusal.

A tab's page opens the repository with the visitor's own access (a repository it may not read is
a 404) and shows its admin controls only when the access decision allows them; every action then
calls its use case, which checks access again (a forged request is refused whatever the page showed).
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from dtr.accounts import repositories as repos
from dtr.api.errors import APIError, codes
from dtr.ui.views.common import Handler, abilities, accounts_caller, refused, signed_in


class Refused(Exception):
    """The page to answer instead (a use case's refusal)."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


def names(request: web.Request) -> tuple[str, str]:
    return request.match_info["ns"], request.match_info["repo"]


async def open_tab(request: web.Request, tab: str, title: str, *, admin: bool = False,
                   site_admin: bool = False) -> dict[str, Any]:
    """The context of tab ``tab`` (``repo``, ``can``, ``tab``, ``title``); Refused when the visitor
    may not read the repository, or lacks the admin (``admin``) or site admin (``site_admin``)
    access the tab needs."""
    ns, name = names(request)
    try:
        row, ns_type = await repos.get_repository(accounts_caller(request), ns, name)
    except APIError as e:
        raise Refused(refused(request, e)) from None
    can = await abilities(request, row.name)
    if (admin and not can.admin) or (site_admin and not can.site_admin):
        who = "site admin" if site_admin else "admin"
        raise Refused(refused(request, APIError(codes.FORBIDDEN, f"the {tab} of {row.name} need {who} access")))
    return {"title": f"{title} of {row.name}", "repo": row, "can": can, "tab": tab, "namespace_type": ns_type}


def tab_handler(handler: Handler) -> Handler:
    """A tab's handler: for a signed-in visitor (``signed_in``), a Refused answered with its page."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refused as r:
            return r.response

    return signed_in(wrapper)

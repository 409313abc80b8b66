"""The shape of the ``/v2/`` route table (``dtr.registry.views.ROUTES`` is the table).

Each ``Route`` names its path pattern (the part after ``/v2/``), its handler, the access each of
its methods needs (a token scope's type and action, the name taken from the path) and its
metrics area. One ``RouteTable.match`` per request finds the entry; dispatch, the token check
(``dtr.auth.middleware.registry_auth``) and the request metrics all read that one entry and
match, so no path reaches a handler under another rule than its own. A path in no entry is
nobody's (404); adding an endpoint is adding an entry.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence

from aiohttp import web

#: A route's handler: (request, repository name, reference); both "" on routes without them.
Handler = Callable[[web.Request, str, str], Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True, slots=True)
class Access:
    """What a method needs, in the terms of distribution's token scopes (``type:name:actions``).

    ``name`` None: the repository named by the path (the match's first group).
    """

    type: str
    action: str
    name: str | None = None

    @property
    def scope_actions(self) -> str:
        """The actions a challenge asks for: pushing asks ``pull,push``, as clients expect."""
        return "pull,push" if self.action == "push" else self.action


PULL = Access("repository", "pull")
PUSH = Access("repository", "push")
DELETE = Access("repository", "delete")
CATALOG = Access("registry", "*", "catalog")
#: Everything on the repository: on a GUN (the trust routes), deleting its trust data or
#: rotating a server key (``dtr.auth`` gives it to repository admins).
EVERYTHING = Access("repository", "*")


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """One endpoint. ``methods`` maps each allowed method to the access it needs (None: any valid
    token, anonymous included; only the base endpoint). A pattern with groups has the
    repository name as group 1 and the reference as group 2; one without has neither.
    ``mounts``: the endpoint takes ``?mount=&from=`` (cross-repository mounts). ``gun``: group 1
    is a GUN (registry host and repository, ``dtr.trust``), which the handler checks, not the
    repository name grammar; token scopes name the whole GUN."""

    path: str
    handler: Handler
    methods: Mapping[str, Access | None]
    area: str
    mounts: bool = False
    gun: bool = False
    pattern: re.Pattern[str] = dataclasses.field(init=False)
    allow: str = dataclasses.field(init=False)
    repository: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        pattern = re.compile(self.path, re.DOTALL)
        if pattern.groups not in (0, 2):
            raise ValueError(f"{self.path}: a route pattern has no groups or two (name, reference)")
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(self, "allow", ", ".join(sorted(self.methods)))
        object.__setattr__(self, "repository", pattern.groups == 2)


def resource(access: Access, m: re.Match[str]) -> str:
    """The name ``access`` is about: its own, or the repository the path names."""
    return access.name if access.name is not None else m.group(1)


class RouteTable:
    """The routes in match order: the first whose pattern matches the whole tail takes it."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)

    def match(self, tail: str) -> tuple[Route, re.Match[str]] | None:
        """The route for ``tail`` (the path after ``/v2/``) and its match, or None."""
        for route in self.routes:
            m = route.pattern.fullmatch(tail)
            if m is not None:
                return route, m
        return None


#: Calls the matched route's handler for a request (``dispatch``), as ``Gate`` is given it.
Dispatch = Callable[[web.Request, Route, re.Match[str]], Awaitable[web.StreamResponse]]
#: What every /v2 request passes through before dispatch (auth's token check, installed by the
#: app): it calls ``dispatch`` or raises the challenge / denial.
Gate = Callable[[web.Request, Route, re.Match[str], Dispatch], Awaitable[web.StreamResponse]]

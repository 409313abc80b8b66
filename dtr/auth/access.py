"""The access decision: one pure function from (principal, repository facts, action) to allow/deny.

DTR's model: levels ``read-only`` (browse, pull) < ``read-write`` (+ push, delete tags) < ``admin``
(+ description, visibility, access management, delete the repository). A principal's level on a
repository is the highest of: site admin (everything), owner of the user namespace, owner of the
organisation, team grants on the repository and on the whole namespace, and read-only on public
repositories (for everyone, anonymous included). Inactive users get what anonymous gets.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Literal


class Level(enum.IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2
    ADMIN = 3

    @property
    def api_name(self) -> str:
        return _NAMES[self]

    @classmethod
    def parse(cls, name: str) -> Level:
        """``read-only`` | ``read-write`` | ``admin``; ValueError otherwise."""
        for level, api in _NAMES.items():
            if api == name and level is not Level.NONE:
                return level
        raise ValueError(f"unknown access level {name!r}; allowed: read-only, read-write, admin")


_NAMES = {Level.NONE: "none", Level.READ: "read-only", Level.WRITE: "read-write", Level.ADMIN: "admin"}


class Action(enum.StrEnum):
    PULL = "pull"      # browse, pull
    PUSH = "push"      # push (creates the repository when createRepositoryOnPush allows it)
    DELETE = "delete"  # delete tags and manifests
    ADMIN = "admin"    # description, visibility, access management, delete the repository
    CREATE = "create"  # create the repository explicitly (API)


#: The level each action needs on an existing repository.
REQUIRED = {Action.PULL: Level.READ, Action.PUSH: Level.WRITE, Action.DELETE: Level.WRITE,
            Action.ADMIN: Level.ADMIN}


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who asks: ``name`` None is anonymous. ``id`` is the account id (0 when anonymous).
    ``by_token``: authenticated with a personal access token (directly, or through a bearer
    token obtained with one), which may not create tokens or change passwords. ``token_id``: that
    token's id, when known (a login with it, or a refresh token issued to one): a refresh token
    dies with its access token."""

    name: str | None = None
    id: int = 0
    is_admin: bool = False
    is_active: bool = True
    by_token: bool = False
    token_id: int = 0

    @property
    def authenticated(self) -> bool:
        return self.name is not None and self.is_active


ANONYMOUS = Principal()


@dataclasses.dataclass(frozen=True)
class RepoFacts:
    """What the decision needs to know about a repository and the principal's grants on it."""

    name: str
    namespace: str
    #: The kind of the account the namespace belongs to (``none``: no such account).
    namespace_kind: Literal["user", "org", "none"]
    exists: bool = False
    public: bool = False
    #: The principal owns the namespace's organisation.
    org_owner: bool = False
    #: The highest of the principal's team grants on this repository and on its namespace.
    team_level: Level = Level.NONE
    #: The highest of the principal's namespace-wide team grants (what creating needs).
    namespace_team_level: Level = Level.NONE
    #: The ``createRepositoryOnPush`` setting.
    create_on_push: bool = False


def effective_level(p: Principal, r: RepoFacts) -> Level:
    """The principal's level on the repository (as if it existed, for one not yet created)."""
    public = Level.READ if r.exists and r.public else Level.NONE
    if not p.authenticated:
        return public
    if p.is_admin:
        return Level.ADMIN
    if r.namespace_kind == "user" and r.namespace == p.name:
        return Level.ADMIN
    if r.namespace_kind == "org" and r.org_owner:
        return Level.ADMIN
    if r.namespace_kind == "org":
        return max(public, r.team_level)
    return public


def may_create(p: Principal, r: RepoFacts) -> bool:
    """Whether the principal may create repositories in the namespace."""
    if not p.authenticated:
        return False
    if p.is_admin:
        return True
    if r.namespace_kind == "user":
        return r.namespace == p.name
    if r.namespace_kind == "org":
        return r.org_owner or r.namespace_team_level >= Level.WRITE
    return False


def decide(p: Principal, r: RepoFacts, action: Action) -> bool:
    """Allow or deny ``action`` on the repository ``r`` for ``p``."""
    if not r.exists:
        if action is Action.CREATE:
            return may_create(p, r)
        if action is Action.PUSH:
            return r.create_on_push and may_create(p, r)
        if action is Action.PULL:
            return effective_level(p, r) >= Level.READ
        return False
    if action is Action.CREATE:
        return False
    return effective_level(p, r) >= REQUIRED[action]


def token_actions(p: Principal, r: RepoFacts, trust: bool = False) -> set[str]:
    """The actions of a ``repository`` token scope on ``r`` that ``p`` may have: ``pull``,
    ``push``, ``delete``, and ``*`` when all three. ``trust``: the scope names a GUN (the
    repository's Notary data, ``dtr.trust``): ``pull`` and ``push`` as for the repository, ``*``
    (deleting the trust data, rotating server keys) needs admin level on it."""
    if trust:
        can = {a.value for a in (Action.PULL, Action.PUSH) if decide(p, r, a)}
        if p.authenticated and effective_level(p, r) >= Level.ADMIN:
            can.add("*")
        return can
    can = {a.value for a in (Action.PULL, Action.PUSH, Action.DELETE) if decide(p, r, a)}
    return can | {"*"} if can == {"pull", "push", "delete"} else can


def explain(p: Principal, r: RepoFacts, action: Action) -> str:
    """Why ``decide`` denied ``action``: a sentence for the client's error message."""
    who = f"user {p.name}" if p.name else "anonymous users"
    if p.name and not p.is_active:
        return f"the account {p.name} is inactive"
    if not r.exists and action is Action.PUSH:
        if not r.create_on_push:
            return (f"repository {r.name} does not exist and createRepositoryOnPush is off: "
                    f"create it first (POST /api/v0/repositories/{r.namespace or '<namespace>'})")
        return f"{who} may not create repositories in namespace {r.namespace or '(none)'}"
    if not r.exists:
        return f"repository {r.name} does not exist"
    level = effective_level(p, r)
    need = REQUIRED.get(action, Level.ADMIN)  # ADMIN: also a trust scope's "*"
    verb = "has" if p.name else "have"
    return f"{who} {verb} {level.api_name} access to {r.name}; {action} needs {need.api_name}"

"""The JSON of ``/api/v0`` for accounts, teams, repositories, grants, tokens, settings and events, in
DTR's shapes: request bodies and queries as ``dtr.api.operations`` models (unknown fields refused),
answers as TypedDicts the render functions return. The OpenAPI document is made from these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict

from dtr.api.operations import Body, PageQuery, Query, Time

#: What an account's or a team's name must match (``service.check_name`` checks it, answering INVALID_NAME).
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9._-]{0,253}[a-z0-9])?$"
Name = Annotated[str, Field(max_length=255)]
NewName = Annotated[str, Field(max_length=255, json_schema_extra={"pattern": NAME_PATTERN})]
Short = Annotated[str, Field(max_length=255)]
AccessLevel = Literal["read-only", "read-write", "admin"]

# -- answers -------------------------------------------------------------------------------------


class Account(TypedDict):
    id: int
    name: str
    fullName: str
    isOrg: bool
    isAdmin: bool
    isActive: bool
    isImported: bool
    createdAt: str | None
    email: NotRequired[str]


class AuthOff(TypedDict):
    """What ``/accounts/me`` says when authentication is disabled."""

    name: str
    isAdmin: bool
    isOrg: bool
    isActive: bool
    authDisabled: bool


class AccountList(TypedDict):
    accounts: list[Account]


class Member(TypedDict):
    member: Account
    isAdmin: bool


class MemberList(TypedDict):
    members: list[Member]


class Team(TypedDict):
    id: int
    orgID: int
    orgName: str
    name: str
    description: str
    type: str


class TeamList(TypedDict):
    teams: list[Team]


class SyncConfig(TypedDict):
    enableSync: bool
    selectGroupMembers: bool
    groupDN: str
    groupMemberAttr: str
    searchFilter: str


class Repository(TypedDict):
    id: int
    namespace: str
    namespaceType: str
    name: str
    fullName: str
    shortDescription: str
    longDescription: str
    visibility: str
    immutableTags: bool
    #: DTR's scanOnPush: each push of a tag queues a scan of its image.
    scanOnPush: bool
    status: str
    createdAt: str | None


class RepositoryList(TypedDict):
    repositories: list[Repository]


class Grant(TypedDict):
    accessLevel: str
    team: Team


class RepositoryAccess(TypedDict):
    repository: Repository
    teamAccessList: list[Grant]


class NamespaceAccess(TypedDict):
    namespace: Account
    teamAccessList: list[Grant]


class RepositoryGrant(TypedDict):
    accessLevel: str
    team: Team
    repository: Repository


class NamespaceGrant(TypedDict):
    accessLevel: str
    team: Team
    namespace: Account


class Token(TypedDict):
    hashedToken: str
    tokenLabel: str
    isActive: bool
    creationTime: str | None
    lastUsed: str | None
    expiresAt: str | None
    generatedBy: str


class NewTokenAnswer(Token):
    """A new token: ``token`` is the secret, shown this once."""

    token: str


class TokenList(TypedDict):
    apiTokens: list[Token]


class Settings(TypedDict):
    createRepositoryOnPush: bool


class EventObject(TypedDict):
    type: str
    name: str


class Event(TypedDict):
    id: int
    type: str
    createdAt: str | None
    actor: str
    clientAddress: str
    object: EventObject
    detail: dict[str, Any]


class EventList(TypedDict):
    events: list[Event]


# -- requests ------------------------------------------------------------------------------------


class NewAccount(Body):
    """A user (with ``password``) or an organisation (``isOrg: true``)."""

    name: NewName
    is_org: bool = False
    full_name: Short = ""
    email: Short = ""
    password: str | None = Field(None, max_length=1024)
    is_admin: bool = False
    is_active: bool = True


class AccountChanges(Body):
    full_name: Short | None = None
    email: Short | None = None
    is_admin: bool | None = None
    is_active: bool | None = None


class PasswordChange(Body):
    new_password: Annotated[str, Field(max_length=1024)]
    old_password: Annotated[str, Field(max_length=1024)] = ""


class Membership(Body):
    is_admin: bool = False


class NewTeam(Body):
    name: NewName
    description: Short = ""


class TeamChanges(Body):
    description: Short | None = None


class SyncConfigChanges(Body):
    enable_sync: bool = False
    select_group_members: bool = True
    group_dn: Annotated[str, Field(alias="groupDN", max_length=1000)] = ""
    group_member_attr: Annotated[str, Field(max_length=255)] = "member"
    search_filter: Annotated[str, Field(max_length=1000)] = ""


class RepositoryFields(Body):
    visibility: Literal["public", "private"] | None = None
    short_description: str | None = Field(None, max_length=140)
    long_description: str | None = Field(None, max_length=100_000)
    immutable_tags: bool | None = None
    scan_on_push: bool | None = None


class NewRepository(RepositoryFields):
    name: Name


class AccessLevelChange(Body):
    access_level: AccessLevel


class NewToken(Body):
    token_label: Short = ""
    expires_at: Time | None = None


class TokenChanges(Body):
    token_label: Short | None = None
    is_active: bool | None = None


class SettingsChanges(Body):
    """The site settings to change (the web UI's settings form shows each field, its title and description)."""

    create_repository_on_push: bool | None = Field(
        None, title="Create repositories on push",
        description="A push to a repository that does not exist creates it, when the pusher may "
                    "create repositories in its namespace; otherwise such a push is refused.")


# -- queries -------------------------------------------------------------------------------------


class AccountsQuery(PageQuery):
    filter: Literal["all", "users", "orgs", "admins"] = "all"


class TokenOwner(Query):
    username: str | None = Field(None, max_length=255, description="whose tokens (site admins); the caller's "
                                 "by default")


class TokensQuery(PageQuery, TokenOwner):
    pass


class EventsQuery(PageQuery):
    actor: Name | None = None
    type: Short | None = None
    object_name: str | None = Field(None, alias="object", max_length=512)
    published_after: Time | None = None
    published_before: Time | None = None

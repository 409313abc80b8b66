"""The JSON of ``/api/v0`` mirroring policies, in DTR's shapes (``pushMirroringPolicies``,
``pollMirroringPolicies``): request bodies as ``dtr.api.operations`` models (types and bounds),
answers as TypedDicts. What a rule, a host or a template means is ``dtr.mirroring.policies``'s to say.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from typing_extensions import TypedDict

from dtr.api.operations import Body
from dtr.jobs.pruning import MAX_RULES
from dtr.jobs.shapes import PruningRule, RuleSpec

# -- answers --------------------------------------------------------------------------------------


class CredentialsInfo(TypedDict):
    """What is stored: the username, and only whether a password or a token is."""

    username: str | None
    hasPassword: bool
    hasToken: bool


class LastStatus(TypedDict):
    """The last run: ``code`` SUCCESS, FAILED or RETRYING (failed, another attempt follows);
    ``detail``: the tags mirrored or the error; ``at``, ``job``: when, and the job."""

    code: str
    detail: str
    at: str | None
    job: str | None


class MirroringPolicy(TypedDict):
    id: str
    direction: str
    repository: str
    remoteHost: str
    remoteRepository: str
    remoteCredentials: CredentialsInfo
    remoteCA: str | None
    enabled: bool
    rules: list[PruningRule]
    #: Push policies: the remote tag (``%n``: the local tag's name).
    tagTemplate: str | None
    #: Poll policies: when to poll (six-field cron), None: every poll tick.
    schedule: str | None
    lastStatus: LastStatus | None


PolicyList = list[MirroringPolicy]


# -- bodies ---------------------------------------------------------------------------------------


class CredentialsSpec(Body):
    """A username and password; or a token (with a username: an access token used as the
    password; alone: a Bearer token sent as it is)."""

    username: str | None = Field(None, max_length=255)
    password: str | None = Field(None, max_length=4096)
    token: str | None = Field(None, max_length=8192)


class _PolicySpec(Body):
    remote_host: str = Field(max_length=512, description="https://host[:port] (http:// for plain HTTP)")
    remote_repository: str = Field(max_length=255, description="namespace/name on the remote")
    remote_credentials: CredentialsSpec | None = Field(None, description="omitted on an update: kept as stored")
    remote_ca: str | None = Field(None, max_length=65536, alias="remoteCA",
                                  description="PEM certificates the remote's TLS must chain to")
    enabled: bool = True
    rules: Annotated[list[RuleSpec], Field(max_length=MAX_RULES)] = []
    id: str | None = Field(None, max_length=64, description="ignored (a policy read may be sent back)")


class PushPolicySpec(_PolicySpec):
    """Tags pushed here that match every rule are pushed to the remote repository."""

    tag_template: str = Field("%n", max_length=128, description="the remote tag: %n is the local tag's name")


class PollPolicySpec(_PolicySpec):
    """The remote repository's tags that match every rule are fetched here when they change."""

    schedule: str | None = Field(None, max_length=255, description="six-field cron; null: every poll tick")

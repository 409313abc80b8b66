"""The JSON of ``/api/v0`` promotion policies, in DTR's shapes: the request body as a
``dtr.api.operations`` model (types and bounds; what a rule or template means is
``dtr.promotion.rules``'), answers as TypedDicts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from typing_extensions import TypedDict

from dtr.api.operations import Body
from dtr.promotion.rules import MAX_PATTERN, MAX_RULES, MAX_TEMPLATE, MAX_VALUE, MAX_VALUES


class PromotionRule(TypedDict):
    field: str
    operator: str
    values: list[str]


class PromotionPolicy(TypedDict):
    id: str
    sourceRepository: str
    targetRepository: str
    tagTemplate: str
    enabled: bool
    rules: list[PromotionRule]
    createdAt: str | None
    updatedAt: str | None
    #: The last promotion: when, of which source tag, to which target tag (null: none yet).
    lastPromotedAt: str | None
    lastSourceTag: str | None
    lastTargetTag: str | None
    #: The last failed promotion (null once one succeeds after it).
    lastError: str | None
    lastErrorAt: str | None


#: A repository's promotion policies, oldest first.
PolicyList = list[PromotionPolicy]


class RunStarted(TypedDict):
    """The ``promote`` job queued by a run (``GET /jobs/{jobID}`` follows it)."""

    jobID: str


class PromotionRuleSpec(Body):
    field: Annotated[str, Field(max_length=64, description="tag, vulnerability_all, vulnerability_critical, "
                                "vulnerability_major, vulnerability_minor, component_name or license_name")]
    operator: Annotated[str, Field(max_length=16, description="tag: eq, neq, sw, ew, c, oneof, noneof, matches; "
                                   "vulnerability_*: gte, gt, lte, lt, eq; component_name, license_name: eq, c, "
                                   "oneof, noneof")]
    values: Annotated[list[Annotated[str, Field(max_length=max(MAX_VALUE, MAX_PATTERN))]],
                      Field(max_length=MAX_VALUES)] = []


class PromotionPolicySpec(Body):
    """An image of the repository meeting every rule is promoted to ``targetRepository`` as the tag
    ``tagTemplate`` makes."""

    rules: Annotated[list[PromotionRuleSpec], Field(max_length=MAX_RULES)]
    target_repository: Annotated[str, Field(max_length=255, description="namespace/name")]
    tag_template: Annotated[str, Field(max_length=MAX_TEMPLATE, description="%n the tag, %A date and time, "
                                       "%D date, %T time, %y %m %d %H %M %S, %% (UTC)")] = "%n"
    enabled: bool = True
    id: str | None = Field(None, max_length=64, description="ignored (a policy read may be sent back)")

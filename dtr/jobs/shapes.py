"""The JSON of ``/api/v0`` for jobs, schedules, workers, storage usage and tag pruning, in DTR's
shapes: request bodies and queries as ``dtr.api.operations`` models (types, bounds, unknown fields
refused), answers as the TypedDicts the use cases return. The OpenAPI document is made from these.

The models check types and bounds only; what an action, a schedule or a pruning rule means (and
whether it is valid) is the domain's to say (``dtr.jobs.actions``, ``schedule``, ``pruning``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from typing_extensions import TypedDict

from dtr.api.operations import Body, PageQuery, Query
from dtr.jobs.pruning import MAX_RULES

#: The longest ``deadline`` of a job attempt (30 days) and ``stopTimeout`` (1 hour), in seconds.
MAX_DEADLINE = 30 * 86400.0
MAX_STOP_TIMEOUT = 3600.0
#: The most retries of a job, and the largest tag limit and keepNewest.
MAX_RETRIES = 100
MAX_TAGS = 1_000_000
#: The most values in a pruning rule.
MAX_VALUES = 1000

Short = Annotated[str, Field(max_length=255)]

# -- answers -------------------------------------------------------------------------------------


class Job(TypedDict):
    id: str
    action: str
    parameters: dict[str, Any]
    status: str
    workerID: str
    attempt: int
    retries: int
    runAfter: str | None
    deadline: float | None
    stopTimeout: float
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    cron: str | None
    scheduledAt: str | None
    createdAt: str | None
    startTime: str | None
    endTime: str | None


class JobList(TypedDict):
    jobs: list[Job]


class JobLogLine(TypedDict):
    lineNum: int
    time: str | None
    data: str


#: A job's log lines, oldest first.
JobLogList = list[JobLogLine]


class JobProgress(TypedDict):
    """A followed job's progress changed (in the NDJSON stream of ``?follow=true``)."""

    progress: dict[str, Any] | None


class JobEnded(TypedDict):
    """The last item of a followed job's stream: the job as it ended."""

    job: Job


class Cron(TypedDict):
    action: str
    schedule: str
    parameters: dict[str, Any]
    enabled: bool
    retries: int
    deadline: float | None
    stopTimeout: float
    nextRun: str | None
    lastJobID: str | None


class CronList(TypedDict):
    crons: list[Cron]


class Worker(TypedDict):
    id: str
    status: str
    host: str
    pid: int
    capacityMap: dict[str, int]
    runningJobs: int
    startTime: str | None
    heartbeat: str | None
    heartbeatExpiration: str | None


class WorkerList(TypedDict):
    workers: list[Worker]


class Usage(TypedDict):
    """Storage a namespace or repository uses (``uniqueBytes``: what deleting it would free)."""

    name: str
    bytes: int
    uniqueBytes: int
    blobs: int
    manifests: int
    updatedAt: str | None


class NamespaceUsageList(TypedDict):
    namespaces: list[Usage]


class RepositoryUsageList(TypedDict):
    repositories: list[Usage]


class PruningRule(TypedDict):
    field: str
    operator: str
    values: list[str]


class PruningPolicy(TypedDict):
    id: str
    enabled: bool
    rules: list[PruningRule]
    keepNewest: int | None


#: A repository's pruning policies, oldest first.
PolicyList = list[PruningPolicy]


class PruningSettings(TypedDict):
    tagLimit: int | None
    immutableTags: bool


class PrunedTag(TypedDict):
    name: str
    reason: str
    lastUpdatedAt: str


class WouldPrune(TypedDict):
    """What would be pruned now (nothing while ``immutableTags``)."""

    immutableTags: bool
    tags: list[PrunedTag]


# -- requests ------------------------------------------------------------------------------------

Parameters = Annotated[dict[str, Any] | None, Field(description="the action's parameters (see docs/jobs.md)")]


class RunOptions(Body):
    """How a job runs; absent: the action's or the configuration's default."""

    retries: int | None = Field(None, ge=0, le=MAX_RETRIES, description="attempts after the first")
    deadline: float | None = Field(None, gt=0, le=MAX_DEADLINE, description="seconds an attempt may run")
    stop_timeout: float | None = Field(None, gt=0, le=MAX_STOP_TIMEOUT, description="seconds a job gets to stop "
                                       "by itself (cancel, shutdown, deadline) before it is cut off")


class NewJob(RunOptions):
    action: Annotated[str, Field(max_length=64)]
    parameters: Parameters = None


class CronChanges(RunOptions):
    """A schedule: six cron fields, seconds first, or ``@every 15m``, ``@daily``..."""

    schedule: Short
    parameters: Parameters = None
    enabled: bool = True
    action: str | None = Field(None, max_length=64, description="ignored: the path names the action")


class RuleSpec(Body):
    field: Annotated[str, Field(max_length=64, description="tag, last_updated_at or last_pulled_at")]
    operator: Annotated[str, Field(max_length=64, description="eq, neq, sw, ew, c, oneof, noneof, matches; "
                                   "older_than, newer_than; never")]
    values: Annotated[list[Annotated[str, Field(max_length=1000)]], Field(max_length=MAX_VALUES)] = []


class PolicySpec(Body):
    """A tag is pruned when it matches every rule and is not one of the ``keepNewest`` newest matches."""

    rules: Annotated[list[RuleSpec], Field(max_length=MAX_RULES)]
    keep_newest: int | None = Field(None, ge=0, le=MAX_TAGS, description="of the matching tags, keep this many "
                                    "most recently pushed")
    enabled: bool = True
    id: str | None = Field(None, max_length=64, description="ignored (a policy read may be sent back)")


class PruningSettingsChanges(Body):
    tag_limit: int | None = Field(None, ge=1, le=MAX_TAGS, description="prune the least recently pushed tags "
                                  "beyond this many; null for no limit")
    immutable_tags: bool = False


# -- queries -------------------------------------------------------------------------------------


class JobsQuery(PageQuery):
    action: str | None = Field(None, max_length=64, description="only jobs of this action")
    status: str | None = Field(None, max_length=255, description="only jobs in these statuses (comma-separated)")
    worker: str | None = Field(None, max_length=64, description="only jobs of this worker")


class LogsQuery(Query):
    after: Annotated[int, Field(ge=0, le=2**31, description="lines after this line number")] = 0
    limit: Annotated[int, Field(ge=1, le=10_000, description="at most this many lines")] = 1000
    follow: Annotated[bool, Field(description="stream the log as NDJSON until the job ends: its lines, "
                                  "{progress} updates, then {job}")] = False


class Evaluation(Query):
    initial_evaluation: Annotated[bool, Field(description="queue the repository's prune job now")] = False


class UsageQuery(Query):
    namespace: str | None = Field(None, max_length=255, description="only this namespace's repositories")

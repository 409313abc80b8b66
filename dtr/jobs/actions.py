"""The job actions: name -> handler, parameter check and defaults. The one list of what can run."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any

from dtr.config import Config
from dtr.jobs.context import JobContext
from dtr.jobs.params import ParameterError, duration_param, only

Handler = Callable[[JobContext], Coroutine[Any, Any, dict[str, Any] | None]]


@dataclasses.dataclass(frozen=True)
class Action:
    handler: Handler
    #: Checks and normalises parameters (raises ParameterError).
    check: Callable[[dict[str, Any]], dict[str, Any]]
    description: str
    max_attempts: int = 3
    #: The schedule a worker seeds for it (six-field cron) under this config, or None (no default).
    default_schedule: Callable[[Config], str | None] | None = None




# -- noop ------------------------------------------------------------------------------------


def _check_noop(params: dict[str, Any]) -> dict[str, Any]:
    only(params, {"seconds", "fail_attempts"})
    duration_param(params, "seconds")
    fail = params.get("fail_attempts", 0)
    if not isinstance(fail, int) or isinstance(fail, bool) or fail < 0:
        raise ParameterError("fail_attempts: expected a non-negative integer")
    return params


async def _noop(ctx: JobContext) -> dict[str, Any]:
    """Sleep ``seconds`` reporting progress each second; fail the first ``fail_attempts`` attempts."""
    seconds = duration_param(ctx.parameters, "seconds") or 0.0
    ctx.log(f"noop on worker {ctx.worker_id}, attempt {ctx.attempt}: sleeping {seconds:g}s")
    if ctx.attempt <= ctx.parameters.get("fail_attempts", 0):
        raise RuntimeError(f"failing attempt {ctx.attempt} as asked")
    waited = 0.0
    while waited < seconds:
        ctx.check_stop()
        step = min(1.0, seconds - waited)
        await asyncio.sleep(step)
        waited += step
        ctx.progress(int(waited), int(seconds), "sleeping")
    ctx.log("noop done")
    return {"worker": ctx.worker_id, "slept": seconds}


def _registry() -> dict[str, Action]:
    import dtr.jobs.cleanup as cleanup
    import dtr.jobs.gc as gc
    import dtr.jobs.pruning as pruning
    import dtr.jobs.usage as usage

    return {
        "gc": Action(gc.run, gc.check_params, "online garbage collection of blobs and manifests"),
        "upload_cleanup": Action(cleanup.run, cleanup.check_params, "delete abandoned uploads"),
        "prune": Action(pruning.run, pruning.check_params, "apply tag pruning policies and tag limits"),
        "usage": Action(usage.run, usage.check_params, "recount storage used per repository and namespace"),
        "noop": Action(_noop, _check_noop, "sleep, reporting progress (checks the job system)", max_attempts=1),
    }


_ACTIONS: dict[str, Action] | None = None
#: Actions other domains add (``dtr.scanning.jobs.register_actions``), registered by the composition
#: roots (``dtr.app``, ``dtr.cli``): the job system imports no domain that uses it.
_ADDED: dict[str, Action] = {}


def register(name: str, action: Action) -> None:
    """Add another domain's action ``name`` (again with the same action: nothing changes)."""
    global _ACTIONS
    if _ADDED.get(name, action) is not action or name in _registry():
        raise ValueError(f"job action {name!r} is already registered")
    _ADDED[name] = action
    _ACTIONS = None


def actions() -> dict[str, Action]:
    global _ACTIONS
    if _ACTIONS is None:
        _ACTIONS = {**_registry(), **_ADDED}
    return _ACTIONS


def check(action: str, parameters: Any) -> dict[str, Any]:
    """Normalised parameters for ``action``; ParameterError if the action or a parameter is wrong."""
    spec = actions().get(action)
    if spec is None:
        raise ParameterError(f"unknown action {action!r}; allowed: {', '.join(sorted(actions()))}")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise ParameterError("parameters: expected an object")
    return spec.check(dict(parameters))

"""``dtr gc`` and ``dtr jobs run`` never wait for a worker that is not there: with no running dtr
process they run the job themselves; with one, its worker runs it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from tests.jobs.conftest import FAST_JOBS
from tests.jobs.test_cli import dtr_cli
from tests.servers import DtrProcess


async def _job(cfg: str, action: str) -> dict[str, object]:
    rc, out, err = await dtr_cli(cfg, "jobs", "list", "--action", action, "--json")
    assert rc == 0, err
    (job,) = json.loads(out)
    return dict(job)


async def test_gc_without_a_running_dtr_runs_here(dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory({"jobs": FAST_JOBS}, start=False)  # its config and database; no process
    cfg = str(proc.config_path)
    rc, out, err = await dtr_cli(cfg, "gc", "--grace-period", "0s", within=120)
    assert rc == 0, (out, err)
    assert "no running dtr process runs gc jobs: running it here" in err
    assert "freed 0 manifests (0 bytes), 0 blobs (0 bytes)" in out
    job = await _job(cfg, "gc")
    assert job["status"] == "done"
    rc, out, err = await dtr_cli(cfg, "jobs", "run", "noop", "seconds=0", "--local", within=120)
    assert rc == 0 and "running it here" not in err, (out, err)
    assert (await _job(cfg, "noop"))["status"] == "done"


async def test_gc_with_a_running_dtr_is_run_by_its_worker(dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory({"jobs": FAST_JOBS})
    cfg = str(proc.config_path)
    rc, out, err = await dtr_cli(cfg, "gc", "--grace-period", "0s", within=120)
    assert rc == 0, (out, err)
    assert "running it here" not in err
    worker = re.search(r'"msg": "job worker started", "worker": "(\w+)"', proc.log_path.read_text())
    assert worker is not None
    job = await _job(cfg, "gc")
    assert (job["status"], job["workerID"]) == ("done", worker.group(1))

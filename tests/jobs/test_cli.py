"""``dtr gc`` and ``dtr jobs``: real commands against a running cluster's database."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiohttp

from tests.jobs.conftest import api, wait_job
from tests.oci import push_blob
from tests.servers import ROOT


async def dtr_cli(config: str, *args: str, within: float = 120) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTR_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dtr", *args, "--config", config, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), within)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_dtr_gc_follows_the_job_to_its_end(cluster, http: aiohttp.ClientSession) -> None:
    (a,) = cluster(1)
    cfg = str(a.config_path)
    await push_blob(http, a.url, "cli/repo", os.urandom(1234))
    rc, out, err = await dtr_cli(cfg, "gc", "--dry-run", "--grace-period", "0s")
    assert rc == 0, (out, err)
    assert "dry run: would free 0 manifests (0 bytes), 1 blobs (1234 bytes)" in out
    assert ": done" in err
    rc, out, err = await dtr_cli(cfg, "gc", "--grace-period", "0s")
    assert rc == 0 and "freed 0 manifests (0 bytes), 1 blobs (1234 bytes)" in out, (out, err)
    rc, out, err = await dtr_cli(cfg, "gc", "--grace-period", "soon")
    assert rc == 2 and "grace_period" in err


async def test_dtr_jobs_run_list_logs_cancel(cluster, http: aiohttp.ClientSession) -> None:
    (a,) = cluster(1)
    cfg = str(a.config_path)
    rc, out, err = await dtr_cli(cfg, "jobs", "run", "noop", "seconds=1", "--follow")
    assert rc == 0, err
    assert "noop done" in out and json.loads(out[out.index("{"):])["slept"] == 1
    rc, out, _ = await dtr_cli(cfg, "jobs", "run", "noop", "seconds=60")
    job_id = out.strip()
    await wait_job(http, a.url, job_id, statuses=("running",))
    rc, out, _ = await dtr_cli(cfg, "jobs", "list", "--action", "noop", "--json")
    assert job_id in {j["id"] for j in json.loads(out)}
    rc, out, _ = await dtr_cli(cfg, "jobs", "cancel", job_id)
    assert rc == 0 and "cancel" in out
    rc, out, err = await dtr_cli(cfg, "jobs", "logs", "-f", job_id)
    assert rc == 1 and "cancelled" in out and ": cancel" in err
    rc, _, err = await dtr_cli(cfg, "jobs", "logs", "not-an-id")
    assert rc != 0 and "not a job id" in err
    assert (await api(http, "GET", f"{a.url}/api/v0/jobs/{job_id}"))["status"] == "cancel"

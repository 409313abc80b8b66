"""``dtr gc`` and ``dtr jobs``: real commands against a running cluster's database."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import aiohttp
import pytest

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


async def test_job_ids_by_unique_prefix(cluster, http: aiohttp.ClientSession) -> None:
    (a,) = cluster(1, jobs={"capacity": {"noop": 0}})  # the jobs stay waiting
    cfg = str(a.config_path)
    # 17 jobs: two of them share the first hex digit of their id (an ambiguous prefix).
    ids = [(await api(http, "POST", f"{a.url}/api/v0/jobs", {"action": "noop", "parameters": {}}))["id"]
           for _ in range(17)]
    job = ids[0]
    for prefix in (job[:10], job[:10].replace("-", ""), job[:6].upper()):
        if sum(i.replace("-", "").startswith(prefix.replace("-", "").lower()) for i in ids) == 1:
            rc, out, err = await dtr_cli(cfg, "jobs", "logs", prefix)
            assert rc == 0, err
    rc, out, err = await dtr_cli(cfg, "jobs", "cancel", job[:13])
    assert rc == 0 and f"job {job}: cancel" in out, err
    shared = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    rc, out, err = await dtr_cli(cfg, "jobs", "logs", shared)
    assert rc == 1 and f"several jobs' ids start with {shared}; give more of the id" in err
    unknown = next(p for p in (uuid.uuid4().hex[:12] for _ in range(100)) if not any(
        i.replace("-", "").startswith(p) for i in ids))
    rc, out, err = await dtr_cli(cfg, "jobs", "cancel", unknown)
    assert rc == 1 and f"no job id starts with {unknown}" in err and "Traceback" not in err
    rc, out, err = await dtr_cli(cfg, "jobs", "cancel", "zz-top")
    assert rc == 2 and "'zz-top' is not a job id" in err


async def test_cancelling_a_finished_job_fails(cluster, http: aiohttp.ClientSession) -> None:
    (a,) = cluster(1)
    cfg = str(a.config_path)
    job = (await api(http, "POST", f"{a.url}/api/v0/jobs", {"action": "noop", "parameters": {}}))["id"]
    await wait_job(http, a.url, job)
    rc, out, err = await dtr_cli(cfg, "jobs", "cancel", job)
    assert rc == 1 and f"job {job} has ended (done); nothing to cancel" in err, (out, err)
    rc, out, err = await dtr_cli(cfg, "jobs", "list", "--status", "done,cancel", "--action", "noop", "--limit", "5")
    assert rc == 0 and job in out


@pytest.mark.parametrize("args,message", [
    (("--status", "waiting,bogus"), "argument --status: unknown status 'bogus'; allowed: waiting, running, done"),
    (("--action", "frobnicate"), "argument --action: invalid choice: 'frobnicate'"),
    (("--limit", "0"), "argument --limit: expected an integer from 1 to 1000, got '0'"),
    (("--limit", "1001"), "argument --limit: expected an integer from 1 to 1000"),
])
async def test_jobs_list_refuses_what_the_api_refuses(tmp_path, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "none.yaml"
    config.write_text(f"data_dir: {tmp_path}\n")  # never reached: the arguments are refused first
    rc, out, err = await dtr_cli(str(config), "jobs", "list", *args)
    assert rc == 2 and message in err and out == ""

"""A push mirror whose dtr is killed (SIGKILL) mid-transfer: the restarted process takes the job
over (its worker is declared dead) and resumes the cut upload at the remote where it stood,
sending only the chunks the remote lacks."""

from __future__ import annotations

import re
from collections.abc import Callable

import aiohttp

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.mirroring.conftest import CHUNK, LOCAL, api, job, random_image, wait_run
from tests.mirroring.proxy import Proxy
from tests.mirroring.test_mirroring import _remote_pull
from tests.oci import push_image
from tests.servers import DtrProcess

#: The killed worker is declared dead after this (its job then runs again on the restarted one).
JOBS = {**LOCAL["jobs"], "heartbeat_interval": 0.5, "worker_timeout": 5}


async def test_a_mirror_killed_mid_transfer_resumes_the_upload_where_it_stood(
        dtr_factory: Callable[..., DtrProcess], http: aiohttp.ClientSession) -> None:
    local = dtr_factory({**LOCAL, "jobs": JOBS})
    remote = dtr_factory(auth_config())
    proxy = Proxy(("127.0.0.1", remote.port))
    try:
        config, layers, manifest = random_image(6 * CHUNK)
        await push_image(http, local.url, "test/app", "v1", config, layers)
        Client(remote.url).api("POST", "/repositories/admin", ADMIN_AUTH, {"name": "mirror"}, expect=201)
        policy = api(local, "POST", "/repositories/test/app/pushMirroringPolicies", {
            "remoteHost": f"http://{proxy.host}", "remoteRepository": "admin/mirror", "enabled": False,
            "remoteCredentials": {"username": ADMIN_AUTH[0], "password": ADMIN_AUTH[1]}}, expect=201)
        path = f"/repositories/test/app/pushMirroringPolicies/{policy['id']}"

        proxy.hold_after(3 * CHUNK + CHUNK // 2)  # in the big layer's fourth chunk of six
        run = api(local, "POST", f"{path}/run", expect=202)
        assert proxy.held.wait(60), local.log_tail(20, access=False)
        local.kill()
        before = proxy.sent
        proxy.release()
        local.start()

        done = wait_run(local, path)
        assert (done["lastStatus"]["code"], done["lastStatus"]["job"]) == ("SUCCESS", run["id"]), done
        finished = job(local, run["id"])
        assert finished["attempt"] == 2, finished
        m = re.search(r"resuming the upload of \S+ an earlier run left at byte (\d+)", finished["log"])
        assert m and 3 * CHUNK <= int(m.group(1)) < 4 * CHUNK, finished["log"]
        assert finished["result"]["resumed"] >= 1, finished["result"]
        # The three chunks the remote had were not sent again (from the start: six).
        assert proxy.sent - before < 3 * CHUNK + CHUNK // 2, proxy.sent - before
        _remote_pull(Client(remote.url), "admin/mirror", "v1", manifest)
    finally:
        proxy.release()
        proxy.close()

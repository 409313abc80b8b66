"""Push and poll mirroring against real remotes: Go's reference registry (htpasswd over TLS with a
CA of the test's own) and a second dtr (token auth, behind a proxy that counts and cuts bytes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.auth.world import World
from tests.clients.engines import ReferenceRegistry, Skopeo
from tests.mirroring.conftest import CHUNK, OCI, PASSWORD, USER, api, job, outbox, random_image, wait_run
from tests.mirroring.proxy import Proxy
from tests.oci import ALL_MANIFEST_TYPES, OCI_INDEX, digest_of, index, pulls_whole, push_blob, push_image, put_manifest
from tests.servers import DtrProcess
from tests.trust.notary_tools import TestCA


async def test_push_mirroring_to_the_reference_registry_over_tls_with_basic_auth(
        local: DtrProcess, reference: Callable[..., ReferenceRegistry], ca: TestCA, skopeo: Skopeo,
        http: aiohttp.ClientSession, tmp_path: Path) -> None:
    remote = reference(auth=True, ca=ca)
    config, layers, manifest = random_image(3 * CHUNK + 123, 1000)  # the first in 4 chunks
    await push_image(http, local.url, "test/app", "v1", config, layers)
    policy = api(local, "POST", "/repositories/test/app/pushMirroringPolicies", {
        "remoteHost": remote.url, "remoteRepository": "mirror/app", "remoteCA": ca.pem,
        "remoteCredentials": {"username": USER, "password": PASSWORD},
        "rules": [{"field": "tag", "operator": "sw", "values": ["v"]}], "tagTemplate": "%n-copy"}, expect=201)
    assert policy["remoteCredentials"] == {"username": USER, "hasPassword": True, "hasToken": False}
    assert PASSWORD not in json.dumps(policy) and policy["lastStatus"] is None
    path = f"/repositories/test/app/pushMirroringPolicies/{policy['id']}"

    await push_image(http, local.url, "test/app", "latest", config, layers)  # no match: not mirrored
    await push_image(http, local.url, "test/app", "v1", config, layers)  # pushed again: mirrored
    done = wait_run(local, path)
    assert done["lastStatus"]["code"] == "SUCCESS", done["lastStatus"]
    first = job(local, done["lastStatus"]["job"])
    assert first["parameters"] == {"policy": policy["id"], "tag": "v1"}
    assert first["result"]["blobs_sent"] == 3 and first["result"]["remoteTags"] == ["v1-copy"], first
    remote_name = f"{remote.host}/mirror/app"
    assert await outbox(local, "push_mirrored") == [{
        "type": "push_mirrored", "repository": "test/app", "tag": "v1", "digest": digest_of(manifest),
        "detail": {"policy": policy["id"], "remote": remote_name, "tags": ["v1"]}}]

    creds = ("--creds", f"{USER}:{PASSWORD}")
    tags = json.loads(skopeo.skopeo("list-tags", "--tls-verify=false", *creds,
                                    f"docker://{remote.host}/mirror/app").stdout)["Tags"]
    assert tags == ["v1-copy"]
    out = tmp_path / "pulled"
    digest = skopeo.copy(f"docker://{remote.host}/mirror/app:v1-copy", f"dir:{out}", "--src-creds", creds[1])
    assert digest == digest_of(manifest)
    for blob in (config, *layers):
        assert (out / digest_of(blob).split(":")[1]).read_bytes() == blob

    # Run on demand: everything is there already, no blob is sent again.
    run = api(local, "POST", f"{path}/run", expect=202)
    again = wait_run(local, path, after=first["id"])
    assert again["lastStatus"]["code"] == "SUCCESS" and again["lastStatus"]["job"] == run["id"]
    result = job(local, run["id"])["result"]
    assert result["blobs_sent"] == 0 and result["bytes"] == 0 and result["blobs_present"] == 3, result

    # Wrong credentials: every attempt fails, the last records push_mirror_failed.
    wrong = api(local, "POST", "/repositories/test/app/pushMirroringPolicies", {
        "remoteHost": remote.url, "remoteRepository": "mirror/app", "remoteCA": ca.pem, "enabled": False,
        "remoteCredentials": {"username": USER, "password": "not-" + PASSWORD}}, expect=201)
    api(local, "POST", f"/repositories/test/app/pushMirroringPolicies/{wrong['id']}/run", expect=202)
    failed = wait_run(local, f"/repositories/test/app/pushMirroringPolicies/{wrong['id']}")
    assert failed["lastStatus"]["code"] == "FAILED" and "401" in failed["lastStatus"]["detail"], failed
    [event] = await outbox(local, "push_mirror_failed")
    assert event["detail"]["policy"] == wrong["id"] and "401" in event["detail"]["error"], event
    assert PASSWORD not in local.log_path.read_text()


def _remote_pull(remote: Client, repo: str, ref: str, expect: bytes) -> None:
    """``ref`` in ``repo`` on a dtr with auth is ``expect``, with every child and blob intact."""
    scope = f"repository:{repo}:pull"
    r = remote.v2("GET", f"{repo}/manifests/{ref}", scope, ADMIN_AUTH, headers={"Accept": ALL_MANIFEST_TYPES})
    assert r.status == 200 and r.body == expect, (r.status, r.body[:300])
    doc = json.loads(expect)
    for child in doc.get("manifests", []):
        c = remote.v2("GET", f"{repo}/manifests/{child['digest']}", scope, ADMIN_AUTH,
                      headers={"Accept": ALL_MANIFEST_TYPES})
        _remote_pull(remote, repo, child["digest"], c.body)
    for blob in [doc["config"], *doc["layers"]] if "config" in doc else []:
        b = remote.v2("GET", f"{repo}/blobs/{blob['digest']}", scope, ADMIN_AUTH)
        assert b.status == 200 and digest_of(b.body) == blob["digest"]


async def test_push_mirroring_to_a_dtr_resumes_a_cut_upload_and_sends_no_layer_twice(
        local: DtrProcess, dtr_factory: Callable[..., DtrProcess], http: aiohttp.ClientSession) -> None:
    remote = dtr_factory(auth_config())
    proxy = Proxy(("127.0.0.1", remote.port))
    try:
        config, layers, manifest = random_image(3 * CHUNK, 2000)
        await push_image(http, local.url, "test/app", "v1", config, layers)
        Client(remote.url).api("POST", "/repositories/admin", ADMIN_AUTH, {"name": "mirror"}, expect=201)
        spec = {"remoteHost": f"http://{proxy.host}", "remoteRepository": "admin/mirror", "enabled": False}
        policy = api(local, "POST", "/repositories/test/app/pushMirroringPolicies", {**spec, "remoteCredentials": {
            "username": ADMIN_AUTH[0], "password": ADMIN_AUTH[1]}}, expect=201)
        path = f"/repositories/test/app/pushMirroringPolicies/{policy['id']}"

        proxy.cut_once_after(CHUNK + CHUNK // 2)  # in the second chunk of the big layer
        run = api(local, "POST", f"{path}/run", expect=202)  # a disabled policy runs on demand
        done = wait_run(local, path)
        assert done["lastStatus"]["code"] == "SUCCESS", done["lastStatus"]
        result = job(local, run["id"])["result"]
        api(local, "PUT", path, {**spec, "enabled": True}, expect=200)  # the credentials are kept
        assert proxy.cuts == 1 and result["resumed"] >= 1, result
        _remote_pull(Client(remote.url), "admin/mirror", "v1", manifest)

        # A second image sharing the big layer: its bytes do not cross again.
        config2, layers2, manifest2 = random_image(3000, shared=[layers[0]])
        before = proxy.sent
        await push_image(http, local.url, "test/app", "v2", config2, layers2)
        second = wait_run(local, path, after=run["id"])
        assert second["lastStatus"]["code"] == "SUCCESS", second["lastStatus"]
        result = job(local, second["lastStatus"]["job"])["result"]
        assert result["blobs_present"] == 1 and result["blobs_sent"] == 2, result
        assert proxy.sent - before < CHUNK // 2, proxy.sent - before
        _remote_pull(Client(remote.url), "admin/mirror", "v2", manifest2)

        # A multi-arch index goes whole: each child, then the index.
        children = []
        for _ in range(2):
            c, ls, m = random_image(700)
            for blob in (c, *ls):
                await push_blob(http, local.url, "test/app", blob)
            assert (await put_manifest(http, local.url, "test/app", digest_of(m), m))[0] == 201
            children.append(m)
        idx = index(children)
        status, _ = await put_manifest(http, local.url, "test/app", "multi", idx, OCI_INDEX)
        assert status == 201
        third = wait_run(local, path, after=second["lastStatus"]["job"])
        assert third["lastStatus"]["code"] == "SUCCESS", third["lastStatus"]
        _remote_pull(Client(remote.url), "admin/mirror", "multi", idx)
    finally:
        proxy.close()


async def _upload(http: aiohttp.ClientSession, base: str, repo: str, blobs: list[bytes], ref: str, manifest: bytes,
                  media_type: str = OCI) -> None:
    """Push blobs (POST, then PUT ?digest=: Go's registry takes no monolithic POST) and a manifest."""
    for blob in blobs:
        async with http.post(f"{base}/v2/{repo}/blobs/uploads/") as r:
            assert r.status == 202, await r.text()
            location = r.headers["Location"]
        sep = "&" if "?" in location else "?"
        async with http.put(f"{location if '://' in location else base + location}{sep}digest={digest_of(blob)}",
                            data=blob, headers={"Content-Type": "application/octet-stream"}) as r:
            assert r.status == 201, await r.text()
    assert (await put_manifest(http, base, repo, ref, manifest, media_type))[0] == 201


async def test_poll_mirroring_fetches_matching_tags_whole_and_then_only_changed_ones(
        local: DtrProcess, reference: Callable[..., ReferenceRegistry], http: aiohttp.ClientSession) -> None:
    remote = reference()
    c1, l1, m1 = random_image(2 * CHUNK, 100)
    await _upload(http, remote.url, "up/app", [c1, *l1], "v1", m1)
    cs, ls, ms = random_image(10)
    await _upload(http, remote.url, "up/app", [cs, *ls], "skip", ms)
    children = []
    for _ in range(2):
        c, ls, m = random_image(500)
        await _upload(http, remote.url, "up/app", [c, *ls], digest_of(m), m)
        children.append(m)
    idx = index(children)
    await _upload(http, remote.url, "up/app", [], "multi", idx, OCI_INDEX)
    await push_image(http, local.url, "test/mirror", "seed", *random_image(10)[:2])  # the local repository

    # disabled: the poll schedule (every 15 minutes) runs none of it, only the runs asked for here do
    policy = api(local, "POST", "/repositories/test/mirror/pollMirroringPolicies", {
        "remoteHost": remote.url, "remoteRepository": "up/app", "enabled": False,
        "rules": [{"field": "tag", "operator": "neq", "values": ["skip"]}]}, expect=201)
    path = f"/repositories/test/mirror/pollMirroringPolicies/{policy['id']}"
    run = api(local, "POST", f"{path}/run", expect=202)
    done = wait_run(local, path)
    assert done["lastStatus"] == {**done["lastStatus"], "code": "SUCCESS", "detail": "tags: multi, v1",
                                  "job": run["id"]}
    await pulls_whole(http, local.url, "test/mirror", "v1", m1)
    await pulls_whole(http, local.url, "test/mirror", "multi", idx)
    async with http.get(f"{local.url}/v2/test/mirror/manifests/skip", headers={"Accept": OCI}) as r:
        assert r.status == 404

    run2 = api(local, "POST", f"{path}/run", expect=202)
    again = wait_run(local, path, after=run["id"])
    assert again["lastStatus"]["detail"] == "nothing changed" and again["lastStatus"]["job"] == run2["id"]
    assert job(local, run2["id"])["result"] == {"tags": [], "blobsFetched": 0, "artifactsFetched": 0}
    polled = await outbox(local, "poll_mirrored")
    assert [(e["tag"], e["detail"]["tags"]) for e in polled] == [(None, ["multi", "v1"])]  # none for "nothing"

    c2, l2, m2 = random_image(300, shared=[l1[0]])
    await _upload(http, remote.url, "up/app", [c2, *l2], "v1", m2)  # v1 moves
    await _upload(http, remote.url, "up/app", [], "v2", m2)
    run3 = api(local, "POST", f"{path}/run", expect=202)
    third = wait_run(local, path, after=run2["id"])
    assert third["lastStatus"]["detail"] == "tags: v1, v2", third["lastStatus"]
    assert job(local, run3["id"])["result"]["blobsFetched"] == 2  # the new config and layer only
    await pulls_whole(http, local.url, "test/mirror", "v1", m2)
    await pulls_whole(http, local.url, "test/mirror", "v2", m2)


def test_bad_policies_are_refused_and_only_repository_admins_manage_them(client: Client, world: World,
                                                                          tmp_path: Path) -> None:
    base = f"/repositories/{world.app}/pushMirroringPolicies"
    good = {"remoteHost": "https://registry.example.com", "remoteRepository": "team/app"}
    pem = TestCA(tmp_path / "ca").pem
    for bad in ({"remoteHost": "ftp://registry.example.com"}, {"remoteHost": "https://h:99999"},
                {"remoteRepository": "Upper/Case"}, {"rules": [{"field": "tag", "operator": "gt", "values": ["1"]}]},
                {"rules": [{"field": "last_pulled_at", "operator": "never", "values": []}]},
                {"rules": [{"field": "tag", "operator": "matches", "values": ["("]}]},
                {"tagTemplate": "%x"}, {"tagTemplate": "bad tag"}, {"remoteCA": "not a certificate"},
                {"remoteHost": "http://registry.example.com", "remoteCA": pem},
                {"remoteCredentials": {"password": "p"}},
                {"remoteCredentials": {"username": "u", "password": "p", "token": "t"}},
                {"surprise": True}, {"enabled": "yes"}):
        r = client.api("POST", base, ADMIN_AUTH, {**good, **bad})
        assert r.status == 400 and r.json()["errors"][0]["code"] == "INVALID_MIRRORING_POLICY", (bad, r.body)
    r = client.api("POST", f"/repositories/{world.app}/pollMirroringPolicies", ADMIN_AUTH,
                   {**good, "schedule": "every day"})
    assert r.status == 400 and "schedule" in r.json()["errors"][0]["message"]

    created = client.api("POST", base, ADMIN_AUTH, {**good, "remoteCA": pem, "remoteCredentials": {
        "username": "robot", "password": "s3cret-pass"}}, expect=201).json()
    assert "s3cret-pass" not in json.dumps(created) and created["remoteCredentials"]["hasPassword"] is True
    one = f"{base}/{created['id']}"
    kept = client.api("PUT", one, ADMIN_AUTH, {**good, "enabled": False, "tagTemplate": "m-%n"}, expect=200).json()
    assert kept["remoteCredentials"]["hasPassword"] is True and kept["enabled"] is False
    assert kept["tagTemplate"] == "m-%n" and kept["remoteCA"] is None
    for missing in ("00000000-0000-0000-0000-000000000000", "not-an-id"):
        r = client.api("GET", f"{base}/{missing}", ADMIN_AUTH)
        assert r.status == 404 and r.json()["errors"][0]["code"] == "NO_SUCH_MIRRORING_POLICY"
    assert client.api("GET", one.replace("push", "poll"), ADMIN_AUTH).status == 404

    assert client.api("GET", base, world.users["adm"], expect=200).json()[0]["id"] == created["id"]
    for role, status, code in (("rw", 403, "FORBIDDEN"), ("ro", 403, "FORBIDDEN"),
                               ("outsider", 404, "NO_SUCH_REPOSITORY"), ("anonymous", 401, "UNAUTHORIZED")):
        for method, path, body in (("GET", base, None), ("POST", base, good), ("GET", one, None),
                                   ("POST", f"{one}/run", None), ("DELETE", one, None)):
            r = client.api(method, path, world.users[role], body)
            assert r.status == status and r.json()["errors"][0]["code"] == code, (role, method, path, r.body)
    client.api("DELETE", one, ADMIN_AUTH, expect=204)
    assert client.api("GET", one, ADMIN_AUTH).status == 404

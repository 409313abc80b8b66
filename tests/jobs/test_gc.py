"""Online garbage collection against real dtr processes: what it frees, dry runs, and the push race."""

from __future__ import annotations

import asyncio
import os
import random

import aiohttp

from tests.jobs.conftest import api, wait_job
from tests.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    get,
    image,
    index,
    pulls_whole,
    push_blob,
    push_image,
    put_manifest,
)

#: Renewal tests: a 6 s grace period; renewed at 3.5 s, collected at 6.3 s after the push. A
#: stall only ages the push further; the renewal keeps a 3 s margin before it would expire.
GRACE, RENEW_AFTER, PAST_GRACE = 6, 3.5, 2.8


async def _gc(http: aiohttp.ClientSession, base: str, **params: object) -> dict:  # type: ignore[type-arg]
    job = await api(http, "POST", f"{base}/api/v0/jobs", {"action": "gc", "parameters": params})
    final = await wait_job(http, base, job["id"], within=120)
    assert final["status"] == "done", final
    return final


async def test_dry_run_matches_what_a_real_run_frees(cluster, http: aiohttp.ClientSession) -> None:
    (a,) = cluster(1)
    u = a.url
    rnd = os.urandom
    keep, other = "ns/keep", "other/x"
    shared, lk, lu, ld = rnd(3000), rnd(2000), rnd(1500), rnd(1700)
    ck, cu, cd1, cr1, cr2, c1, c2 = (rnd(100 + i) for i in range(7))
    k = await push_image(http, u, keep, "v1", ck, [shared, lk])
    um = await push_image(http, u, keep, "tmp", cu, [shared, lu])
    children = [await push_image(http, u, keep, digest_of(image(c, [shared])), c, [shared]) for c in (c1, c2)]
    idx = index(children)
    assert (await put_manifest(http, u, keep, "multi", idx, OCI_INDEX))[0] == 201
    d1 = await push_image(http, u, keep, digest_of(image(cd1, [ld])), cd1, [ld])
    jdx = index([d1])
    assert (await put_manifest(http, u, keep, "j", jdx, OCI_INDEX))[0] == 201
    r1 = await push_image(http, u, keep, digest_of(image(cr1, [], descriptor(OCI_MANIFEST, k))), cr1, [],
                          descriptor(OCI_MANIFEST, k))
    r2 = await push_image(http, u, keep, digest_of(image(cr2, [], descriptor(OCI_MANIFEST, um))), cr2, [],
                          descriptor(OCI_MANIFEST, um))
    orphan = rnd(999)
    await push_blob(http, u, keep, orphan)
    await push_blob(http, u, other, lk, mount_from=keep)
    for tag in ("tmp", "j"):
        async with http.delete(f"{u}/v2/{keep}/manifests/{tag}") as r:
            assert r.status == 202

    dry = (await _gc(http, u, dry_run=True, grace_period="0s"))["result"]
    garbage_manifests = [um, jdx, d1, r2]
    garbage_blobs = [cu, lu, ld, cd1, cr2, orphan]
    assert dry["manifests"] == 4 and dry["manifest_bytes"] == sum(len(m) for m in garbage_manifests)
    assert dry["blobs"] == 6 and dry["blob_bytes"] == sum(len(b) for b in garbage_blobs)
    assert dry["links"] == 1
    assert (await get(http, f"{u}/v2/{keep}/manifests/{digest_of(um)}"))[0] == 200  # a dry run deletes nothing

    real = await _gc(http, u, grace_period=0)
    freed = real["result"]
    for key in ("manifests", "manifest_bytes", "blobs", "blob_bytes", "links", "bytes"):
        assert freed[key] == dry[key], (key, dry, freed)
    logs = [x["data"] for x in await api(http, "GET", f"{u}/api/v0/jobs/{real['id']}/logs?limit=10000")]
    assert f"deleted manifest {keep}@{digest_of(um)} ({len(um)} bytes)" in logs
    assert f"deleted blob {digest_of(orphan)} ({len(orphan)} bytes)" in logs

    for m in garbage_manifests:
        assert (await get(http, f"{u}/v2/{keep}/manifests/{digest_of(m)}"))[0] == 404
    for b in garbage_blobs:
        assert (await get(http, f"{u}/v2/{keep}/blobs/{digest_of(b)}", "*/*"))[0] == 404
    await pulls_whole(http, u, keep, "v1", k)
    await pulls_whole(http, u, keep, "multi", idx)
    await pulls_whole(http, u, keep, digest_of(r1), r1)
    async with http.get(f"{u}/v2/{keep}/referrers/{digest_of(k)}") as r:
        assert [m["digest"] for m in (await r.json())["manifests"]] == [digest_of(r1)]
    assert (await get(http, f"{u}/v2/{other}/blobs/{digest_of(lk)}", "*/*"))[0] == 404  # the unused link went

    again = (await _gc(http, u, grace_period=0))["result"]
    assert again["bytes"] == 0 and again["links"] == 0

    # usage, recounted after the run: blobs once per repository, plus manifest bodies
    kept_blobs = {digest_of(b): len(b) for b in (ck, shared, lk, c1, c2, cr1)}
    kept_manifests = [k, idx, *children, r1]
    usage = await api(http, "GET", f"{u}/api/v0/usage/repositories/{keep}")
    assert usage["blobs"] == len(kept_blobs) and usage["manifests"] == len(kept_manifests)
    assert usage["bytes"] == sum(kept_blobs.values()) + sum(len(m) for m in kept_manifests)
    assert usage["uniqueBytes"] == usage["bytes"]
    ns = await api(http, "GET", f"{u}/api/v0/usage/namespaces/ns")
    assert ns["bytes"] == usage["bytes"]


async def test_dry_run_refuses_bad_parameters(cluster, http: aiohttp.ClientSession) -> None:
    (a,) = cluster(1)
    err = await api(http, "POST", f"{a.url}/api/v0/jobs", {"action": "gc", "parameters": {"dry_run": "yes"}},
                    expect=400)
    assert "dry_run" in err["errors"][0]["message"]


async def test_gc_in_a_loop_during_concurrent_pushes_never_breaks_an_image(
        cluster, http: aiohttp.ClientSession) -> None:
    """Pushes share base layers that GC keeps finding unreferenced (tags are deleted all the time,
    grace period 0); every push that succeeds must pull back whole, from either replica."""
    a, b = cluster(2)
    bases = [os.urandom(4096) for _ in range(4)]
    pushed: dict[tuple[str, str], bytes] = {}
    stats = {"pushes": 0, "refused": 0, "gc_runs": 0, "freed_blobs": 0}
    stop = asyncio.Event()

    async def pusher(n: int) -> None:
        rng = random.Random(n)
        for i in range(8):
            base = (a, b)[(n + i) % 2].url
            repo = f"race/r{rng.randrange(4)}"
            tag = f"p{n}-{i}"
            layers = [rng.choice(bases), os.urandom(512)]
            config = os.urandom(64)
            # Liveness is not what this test is about (with grace period 0 GC may win many times in a
            # row on a loaded machine); integrity is: every refusal is clean, every success whole.
            for _attempt in range(200):
                for blob in (config, *layers):
                    await push_blob(http, base, repo, blob, mount_from=f"race/r{rng.randrange(4)}")
                status, info = await put_manifest(http, base, repo, tag, image(config, layers))
                if status == 201:
                    pushed[(repo, tag)] = image(config, layers)
                    stats["pushes"] += 1
                    break
                # GC won the race for a blob this push relied on: a clean refusal, never a broken image
                assert status == 400 and info["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", info
                stats["refused"] += 1
            else:
                raise AssertionError("a push never got through")
            if rng.random() < 0.5:  # make garbage: untag an older image of ours
                mine = [k for k in pushed if k[1].startswith(f"p{n}-") and k != (repo, tag)]
                if mine:
                    victim = rng.choice(mine)
                    async with http.delete(f"{base}/v2/{victim[0]}/manifests/{victim[1]}") as r:
                        assert r.status == 202
                    del pushed[victim]

    async def collector() -> None:
        while not stop.is_set():
            job = await _gc(http, (a, b)[stats["gc_runs"] % 2].url, grace_period=0)
            stats["gc_runs"] += 1
            stats["freed_blobs"] += job["result"]["blobs"]
            await asyncio.sleep(random.random() / 10)  # let pushes through between runs

    gc_task = asyncio.create_task(collector())
    try:
        await asyncio.gather(*(pusher(n) for n in range(6)))
    finally:
        stop.set()
        await gc_task
    await _gc(http, a.url, grace_period=0)  # one more after the last push
    assert stats["gc_runs"] >= 3 and stats["freed_blobs"] > 0, stats
    for (repo, tag), body in pushed.items():
        for proc in (a, b):
            await pulls_whole(http, proc.url, repo, tag, body)
    print("gc race:", stats)


async def test_deleting_a_repository_leaves_its_bytes_to_gc(cluster, http: aiohttp.ClientSession) -> None:
    (a,) = cluster(1)
    u = a.url
    shared, own = os.urandom(2000), os.urandom(3000)
    kept = await push_image(http, u, "acme/kept", "v1", os.urandom(10), [shared])
    config = os.urandom(20)
    await push_image(http, u, "acme/gone", "v1", config, [shared, own])
    async with http.delete(f"{u}/api/v0/repositories/acme/gone") as r:
        assert r.status == 204, await r.text()
    freed = (await _gc(http, u, grace_period=0))["result"]
    assert freed["blobs"] == 2 and freed["blob_bytes"] == len(own) + len(config)
    await pulls_whole(http, u, "acme/kept", "v1", kept)
    usage = (await api(http, "GET", f"{u}/api/v0/usage/repositories?namespace=acme"))["repositories"]
    assert [r["name"] for r in usage] == ["acme/kept"]


async def test_a_blob_found_by_head_survives_gc_until_its_manifest_arrives(
        cluster, http: aiohttp.ClientSession) -> None:
    """Docker HEADs a layer and skips its upload when it exists: that check renews the blob's
    link, so GC (grace period GRACE) does not take it before the manifest that needs it."""
    (a,) = cluster(1, jobs={"gc_grace_period": GRACE})
    u, repo = a.url, "renew/app"
    layer, config = os.urandom(1234), os.urandom(99)
    await push_blob(http, u, repo, layer)
    await push_blob(http, u, repo, config)
    await asyncio.sleep(RENEW_AFTER)  # older than half the grace period: the next check renews the links
    for blob in (layer, config):
        async with http.head(f"{u}/v2/{repo}/blobs/{digest_of(blob)}") as r:
            assert r.status == 200
    await asyncio.sleep(PAST_GRACE)  # past the grace period since the push, not since the check
    result = (await _gc(http, u, grace_period=GRACE))["result"]
    assert result["blobs"] == 0, result
    assert (await put_manifest(http, u, repo, "v1", image(config, [layer])))[0] == 201
    await pulls_whole(http, u, repo, "v1", image(config, [layer]))


async def test_a_manifest_pushed_again_survives_gc_until_its_index_arrives(
        cluster, http: aiohttp.ClientSession) -> None:
    """A client re-pushes an untagged child manifest before the index that needs it: the re-push
    renews the manifest, so GC (grace period GRACE) does not take it in between."""
    (a,) = cluster(1, jobs={"gc_grace_period": GRACE})
    u, repo = a.url, "renew/multi"
    cfg = os.urandom(77)
    child = await push_image(http, u, repo, digest_of(image(cfg, [])), cfg, [])
    await asyncio.sleep(RENEW_AFTER)
    assert (await put_manifest(http, u, repo, digest_of(child), child))[0] == 201
    await asyncio.sleep(PAST_GRACE)
    result = (await _gc(http, u, grace_period=GRACE))["result"]
    assert result["manifests"] == 0, result
    idx = index([child])
    assert (await put_manifest(http, u, repo, "v1", idx, OCI_INDEX))[0] == 201
    await pulls_whole(http, u, repo, "v1", idx)

"""Promotion policies on the in-process app (real Postgres, filesystem storage, its job worker),
auth off: images pushed over /v2 are promoted by tag rules (each operator) and templates, an index
whole, by link (no blob bytes copied) with the ``promoted`` event; a policy run; cycles stop."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.registry import events
from tests.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    dumps,
    image,
    pulls_whole,
    push_blob,
    push_image,
    put_manifest,
)
from tests.promotion.conftest import Client, api, create_policy, new_repo, rows, rule, settle, tags
from tests.scanning.service_data import wait_jobs


def _config() -> bytes:
    return dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                  "config": {"Labels": {"id": uuid.uuid4().hex}}})


async def _push(client: Client, base: str, repo: str, tag: str) -> str:
    """An image of unique content at ``repo:tag``; its digest."""
    return digest_of(await push_image(client.session, base, repo, tag, _config(), [uuid.uuid4().bytes * 64]))


# One policy per operator, each to its own target: (rule, tags that meet it) of the tags pushed.
PUSHED = ("v1.0", "v1.1-rc", "latest", "dev-build", "v2.0")
OPERATORS = [
    (rule("tag", "eq", "latest"), {"latest"}),
    (rule("tag", "neq", "latest"), set(PUSHED) - {"latest"}),
    (rule("tag", "sw", "v1"), {"v1.0", "v1.1-rc"}),
    (rule("tag", "ew", "-rc"), {"v1.1-rc"}),
    (rule("tag", "c", "build"), {"dev-build"}),
    (rule("tag", "oneof", "v2.0", "latest", "nothing"), {"v2.0", "latest"}),
    (rule("tag", "noneof", "v2.0", "latest"), {"v1.0", "v1.1-rc", "dev-build"}),
    # anchored: "v1" alone would only be searched for; fullmatch needs the whole name
    (rule("tag", "matches", r"v[0-9]+\.[0-9]+"), {"v1.0", "v2.0"}),
    (rule("tag", "matches", "v1"), set()),
]


async def test_each_tag_operator_promotes_what_it_matches(app_client: Client, app_base: str,
                                                          engine_: AsyncEngine) -> None:
    source = await new_repo(app_client, app_base)
    targets = []
    for r, _ in OPERATORS:
        target = await new_repo(app_client, app_base)
        await create_policy(app_client, source, target, [r])
        targets.append(target)
    pushed = {t: await _push(app_client, app_base, source, t) for t in PUSHED}
    await settle(engine_)
    for target, (r, want) in zip(targets, OPERATORS, strict=True):
        assert await tags(engine_, target) == {t: pushed[t] for t in want}, r


async def test_a_promotion_links_blobs_puts_the_manifest_and_records_the_event(
        app_client: Client, app_base: str, engine_: AsyncEngine) -> None:
    source, target = await new_repo(app_client, app_base), await new_repo(app_client, app_base)
    policy = await create_policy(app_client, source, target, [rule("tag", "sw", "release-")],
                                 "%n-%D-%H%M%S")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    config, layer = _config(), uuid.uuid4().bytes * 100
    body = await push_image(app_client.session, app_base, source, "release-1", config, [layer])
    digest = digest_of(body)
    blobs_before = await rows(engine_, "SELECT digest, created_at FROM blobs ORDER BY digest")
    await settle(engine_)
    after = dt.datetime.now(dt.UTC)

    (target_tag,) = await tags(engine_, target)
    m = re.fullmatch(r"release-1-(\d{4}-\d{2}-\d{2})-(\d{6})", target_tag)
    assert m, target_tag
    stamp = dt.datetime.strptime(m[1] + m[2], "%Y-%m-%d%H%M%S").replace(tzinfo=dt.UTC)
    assert before <= stamp <= after
    await pulls_whole(app_client.session, app_base, target, target_tag, body)

    # linked, not copied: the same blob rows (one per digest), a link of each in the target
    assert await rows(engine_, "SELECT digest, created_at FROM blobs ORDER BY digest") == blobs_before
    linked = {r.digest for r in await rows(engine_, "SELECT l.digest FROM repository_blobs l JOIN repositories r "
                                                    "ON r.id = l.repository_id WHERE r.name = :n", n=target)}
    assert {digest_of(config), digest_of(layer)} <= linked
    assert await rows(engine_, "SELECT * FROM uploads") == []

    (event,) = await rows(engine_, "SELECT * FROM registry_events WHERE type = :t", t=events.PROMOTED)
    assert (event.repository, event.tag, event.digest) == (target, target_tag, digest)
    assert event.detail == {"policy": policy["id"], "source": source, "sourceTag": "release-1", "path": [source]}
    # recorded in the put's transaction: right after the tag's own event
    (pushed,) = await rows(engine_, "SELECT id FROM registry_events WHERE repository = :r AND tag = :t "
                                    "AND type = :p", r=target, t=target_tag, p=events.TAG_PUSHED)
    assert pushed.id + 1 == event.id

    status, got = await api(app_client, "GET", f"/repositories/{source}/promotionPolicies/{policy['id']}")
    assert status == 200, got
    assert (got["lastSourceTag"], got["lastTargetTag"], got["lastError"]) == ("release-1", target_tag, None)
    assert got["lastPromotedAt"] is not None

    # a tag that already names the image is not put again (no second event)
    plain = await new_repo(app_client, app_base)
    again = await create_policy(app_client, source, plain, [rule("tag", "eq", "release-1")])
    status, _ = await api(app_client, "POST", f"/repositories/{source}/promotionPolicies/{again['id']}/run")
    assert status == 202
    await settle(engine_)
    assert await tags(engine_, plain) == {"release-1": digest}
    await put_manifest(app_client.session, app_base, source, "release-1", body)
    await settle(engine_)
    assert len(await rows(engine_, "SELECT 1 FROM registry_events WHERE type = :t AND repository = :r",
                          t=events.PROMOTED, r=plain)) == 1


async def test_an_index_is_promoted_whole(app_client: Client, app_base: str, engine_: AsyncEngine) -> None:
    source, target = await new_repo(app_client, app_base), await new_repo(app_client, app_base)
    await create_policy(app_client, source, target, [rule("tag", "eq", "multi")], "%n-promoted")
    children = []
    for arch in ("amd64", "arm64"):
        config, layer = _config(), uuid.uuid4().bytes * 50
        for blob in (config, layer):
            await push_blob(app_client.session, app_base, source, blob)
        child = image(config, [layer])
        status, _ = await put_manifest(app_client.session, app_base, source, digest_of(child), child)
        assert status == 201
        children.append((child, arch))
    body = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        descriptor(OCI_MANIFEST, c, platform={"os": "linux", "architecture": a}) for c, a in children]})
    status, _ = await put_manifest(app_client.session, app_base, source, "multi", body, OCI_INDEX)
    assert status == 201
    await settle(engine_)
    assert await tags(engine_, target) == {"multi-promoted": digest_of(body)}
    await pulls_whole(app_client.session, app_base, target, "multi-promoted", body)
    held = {r.digest for r in await rows(engine_, "SELECT m.digest FROM manifests m JOIN repositories r "
                                                  "ON r.id = m.repository_id WHERE r.name = :n", n=target)}
    assert held == {digest_of(body), *(digest_of(c) for c, _ in children)}


async def test_run_evaluates_a_policy_against_every_tag_even_disabled(app_client: Client, app_base: str,
                                                                      engine_: AsyncEngine) -> None:
    source, target = await new_repo(app_client, app_base), await new_repo(app_client, app_base)
    pushed = {t: await _push(app_client, app_base, source, t) for t in ("a1", "a2", "b1")}
    policy = await create_policy(app_client, source, target, [rule("tag", "sw", "a")], enabled=False)
    await settle(engine_)
    assert await tags(engine_, target) == {}  # created after the pushes, and disabled
    status, started = await api(app_client, "POST", f"/repositories/{source}/promotionPolicies/{policy['id']}/run")
    assert status == 202, started
    from dtr.jobs.service import JobService

    (job,) = await wait_jobs(JobService(engine_), [started["jobID"]])
    assert job["status"] == "done" and sorted(job["result"]["promoted"]) == [f"{target}:a1", f"{target}:a2"]
    assert await tags(engine_, target) == {"a1": pushed["a1"], "a2": pushed["a2"]}


async def test_a_failed_promotion_is_shown_on_the_policy(app_client: Client, app_base: str,
                                                         engine_: AsyncEngine) -> None:
    source, target = await new_repo(app_client, app_base), await new_repo(app_client, app_base)
    tag = "t" * 120
    policy = await create_policy(app_client, source, target, [], "%n-%A")  # no rules: every tag
    await _push(app_client, app_base, source, tag)
    await settle(engine_)
    assert await tags(engine_, target) == {}
    status, got = await api(app_client, "GET", f"/repositories/{source}/promotionPolicies/{policy['id']}")
    assert status == 200
    assert got["lastPromotedAt"] is None and "not a valid tag" in got["lastError"] and got["lastErrorAt"]


async def test_a_cycle_of_policies_promotes_once_and_stops(app_client: Client, app_base: str,
                                                           engine_: AsyncEngine) -> None:
    a, b, c = [await new_repo(app_client, app_base) for _ in range(3)]
    # a -> b -> c -> a, each renaming the tag: without the guard the tags would grow forever
    await create_policy(app_client, a, b, [], "%n-b")
    await create_policy(app_client, b, c, [], "%n-c")
    await create_policy(app_client, c, a, [], "%n-a")
    await create_policy(app_client, b, a, [], "%n-back")
    digest = await _push(app_client, app_base, a, "v1")
    await settle(engine_)
    assert await tags(engine_, a) == {"v1": digest}
    assert await tags(engine_, b) == {"v1-b": digest}
    assert await tags(engine_, c) == {"v1-b-c": digest}
    paths = [r.detail["path"] for r in await rows(engine_, "SELECT detail FROM registry_events WHERE type = :t "
                                                           "ORDER BY id", t=events.PROMOTED)]
    assert paths == [[a], [a, b]]
    logs = [r.data for r in await rows(engine_, "SELECT l.data FROM job_logs l JOIN jobs j ON j.id = l.job_id "
                                                "WHERE j.action = 'promote'")]
    assert any(f"not promoted to {a}" in line and "came from there" in line for line in logs), logs

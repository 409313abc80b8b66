"""DTR's immutableTags: once a repository has them, a pushed tag is never moved or deleted."""

from __future__ import annotations

import os

import aiohttp

from tests.jobs.conftest import api
from tests.oci import digest_of, get, image, pulls_whole, push_image, put_manifest
from tests.servers import DtrProcess


async def test_an_immutable_tag_is_never_moved_or_deleted(dtr: DtrProcess, http: aiohttp.ClientSession,
                                                          repo_name: str) -> None:
    u, repo = dtr.url, repo_name
    ns, name = repo.split("/")
    one = await push_image(http, u, repo, "v1", os.urandom(60), [os.urandom(300)])
    two = await push_image(http, u, repo, "other", os.urandom(61), [os.urandom(301)])
    info = await api(http, "PATCH", f"{u}/api/v0/repositories/{ns}/{name}", {"immutableTags": True})
    assert info["immutableTags"] is True
    assert (await api(http, "GET", f"{u}/api/v0/repositories/{ns}/{name}/pruning"))["immutableTags"] is True

    # pushing the same manifest again is fine; moving the tag is DENIED, and nothing changes
    assert (await put_manifest(http, u, repo, "v1", one))[0] == 201
    status, err = await put_manifest(http, u, repo, "v1", two)
    assert status == 403 and err["errors"][0]["code"] == "DENIED", err
    assert "immutable" in err["errors"][0]["message"] and err["errors"][0]["detail"] == {"tag": "v1"}
    await pulls_whole(http, u, repo, "v1", one)
    # a new tag is fine, for a new manifest too
    three = await push_image(http, u, repo, "v3", os.urandom(62), [os.urandom(302)])
    # deleting a tag, or a tagged manifest by digest, is DENIED; an untagged one may go
    for ref in ("v1", digest_of(one)):
        async with http.delete(f"{u}/v2/{repo}/manifests/{ref}") as r:
            assert r.status == 403 and (await r.json())["errors"][0]["code"] == "DENIED"
    assert (await get(http, f"{u}/v2/{repo}/manifests/v1"))[0] == 200
    cfg = os.urandom(63)
    untagged = await push_image(http, u, repo, digest_of(image(cfg, [])), cfg, [])
    async with http.delete(f"{u}/v2/{repo}/manifests/{digest_of(untagged)}") as r:
        assert r.status == 202

    # turned off: tags move and go again
    info = await api(http, "PATCH", f"{u}/api/v0/repositories/{ns}/{name}", {"immutableTags": False})
    assert info["immutableTags"] is False
    assert (await put_manifest(http, u, repo, "v1", two))[0] == 201
    async with http.delete(f"{u}/v2/{repo}/manifests/v1") as r:
        assert r.status == 202
    err = await api(http, "PATCH", f"{u}/api/v0/repositories/{ns}/{name}", {"immutableTags": "yes"}, expect=400)
    assert "immutableTags" in err["errors"][0]["message"]
    await pulls_whole(http, u, repo, "v3", three)

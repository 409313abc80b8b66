"""end-12a/12b: the referrers API, the subject field and the OCI-Subject header."""

from __future__ import annotations

import json
from collections.abc import Callable

import aiohttp

from tests.api.helpers import Registry, error_codes
from tests.oci import DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, descriptor, digest_of, dumps
from tests.servers import DtrProcess

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"


async def referrers(reg: Registry, name: str, digest: str, artifact_type: str | None = None
                    ) -> tuple[int, dict[str, str], dict]:
    params = {"artifactType": artifact_type} if artifact_type is not None else None
    async with reg.http.get(reg.url(f"/v2/{name}/referrers/{digest}"), params=params) as r:
        return r.status, dict(r.headers), json.loads(await r.read())


async def test_subject_and_referrers(reg: Registry, repo_name: str) -> None:
    img, img_body = await reg.image(repo_name, "img")
    subject = descriptor(OCI_MANIFEST, img_body)
    # an artifact with a subject: OCI-Subject on the PUT answer and on GET/HEAD
    sbom, sbom_body = await reg.artifact(repo_name, subject, SBOM, {"org.example.format": "spdx"})
    async with reg.http.put(reg.url(f"/v2/{repo_name}/manifests/{sbom}"), data=sbom_body,
                            headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 201
        assert r.headers["OCI-Subject"] == img
    for method in ("GET", "HEAD"):
        async with reg.http.request(method, reg.url(f"/v2/{repo_name}/manifests/{sbom}")) as r:
            assert r.status == 200
            assert r.headers["OCI-Subject"] == img
    sig, sig_body = await reg.artifact(repo_name, subject, SIG)

    status, headers, index = await referrers(reg, repo_name, img)
    assert status == 200
    assert headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in headers
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    assert index["manifests"] == [
        {"mediaType": OCI_MANIFEST, "digest": sbom, "size": len(sbom_body), "artifactType": SBOM,
         "annotations": {"org.example.format": "spdx"}},
        {"mediaType": OCI_MANIFEST, "digest": sig, "size": len(sig_body), "artifactType": SIG},
    ]

    status, headers, index = await referrers(reg, repo_name, img, SIG)
    assert status == 200
    assert headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in index["manifests"]] == [sig]

    status, headers, index = await referrers(reg, repo_name, img, "application/vnd.example.none")
    assert status == 200 and index["manifests"] == [] and headers["OCI-Filters-Applied"] == "artifactType"

    # deleting a referrer removes it from the list
    async with reg.http.delete(reg.url(f"/v2/{repo_name}/manifests/{sig}")) as r:
        assert r.status == 202
    _, _, index = await referrers(reg, repo_name, img)
    assert [d["digest"] for d in index["manifests"]] == [sbom]


async def test_subject_may_be_pushed_before_its_target(reg: Registry, repo_name: str) -> None:
    """A registry MUST accept a manifest whose subject does not exist (yet)."""
    await reg.image(repo_name, "other")
    ghost_body = dumps({"not": "pushed"})
    ghost = descriptor(OCI_MANIFEST, ghost_body)
    art, _ = await reg.artifact(repo_name, ghost, SBOM)
    _, _, index = await referrers(reg, repo_name, ghost["digest"])
    assert [d["digest"] for d in index["manifests"]] == [art]


async def test_artifact_type_defaults_to_config_media_type(reg: Registry, repo_name: str) -> None:
    img, img_body = await reg.image(repo_name, "img")
    subject = descriptor(OCI_MANIFEST, img_body)
    # an image manifest with a subject and no artifactType
    child, child_body = await reg.image(repo_name, None, subject=subject)
    # an index with a subject and no artifactType: artifactType omitted
    index_body = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "subject": subject,
                        "manifests": [descriptor(OCI_MANIFEST, img_body)],
                        "annotations": {"k": "v"}})
    r = await reg.put_manifest(repo_name, digest_of(index_body), index_body, OCI_INDEX)
    assert r.status == 201 and r.headers["OCI-Subject"] == img
    # an index with an artifactType
    typed_body = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": SIG, "subject": subject,
                        "manifests": []})
    assert (await reg.put_manifest(repo_name, digest_of(typed_body), typed_body, OCI_INDEX)).status == 201
    _, _, index = await referrers(reg, repo_name, img)
    assert index["manifests"] == [
        {"mediaType": OCI_MANIFEST, "digest": child, "size": len(child_body),
         "artifactType": OCI_CONFIG},
        {"mediaType": OCI_INDEX, "digest": digest_of(index_body), "size": len(index_body),
         "annotations": {"k": "v"}},
        {"mediaType": OCI_INDEX, "digest": digest_of(typed_body), "size": len(typed_body), "artifactType": SIG},
    ]


async def test_empty_referrers_is_an_empty_index_never_404(reg: Registry, repo_name: str) -> None:
    img, _ = await reg.image(repo_name, "img")
    for name, digest in ((repo_name, img), (repo_name, digest_of(b"unknown")),
                         (repo_name + "-no-such-repo", img)):
        status, headers, index = await referrers(reg, name, digest)
        assert status == 200
        assert headers["Content-Type"] == OCI_INDEX
        assert index == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


async def test_referrers_are_per_repository(reg: Registry, repo_name: str) -> None:
    img, img_body = await reg.image(repo_name, "img")
    other = repo_name + "-other"
    await reg.image(other, "img")
    await reg.artifact(other, descriptor(OCI_MANIFEST, img_body), SBOM)
    _, _, index = await referrers(reg, repo_name, img)
    assert index["manifests"] == []


async def test_invalid_digest_is_400(reg: Registry, repo_name: str) -> None:
    await reg.image(repo_name, "img")
    for bad in ("latest", "sha256:short", "sha256:" + "Z" * 64):
        async with reg.http.get(reg.url(f"/v2/{repo_name}/referrers/{bad}")) as r:
            assert r.status == 400, bad
            assert await error_codes(r) == ["DIGEST_INVALID"]


async def test_docker_manifest_subject_is_ignored(reg: Registry, repo_name: str) -> None:
    """``subject`` is an OCI field: a Docker schema 2 manifest carrying one is no referrer."""
    img, img_body = await reg.image(repo_name, "img")
    d, _ = await reg.image(repo_name, None, DOCKER_MANIFEST, subject=descriptor(OCI_MANIFEST, img_body))
    _, _, index = await referrers(reg, repo_name, img)
    assert d not in [m["digest"] for m in index["manifests"]]


async def test_referrers_pages_follow_link(reg: Registry, repo_name: str) -> None:
    """When one index cannot hold every descriptor, a Link header (rel="next") leads to the rest."""
    img, img_body = await reg.image(repo_name, "img")
    subject = descriptor(OCI_MANIFEST, img_body)
    pushed = [(await reg.artifact(repo_name, subject, SBOM if i % 2 else SIG))[0] for i in range(5)]
    for artifact_type, expected in ((None, pushed), (SIG, pushed[0::2])):
        seen: list[str] = []
        params = {"n": "2", **({"artifactType": artifact_type} if artifact_type else {})}
        async with reg.http.get(reg.url(f"/v2/{repo_name}/referrers/{img}"), params=params) as r:
            page = await r.json()
            link = r.headers.get("Link")
        while True:
            assert r.status == 200 and r.headers["Content-Type"] == OCI_INDEX
            assert len(page["manifests"]) <= 2
            seen += [d["digest"] for d in page["manifests"]]
            if link is None:
                break
            assert link.endswith('>; rel="next"')
            async with reg.http.get(reg.url(link[1:link.index(">")])) as r:
                page = await r.json()
                link = r.headers.get("Link")
                if artifact_type:
                    assert r.headers["OCI-Filters-Applied"] == "artifactType"
        assert seen == expected


async def test_referrers_bad_paging_parameters(reg: Registry, repo_name: str) -> None:
    img, _ = await reg.image(repo_name, "img")
    for query in ("n=-1", "n=x", "cursor=abc", "cursor=99999999999999999999999"):
        async with reg.http.get(reg.url(f"/v2/{repo_name}/referrers/{img}?{query}")) as r:
            assert r.status == 400, query
            await error_codes(r)


async def test_referrers_page_stays_within_the_manifest_size_limit(
        dtr_factory: Callable[..., DtrProcess], http: aiohttp.ClientSession) -> None:
    """Each page is an index a client can take: no larger than the registry's manifest limit."""
    small = dtr_factory({"registry": {"max_manifest_size": 4096}})
    reg = Registry(http, small.url)
    img, img_body = await reg.image("r/paged", "img")
    subject = descriptor(OCI_MANIFEST, img_body)
    pushed = [(await reg.artifact("r/paged", subject, SBOM, {"pad": str(i) * 1200}))[0] for i in range(6)]
    seen: list[str] = []
    path: str | None = f"/v2/r/paged/referrers/{img}"
    while path:
        async with reg.http.get(reg.url(path)) as r:
            body = await r.read()
            link = r.headers.get("Link")
        assert len(body) <= 4096
        seen += [d["digest"] for d in json.loads(body)["manifests"]]
        path = link[1:link.index(">")] if link else None
    assert seen == pushed

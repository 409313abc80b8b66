"""Pulls through a cache namespace with skopeo and docker, from a Go distribution upstream: cached
content outlives the upstream, tags are re-checked after their TTL, pushes are refused, an
upstream with basic auth (htpasswd)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.auth.constants import ADMIN_AUTH, ADMIN_PASSWORD
from tests.clients.engines import DOCKER_CLI, CommandError, DockerEngine, ReferenceRegistry, htpasswd_file, run
from tests.oci import ALL_MANIFEST_TYPES
from tests.pullcache.conftest import ADMIN_CREDS, Caches


def _error(r: object) -> tuple[int, str, str]:
    """(status, first error code, its message) of a /v2 answer."""
    body = r.json()  # type: ignore[attr-defined]
    return r.status, body["errors"][0]["code"], body["errors"][0]["message"]  # type: ignore[attr-defined]


def test_pull_through_with_skopeo_and_docker(caches: Caches, upstreams: Callable[..., ReferenceRegistry],
                                             docker_engine: DockerEngine, unique: str) -> None:
    upstream = upstreams()
    a = caches.push_upstream(upstream, f"library/a{unique}", "1", f"a {unique}")
    b = caches.push_upstream(upstream, f"library/b{unique}", "1", f"b {unique}")
    caches.push_upstream(upstream, f"library/c{unique}", "1", f"c {unique}")
    org = caches.make(upstream.url, upstreamNamespace="library")
    ra, rb, rc = (f"{org}/{x}{unique}" for x in "abc")
    # A miss: fetched from the upstream, served and stored (the repository created on first pull).
    assert caches.pull(ra, "1")[0] == a
    p = run([DOCKER_CLI, "login", "-u", ADMIN_AUTH[0], "--password-stdin", caches.host], env=docker_engine.env,
            input=ADMIN_PASSWORD + "\n")
    assert "Login Succeeded" in p.stdout
    assert docker_engine.pull(f"{caches.host}/{rb}:1") == b
    assert docker_engine.run_sh(f"{caches.host}/{rb}:1", "cat /id.txt") == f"b {unique}"
    docker_engine.remove(f"{caches.host}/{rb}:1")
    caches.wait_stored(ra, "1")
    caches.wait_stored(rb, "1")
    # The upstream gone: what is cached still pulls (by tag, past a TTL of 0, and by digest) ...
    upstream.stop()
    caches.configure(org, upstream.url, upstreamNamespace="library", tagTTL=0)
    assert caches.pull(ra, "1")[0] == a
    assert caches.pull(ra, a)[0] == a
    assert docker_engine.pull(f"{caches.host}/{rb}:1") == b
    docker_engine.remove(f"{caches.host}/{rb}:1")
    # ... and what is not fails with a clear error.
    status, code, message = _error(caches.v2("GET", f"{rc}/manifests/1", rc, {"Accept": ALL_MANIFEST_TYPES}))
    assert (status, code) == (503, "UNAVAILABLE")
    assert upstream.url in message and "unavailable" in message
    with pytest.raises(CommandError, match="503"):
        caches.pull(rc, "1")
    with pytest.raises(CommandError):
        docker_engine.pull(f"{caches.host}/{rc}:1")


def test_a_tag_moved_upstream_is_seen_after_its_ttl(caches: Caches, upstreams: Callable[..., ReferenceRegistry],
                                                    unique: str) -> None:
    upstream = upstreams()
    first = caches.push_upstream(upstream, f"app{unique}", "latest", f"first {unique}")
    org = caches.make(upstream.url, tagTTL=3600)
    repo = f"{org}/app{unique}"
    assert caches.pull(repo, "latest")[0] == first
    caches.wait_stored(repo, "latest")
    second = caches.push_upstream(upstream, f"app{unique}", "latest", f"second {unique}")
    assert second != first
    assert caches.pull(repo, "latest")[0] == first  # within the TTL: the cached tag, no upstream check
    caches.configure(org, upstream.url, tagTTL=1)
    time.sleep(1.5)
    assert caches.pull(repo, "latest")[0] == second
    deadline = time.monotonic() + 60
    while caches.v2("HEAD", f"{repo}/manifests/latest", repo,
                    {"Accept": ALL_MANIFEST_TYPES}).headers.get("Docker-Content-Digest") != second:
        assert time.monotonic() < deadline, "the moved tag was not stored"
        time.sleep(0.2)
    upstream.stop()
    assert caches.pull(repo, "latest")[0] == second
    assert caches.pull(repo, first)[0] == first  # the old image stays until pruned or collected


def test_a_tag_list_shows_the_upstreams_tags_and_the_cached_ones_while_it_is_down(
        caches: Caches, upstreams: Callable[..., ReferenceRegistry], unique: str) -> None:
    upstream = upstreams()
    for tag in ("1", "2", "Latest"):
        caches.push_upstream(upstream, f"app{unique}", tag, f"{tag} {unique}")
    org = caches.make(upstream.url, tagTTL=0)
    repo = f"{org}/app{unique}"
    # Nothing cached yet: the upstream's tags (skopeo, a real client, lists them).
    assert caches.skopeo.list_tags(f"{caches.host}/{repo}", "--creds", ADMIN_CREDS) == ["1", "2", "Latest"]
    caches.pull(repo, "2")
    caches.wait_stored(repo, "2")
    caches.push_upstream(upstream, f"app{unique}", "3", f"3 {unique}")
    r = caches.v2("GET", f"{repo}/tags/list?n=2", repo)  # paged in the spec's order, as for any repository
    assert (r.status, r.json()["tags"]) == (200, ["1", "2"])
    assert r.headers["Link"] == f'</v2/{repo}/tags/list?n=2&last=2>; rel="next"'
    assert caches.v2("GET", f"{repo}/tags/list?n=2&last=2", repo).json()["tags"] == ["3", "Latest"]
    # The upstream down: what is cached, and only that, is listed.
    upstream.stop()
    assert caches.skopeo.list_tags(f"{caches.host}/{repo}", "--creds", ADMIN_CREDS) == ["2"]
    status, code, _ = _error(caches.v2("GET", f"{org}/other{unique}/tags/list", f"{org}/other{unique}"))
    assert (status, code) == (503, "UNAVAILABLE")


def test_pushes_and_deletes_are_refused(caches: Caches, upstreams: Callable[..., ReferenceRegistry],
                                        oci_layout: Callable[..., Path], unique: str) -> None:
    upstream = upstreams()
    digest = caches.push_upstream(upstream, f"app{unique}", "1", f"x {unique}")
    org = caches.make(upstream.url)
    repo = f"{org}/app{unique}"
    caches.pull(repo, "1")
    caches.wait_stored(repo, "1")
    layout = oci_layout("2", f"pushed {unique}")
    with pytest.raises(CommandError, match="pull-through cache"):
        caches.skopeo.copy(f"oci:{layout}:2", f"docker://{caches.host}/{repo}:2", "--dest-creds", ADMIN_CREDS)
    scope = f"repository:{repo}:pull,push,delete"
    for method, path in (("POST", f"{repo}/blobs/uploads/"), ("PUT", f"{repo}/manifests/2"),
                         ("DELETE", f"{repo}/manifests/{digest}"), ("DELETE", f"{repo}/manifests/1")):
        r = caches.client.v2(method, path, scope, ADMIN_AUTH, data=b"{}")
        status, code, message = _error(r)
        assert (status, code) == (403, "DENIED"), (method, path)
        assert f"{org} is a pull-through cache of {upstream.url}" in message
    assert caches.pull(repo, "1")[0] == digest


def test_an_upstream_with_basic_auth(caches: Caches, upstreams: Callable[..., ReferenceRegistry],
                                     tmp_path: Path, unique: str) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    upstream = upstreams(htpasswd_file(tmp_path / "htpasswd", "mirror", password))
    digest = caches.push_upstream(upstream, f"app{unique}", "1", f"x {unique}", creds=f"mirror:{password}")
    org = caches.make(upstream.url, username="mirror", password="wrong")
    repo = f"{org}/app{unique}"
    status, code, message = _error(caches.v2("GET", f"{repo}/manifests/1", repo, {"Accept": ALL_MANIFEST_TYPES}))
    assert (status, code) == (403, "DENIED") and "refused" in message
    setting = caches.configure(org, upstream.url, username="mirror", password=password)
    assert setting["hasPassword"] is True and "password" not in setting
    assert caches.pull(repo, "1")[0] == digest
    caches.wait_stored(repo, "1")
    # Changing something else keeps the password.
    setting = caches.configure(org, upstream.url, username="mirror", tagTTL=0)
    assert setting["hasPassword"] is True
    assert caches.pull(repo, "1")[0] == digest
    assert password not in caches.proc.log_path.read_text()


def test_reads_need_the_namespace_pull_permission(caches: Caches, upstreams: Callable[..., ReferenceRegistry],
                                                  unique: str) -> None:
    upstream = upstreams()
    caches.push_upstream(upstream, f"app{unique}", "1", f"x {unique}")
    org = caches.make(upstream.url)
    repo = f"{org}/app{unique}"
    r = caches.client.v2("GET", f"{repo}/manifests/1", f"repository:{repo}:pull", None,
                         headers={"Accept": ALL_MANIFEST_TYPES})
    assert r.status == 401
    with pytest.raises(CommandError):
        caches.pull(repo, "1", creds=None)
    # Nothing was fetched for the anonymous client: no repository was made.
    assert caches.client.api("GET", f"/repositories/{repo}", ADMIN_AUTH).status == 404

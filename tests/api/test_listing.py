"""end-8a/8b (tags/list) and the Docker _catalog, with n, last and the Link header."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.api.helpers import Registry, error_codes
from tests.oci import OCI_MANIFEST


async def tags(reg: Registry, name: str, query: str = "") -> tuple[int, list[str] | None, str | None]:
    async with reg.http.get(reg.url(f"/v2/{name}/tags/list{query}")) as r:
        if r.status != 200:
            return r.status, None, None
        body = await r.json()
        assert body["name"] == name
        return r.status, body["tags"], r.headers.get("Link")


def next_path(link: str) -> str:
    m = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert m, link
    return m.group(1)


async def test_tags_list_order_and_pagination(reg: Registry, repo_name: str) -> None:
    _, body = await reg.image(repo_name, "a")
    names = ["b", "C", "a", "D10", "d9", "e", "F", "latest", "v1.0", "V2", "_x"]
    for t in names:
        if t != "a":
            assert (await reg.put_manifest(repo_name, t, body, OCI_MANIFEST)).status == 201
    # lexical order, case-insensitive (the spec's words); byte order breaks ties
    expected = sorted(set(names), key=lambda s: (s.lower(), s))
    status, got, link = await tags(reg, repo_name)
    assert status == 200 and got == expected and link is None

    # n, last, and following Link to the end
    seen: list[str] = []
    path: str | None = f"/v2/{repo_name}/tags/list?n=3"
    while path:
        async with reg.http.get(reg.url(path)) as r:
            assert r.status == 200
            page = (await r.json())["tags"]
            link = r.headers.get("Link")
        assert len(page) == 3 or link is None
        seen += page
        path = next_path(link) if link else None
    assert seen == expected

    status, got, _ = await tags(reg, repo_name, "?n=2&last=" + expected[3])
    assert got == expected[4:6]
    status, got, link = await tags(reg, repo_name, "?last=" + expected[-2])
    assert got == expected[-1:] and link is None
    status, got, link = await tags(reg, repo_name, "?n=0")
    assert got == [] and link is None
    status, got, link = await tags(reg, repo_name, f"?n={len(expected)}")
    assert got == expected and link is None
    status, got, link = await tags(reg, repo_name, "?n=99999999999999999999999999")
    assert status == 200 and got == expected


async def test_tags_list_of_unknown_repository(reg: Registry, repo_name: str) -> None:
    async with reg.http.get(reg.url(f"/v2/{repo_name}/tags/list")) as r:
        assert r.status == 404
        assert await error_codes(r) == ["NAME_UNKNOWN"]


async def test_tags_list_empty_repository(reg: Registry, repo_name: str) -> None:
    await reg.image(repo_name)  # by digest only
    status, got, _ = await tags(reg, repo_name)
    assert status == 200 and got == []


@pytest.mark.parametrize("query", ["?n=-1", "?n=abc", "?n=1.5", "?n=%C2%B2", "?n="])
async def test_bad_n_is_400(reg: Registry, repo_name: str, query: str) -> None:
    await reg.image(repo_name, "t")
    async with reg.http.get(reg.url(f"/v2/{repo_name}/tags/list{query}")) as r:
        assert r.status == 400, query
        await error_codes(r)
    async with reg.http.get(reg.url(f"/v2/_catalog{query}")) as r:
        assert r.status == 400, query


async def test_catalog_pagination(reg: Registry) -> None:
    prefix = f"cat{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}/r{i}" for i in range(5)]
    for n in names:
        await reg.push_blob(n)
    # walk the whole catalog in pages of 2, starting just before our prefix
    seen: list[str] = []
    path: str | None = f"/v2/_catalog?n=2&last={prefix}"
    while path:
        async with reg.http.get(reg.url(path)) as r:
            assert r.status == 200
            page = (await r.json())["repositories"]
            link = r.headers.get("Link")
        assert len(page) <= 2
        seen += page
        if page and not page[-1].startswith(prefix):
            break
        path = next_path(link) if link else None
    assert [s for s in seen if s.startswith(prefix)] == names
    async with reg.http.get(reg.url("/v2/_catalog")) as r:
        everything = (await r.json())["repositories"]
    assert everything == sorted(everything)
    assert set(names) <= set(everything)
    async with reg.http.get(reg.url("/v2/_catalog?n=0")) as r:
        assert (await r.json())["repositories"] == [] and "Link" not in r.headers


async def test_garbage_last_is_not_a_500(reg: Registry, repo_name: str) -> None:
    await reg.image(repo_name, "t")
    for last in ("%00", "a%00b", "x" * 5000, "%FF%FE", "../../etc"):
        async with reg.http.get(reg.url(f"/v2/{repo_name}/tags/list?last={last}")) as r:
            assert r.status in (200, 400), last
        async with reg.http.get(reg.url(f"/v2/_catalog?last={last}")) as r:
            assert r.status in (200, 400), last

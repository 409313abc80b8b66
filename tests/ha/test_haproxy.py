"""HAProxy from the shipped deploy/haproxy.cfg in front of two replicas: its /_ping health check
takes out a replica that answers 503 or is killed, requests go to the other, and a 64 MiB blob
streams through."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.ha.balancers import Balancer
from tests.oci import pulls_whole, push_image
from tests.servers import DtrProcess, create_database

BIG = 64 << 20


@pytest.fixture
def two_replicas(pg_uri: str, tmp_path: Path) -> Iterator[tuple[DtrProcess, DtrProcess, Path]]:
    """Two replicas on one database and one storage directory; the second reaches it through a
    symlink (returned) that the test can point elsewhere to break its storage."""
    url = create_database(pg_uri)
    shared = tmp_path / "shared-storage"
    shared.mkdir()
    link = tmp_path / "b-storage"
    link.symlink_to(shared)
    extra = {"http": {"trusted_proxies": ["127.0.0.1"]}}
    a = DtrProcess(tmp_path / "a", url, {**extra, "storage": {"filesystem": {"rootdirectory": str(shared)}}})
    b = DtrProcess(tmp_path / "b", url, {**extra, "storage": {"filesystem": {"rootdirectory": str(link)}}})
    try:
        yield a.start(), b.start(), link
    finally:
        a.stop()
        b.stop()


async def _states(lb: Balancer, want: dict[str, str]) -> None:
    """Wait (bounded) until HAProxy's health checks show each replica in the wanted state."""
    for _ in range(300):
        states = await asyncio.to_thread(lb.server_states)
        if all(states[r] == s for r, s in want.items()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"HAProxy shows {states}, wanted {want}\n{lb.log_tail()}")


async def _all_answer(http: aiohttp.ClientSession, lb: Balancer, repo: str, manifest: bytes) -> None:
    """Every one of a run of pulls through the balancer succeeds."""
    for _ in range(20):
        await pulls_whole(http, lb.url, repo, "v1", manifest)


async def test_haproxy_routes_around_a_failing_replica(
    two_replicas: tuple[DtrProcess, DtrProcess, Path], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    a, b, b_storage = two_replicas
    lb = Balancer("haproxy", tmp_path / "haproxy", [a.host, b.host]).start()
    try:
        await _states(lb, {a.host: "UP", b.host: "UP", lb.replicas[2]: "DOWN"})
        manifest = await push_image(http, lb.url, "ha/app", "v1", b'{"os": "linux"}', [b"layer one"])

        # B's storage breaks: its /_ping says 503, HAProxy takes it out, A answers everything.
        b_storage.unlink()
        b_storage.write_bytes(b"not a directory")
        async with http.get(f"{b.url}/_ping") as r:
            assert r.status == 503
        await _states(lb, {b.host: "DOWN", a.host: "UP"})
        await _all_answer(http, lb, "ha/app", manifest)

        # B recovers and comes back; then A is killed and B answers everything.
        b_storage.unlink()
        b_storage.symlink_to(tmp_path / "shared-storage")
        await _states(lb, {b.host: "UP"})
        a.kill()
        await _states(lb, {a.host: "DOWN", b.host: "UP"})
        await _all_answer(http, lb, "ha/app", manifest)
    finally:
        lb.stop()


async def test_haproxy_streams_a_64_mib_blob(
    two_replicas: tuple[DtrProcess, DtrProcess, Path], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    a, b, _ = two_replicas
    lb = Balancer("haproxy", tmp_path / "haproxy", [a.host, b.host]).start()
    try:
        await _states(lb, {a.host: "UP", b.host: "UP"})
        piece = os.urandom(1 << 20)
        digest = "sha256:" + hashlib.sha256(piece * (BIG // len(piece))).hexdigest()

        async def body() -> AsyncIterator[bytes]:  # chunked: the balancer cannot know the size
            for _ in range(BIG // len(piece)):
                yield piece

        async with http.post(f"{lb.url}/v2/ha/big/blobs/uploads/?digest={digest}", data=body(),
                             headers={"Content-Type": "application/octet-stream"}) as r:
            assert r.status == 201, await r.text()
        h, size = hashlib.sha256(), 0
        async with http.get(f"{lb.url}/v2/ha/big/blobs/{digest}") as r:
            assert r.status == 200
            async for chunk in r.content.iter_chunked(1 << 20):
                h.update(chunk)
                size += len(chunk)
        assert (size, f"sha256:{h.hexdigest()}") == (BIG, digest)
    finally:
        lb.stop()

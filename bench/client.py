"""HTTP clients for the bench: a small registry client (with Docker token auth), curl, wrk, test data.

The byte-moving paths avoid Python where it could be the bottleneck: monolithic pushes and all
pulls go through curl; chunked and concurrent pushes send ready ``bytes``/mmap slices with aiohttp.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import mmap
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import aiohttp

BENCH = Path(__file__).resolve().parent
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MB = 1_000_000
MiB = 1 << 20


class BenchError(Exception):
    """A registry answered something the bench did not expect; the message says what."""


def sha256(data: bytes | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


# -- test data ----------------------------------------------------------------------------


class DataFile:
    """A file of random bytes, made once; ``variant(i)`` rewrites its first 16 bytes so each push
    is a distinct blob, and returns the new digest (computed before any timing starts)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size
        if not path.exists() or path.stat().st_size != size:
            with open(path, "wb") as f:
                left = size
                while left:
                    n = min(left, 64 * MiB)
                    f.write(os.urandom(n))
                    left -= n
        self._fd = os.open(path, os.O_RDWR)
        self.map = mmap.mmap(self._fd, size)
        self.digest = ""

    def variant(self, tag: str) -> str:
        head = hashlib.sha256(tag.encode()).digest()[:16]
        self.map[:16] = head
        self.map.flush(0, mmap.PAGESIZE)
        self.digest = "sha256:" + hashlib.sha256(self.map).hexdigest()
        return self.digest

    def close(self) -> None:
        self.map.close()
        os.close(self._fd)


# -- registry client ----------------------------------------------------------------------

_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes


class Registry:
    """Requests against one registry; answers a Bearer challenge with a token from its realm."""

    def __init__(self, session: aiohttp.ClientSession, base: str, creds: tuple[str, str] | None = None) -> None:
        self.session, self.base, self.creds = session, base.rstrip("/"), creds
        self._tokens: dict[str, str] = {}

    def url(self, path: str) -> str:
        return urljoin(self.base + "/", path)

    async def token(self, challenge: str) -> str:
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", None)
        if realm is None or self.creds is None:
            raise BenchError(f"{self.base}: got a challenge the bench cannot answer: {challenge}")
        auth = aiohttp.BasicAuth(*self.creds)
        async with self.session.get(realm, params=params, auth=auth) as r:
            body = await r.read()
            if r.status != 200:
                raise BenchError(f"token endpoint {realm} answered {r.status}: {body[:300]!r}")
        data = json.loads(body)
        return str(data.get("token") or data["access_token"])

    async def pull_token(self, repo: str) -> str | None:
        """A bearer token for pulling ``repo``, or None when the registry asks for no auth."""
        async with self.session.get(self.url(f"/v2/{repo}/tags/list")) as r:
            await r.read()
            challenge = r.headers.get("WWW-Authenticate", "")
        if r.status != 401:
            return None
        if not challenge.lower().startswith("bearer"):
            raise BenchError(f"{self.base}: 401 without a Bearer challenge ({challenge!r})")
        return await self.token(challenge)

    async def request(self, method: str, path: str, *, data: Any = None, headers: dict[str, str] | None = None,
                      ok: tuple[int, ...] = (200, 201, 202, 204)) -> Reply:
        url = self.url(path)
        scope_key = _scope_key(url)
        for attempt in range(2):
            hdrs = dict(headers or {})
            tok = self._tokens.get(scope_key)
            if tok:
                hdrs["Authorization"] = f"Bearer {tok}"
            async with self.session.request(method, url, data=data, headers=hdrs) as r:
                body = await r.read()
                if r.status == 401 and attempt == 0 and self.creds:
                    self._tokens[scope_key] = await self.token(r.headers.get("WWW-Authenticate", ""))
                    continue
                if r.status not in ok:
                    raise BenchError(f"{method} {url} -> {r.status}: {body[:300]!r}")
                return Reply(r.status, r.headers, body)
        raise AssertionError("unreachable")

    async def prepare_push(self, repo: str) -> None:
        """With auth on, DTR pushes only into existing repositories (or with createRepositoryOnPush):
        create ``repo`` through the admin API (DTR's ``POST /api/v0/repositories/{namespace}``)."""
        if self.creds is None:
            return
        ns, _, name = repo.rpartition("/")
        auth = aiohttp.BasicAuth(*self.creds)
        async with self.session.post(self.url(f"/api/v0/repositories/{ns}"), auth=auth,
                                     json={"name": name, "visibility": "public"}) as r:
            body = await r.read()
            if r.status in (200, 201, 409):
                return
        async with self.session.post(self.url("/api/v0/meta/settings"), auth=auth,
                                     json={"createRepositoryOnPush": True}) as r2:
            body2 = await r2.read()
            if r2.status in (200, 202, 204):
                return
        raise BenchError(f"cannot create {repo} on {self.base}: POST /api/v0/repositories/{ns} -> {r.status} "
                         f"{body[:200]!r}; POST /api/v0/meta/settings -> {r2.status} {body2[:200]!r}")

    async def start_upload(self, repo: str) -> str:
        r = await self.request("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,))
        return self.url(r.headers["Location"])

    async def push_blob(self, repo: str, data: bytes | memoryview, digest: str) -> None:
        """POST then one monolithic PUT."""
        loc = await self.start_upload(repo)
        await self.request("PUT", add_query(loc, digest=digest), data=data,
                           headers={"Content-Type": "application/octet-stream"}, ok=(201,))

    async def push_chunked(self, repo: str, data: memoryview, digest: str, chunks: int) -> None:
        """POST, ``chunks`` PATCHes with Content-Range, then PUT ?digest= with no body."""
        loc = await self.start_upload(repo)
        size = len(data)
        step = -(-size // chunks)
        for start in range(0, size, step):
            piece = data[start:start + step]
            r = await self.request("PATCH", loc, data=piece, ok=(202,), headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{start + len(piece) - 1}"})
            loc = self.url(r.headers["Location"])
        await self.request("PUT", add_query(loc, digest=digest), ok=(201,))

    async def mount(self, repo: str, digest: str, source: str) -> None:
        await self.request("POST", f"/v2/{repo}/blobs/uploads/?" + urlencode({"mount": digest, "from": source}),
                           ok=(201,))

    async def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str = OCI_MANIFEST) -> None:
        await self.request("PUT", f"/v2/{repo}/manifests/{ref}", data=body,
                           headers={"Content-Type": media_type}, ok=(201,))


def _scope_key(url: str) -> str:
    m = re.search(r"/v2/(.+?)/(?:manifests|blobs|tags)/", url)
    return m.group(1) if m else ""


def image_manifest(config: bytes, layers: list[tuple[str, int]], layer_type: str = OCI_LAYER_GZIP) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": d, "size": s} for d, s in layers],
    }).encode()


async def seed_small_image(reg: Registry, repo: str, tag: str, salt: str) -> tuple[bytes, str, bytes, bytes]:
    """A config and one small layer in ``repo`` and a manifest tagged ``tag``; returns
    (manifest, its digest, config, layer)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                         "comment": salt}).encode()
    layer = os.urandom(1024)
    await reg.prepare_push(repo)
    await reg.push_blob(repo, config, sha256(config))
    await reg.push_blob(repo, layer, sha256(layer))
    manifest = image_manifest(config, [(sha256(layer), len(layer))])
    await reg.put_manifest(repo, tag, manifest)
    return manifest, sha256(manifest), config, layer


# -- curl ---------------------------------------------------------------------------------


def curl(args: list[str], expect: str) -> tuple[float, int]:
    """Run curl; returns (seconds by curl's own clock, bytes moved). Fails unless the status is ``expect``."""
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-H", "Expect:", "-w", "%{http_code} %{time_total} %{size_upload} "
         "%{size_download}", *args], capture_output=True, text=True, check=False)
    parts = out.stdout.split()
    if out.returncode != 0 or len(parts) != 4 or parts[0] != expect:
        raise BenchError(f"curl {' '.join(args)}: exit {out.returncode}, {out.stdout!r} {out.stderr.strip()!r}")
    return float(parts[1]), int(parts[2]) + int(parts[3])


async def curl_put_file(reg: Registry, repo: str, data: DataFile, auth: str | None = None) -> float:
    """POST (aiohttp) + monolithic PUT of the whole file (curl); wall seconds for both."""
    t0 = time.perf_counter()
    loc = await reg.start_upload(repo)
    hdrs = ["-H", f"Authorization: Bearer {auth}"] if auth else []
    await asyncio.to_thread(curl, ["-X", "PUT", "-T", str(data.path), "-H", "Content-Type: application/octet-stream",
                                   *hdrs, add_query(loc, digest=data.digest)], "201")
    return time.perf_counter() - t0


async def curl_get(url: str) -> tuple[float, int]:
    return await asyncio.to_thread(curl, [url], "200")


# -- wrk, ab -----------------------------------------------------------------------------


def wrk(url: str, method: str, headers: dict[str, str], conns: int, seconds: float, threads: int = 2
        ) -> dict[str, Any]:
    """One wrk run; requests/s, p99 (ms) and the error counts from ``wrk.lua``."""
    cmd = ["wrk", f"-t{min(threads, conns)}", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(BENCH / "wrk.lua"), url, "--", method, *[f"{k}: {v}" for k, v in headers.items()]]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("{")), None)
    if out.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line)
    secs = r["duration_us"] / 1e6
    errors = sum(r["errors"].values())
    return {"rps": r["requests"] / secs, "p99_ms": r["p99_us"] / 1000, "p50_ms": r["p50_us"] / 1000,
            "requests": r["requests"], "errors": errors, "error_detail": r["errors"]}


def ab_head(url: str, headers: dict[str, str], conns: int, seconds: float) -> dict[str, Any]:
    """HEAD load with ApacheBench (``ab -i -k``): wrk 4.1 waits for a body after a HEAD response
    that has a Content-Length, so it cannot drive HEAD. p99 has ab's 1 ms resolution."""
    cmd = ["ab", "-i", "-k", "-q", "-c", str(conns), "-t", str(max(1, round(seconds))), "-n", "100000000", "-s", "10",
           *[a for k, v in headers.items() for a in ("-H", f"{k}: {v}")], url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    text = out.stdout

    def field(pattern: str, default: str | None = None) -> str:
        m = re.search(pattern, text, re.MULTILINE)
        if m is None:
            if default is not None:
                return default
            raise BenchError(f"ab output has no {pattern!r} (exit {out.returncode}): {text[-800:]} {out.stderr[-500:]}")
        return m.group(1)

    done = int(field(r"^Complete requests:\s+(\d+)"))
    failed = int(field(r"^Failed requests:\s+(\d+)"))
    non2xx = int(field(r"^Non-2xx responses:\s+(\d+)", "0"))
    return {"rps": float(field(r"^Requests per second:\s+([\d.]+)")), "p99_ms": float(field(r"^\s+99%\s+(\d+)")),
            "p50_ms": float(field(r"^\s+50%\s+(\d+)")), "requests": done, "errors": failed + non2xx,
            "error_detail": {"failed": failed, "non_2xx": non2xx}}

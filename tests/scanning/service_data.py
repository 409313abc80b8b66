"""Test data for the scan service and ``dtr scan``: layers made with ``tarfile`` from this machine's
real Debian 12 files (``/usr/lib/os-release``, ``/var/lib/dpkg/status``), real advisories written
into the vulnerability tables as an import would, and helpers to push images and wait for jobs.

The advisories are real facts for Debian 12, as an OSV record with NVD's CVSS says them (no
vendor severity: the band comes from the score): CVEs still open in bookworm (coreutils
CVE-2016-2781, tar CVE-2005-2541, glibc CVE-2010-4756, never fixed, found by every scanner in
every Debian image) and CVEs fixed in versions older than this machine's (zlib CVE-2022-37434,
fixed in 1:1.2.11.dfsg-4.1; glibc CVE-2023-4911, fixed in 2.36-9+deb12u3, both from the packages'
own changelogs here): these match nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import tarfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.jobs.service import JobService, ended
from tests.oci import OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST, descriptor, dumps, push_blob, put_manifest

OS_RELEASE = Path("/usr/lib/os-release")
DPKG_STATUS = Path("/var/lib/dpkg/status")

#: Fast job polling for the in-process app (as tests.jobs.conftest.FAST_JOBS).
FAST_JOBS: dict[str, Any] = {"poll_interval": 0.2, "heartbeat_interval": 0.5, "worker_timeout": 5,
                             "retry_backoff": 0.5, "stop_timeout": 2}


@dataclasses.dataclass(frozen=True)
class Advisory:
    vuln_id: str
    package: str
    state: str
    fixed: str = ""
    severity: str = ""
    cvss: float | None = None
    summary: str = ""
    namespace: str = "debian:12"


#: Real bookworm facts (see the module docstring).
OPEN = [
    Advisory("CVE-2016-2781", "coreutils", "not_fixed", cvss=6.5,
             summary="chroot in GNU coreutils, when used with --userspec, allows local users to escape to the "
                     "parent session via a crafted TIOCSTI ioctl call"),
    Advisory("CVE-2005-2541", "tar", "not_fixed", cvss=10.0,
             summary="Tar 1.15.1 does not properly warn the user when extracting setuid or setgid files"),
    Advisory("CVE-2010-4756", "glibc", "not_fixed", cvss=4.0,
             summary="The glob implementation in the GNU C Library allows remote authenticated users to cause "
                     "a denial of service (CPU and memory consumption) via crafted glob expressions"),
]
FIXED_BEFORE = [
    Advisory("CVE-2022-37434", "zlib", "fixed", fixed="1:1.2.11.dfsg-4.1", severity="medium", cvss=9.8,
             summary="zlib through 1.2.12 has a heap-based buffer over-read or buffer overflow in inflate"),
    Advisory("CVE-2023-4911", "glibc", "fixed", fixed="2.36-9+deb12u3", severity="high", cvss=7.8,
             summary="A buffer overflow in the GNU C Library's dynamic loader ld.so (GLIBC_TUNABLES)"),
]


def band(cvss: float | None) -> str:
    """DTR's band of a CVSS score (for an advisory without a vendor severity)."""
    if cvss is None:
        return ""
    return "critical" if cvss >= 7 else "major" if cvss >= 4 else "minor"


def tar_layer(files: Iterable[tuple[str, bytes]]) -> bytes:
    """An uncompressed tar of (path, content) regular files, in order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def stanzas(status: bytes) -> list[bytes]:
    """The paragraphs of a dpkg status file."""
    return [p.strip(b"\n") + b"\n" for p in status.split(b"\n\n") if p.strip()]


def fields(stanza: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in stanza.decode().splitlines():
        if line and not line[0].isspace() and ":" in line:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


#: dpkg's states of a package whose files are on disk (``triggers-pending``: libc-bin while an
#: ``apt-get install`` elsewhere on this machine waits for ldconfig).
ON_DISK = ("installed", "half-configured", "unpacked", "triggers-awaited", "triggers-pending")


def installed(status: bytes) -> dict[str, tuple[str, str]]:
    """Installed binary package -> (source package, source version), as dpkg-query says them."""
    out = {}
    for s in stanzas(status):
        f = fields(s)
        if f.get("Status", "").split()[-1:] not in [[state] for state in ON_DISK]:
            continue
        source, _, version = f.get("Source", f["Package"]).partition(" ")
        out[f["Package"]] = (source, version.strip("()") or f["Version"])
    return out


def os_layer() -> bytes:
    """A base layer: the distribution's os-release (both paths, as Debian ships them)."""
    data = OS_RELEASE.read_bytes()
    return tar_layer([("etc/os-release", data), ("usr/lib/os-release", data)])


def dpkg_layer(status: bytes, marker: str = "") -> bytes:
    """A layer holding a dpkg status database (``marker`` makes two equal ones distinct blobs)."""
    files = [("var/lib/dpkg/status", status)]
    if marker:
        files.append((f"etc/{marker}", marker.encode()))
    return tar_layer(files)


def config(arch: str = "amd64", marker: str = "") -> bytes:
    return dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                  "config": {"Labels": {"test": marker or uuid.uuid4().hex}}})


async def push(http: aiohttp.ClientSession, base: str, repo: str, ref: str, layers: list[tuple[str, bytes]],
               cfg: bytes | None = None) -> str:
    """Push an image of (media type, blob) layers at ``ref``; its manifest digest."""
    cfg = cfg or config()
    for blob in (cfg, *(b for _, b in layers)):
        await push_blob(http, base, repo, blob)
    body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, cfg),
                  "layers": [descriptor(t, b) for t, b in layers]})
    status, info = await put_manifest(http, base, repo, ref, body)
    assert status == 201, info
    return str(info)


def plain(*blobs: bytes) -> list[tuple[str, bytes]]:
    return [(OCI_LAYER, b) for b in blobs]


def gzipped(blob: bytes) -> tuple[str, bytes]:
    return (OCI_LAYER_GZIP, blob)


async def add_advisories(engine: AsyncEngine, advisories: Iterable[Advisory], feed: str = "debian",
                         changes: bool = False) -> None:
    """Import ``advisories`` as feed ``feed``'s next version (its rows, the vulnerabilities, and
    with ``changes`` the ``vuln_changes`` an import writes), in one transaction."""
    rows = list(advisories)
    async with engine.begin() as conn:
        await conn.execute(text("""
            INSERT INTO vuln_feeds (name, url, version, records, updated_at, checked_at)
            VALUES (:f, '', 1, :n, now(), now())
            ON CONFLICT (name) DO UPDATE SET version = vuln_feeds.version + 1, records = vuln_feeds.records + :n,
                                             updated_at = now(), checked_at = now()"""), {"f": feed, "n": len(rows)})
        for a in rows:
            await conn.execute(text("""
                INSERT INTO vuln_advisories (feed, vuln_id, namespace, package, state, fixed, severity, cvss_score)
                VALUES (:feed, :id, :ns, :pkg, :state, :fixed, :sev, :cvss)"""),
                {"feed": feed, "id": a.vuln_id, "ns": a.namespace, "pkg": a.package, "state": a.state,
                 "fixed": a.fixed, "sev": a.severity, "cvss": a.cvss})
            await conn.execute(text("""
                INSERT INTO vulnerabilities (id, summary, cvss_score) VALUES (:id, :s, :cvss)
                ON CONFLICT (id) DO UPDATE SET summary = excluded.summary, cvss_score = excluded.cvss_score"""),
                {"id": a.vuln_id, "s": a.summary, "cvss": a.cvss})
            if changes:
                await conn.execute(text("INSERT INTO vuln_changes (namespace, package) VALUES (:ns, :pkg)"),
                                   {"ns": a.namespace, "pkg": a.package})


async def wait_jobs(jobs: JobService, ids: Iterable[str], within: float = 60) -> list[dict[str, Any]]:
    """Each job once it has ended (AssertionError with its log when it does not in time)."""
    out = []
    deadline = time.monotonic() + within
    for job_id in ids:
        while True:
            job = await jobs.get(uuid.UUID(job_id))
            if ended(job):
                out.append(dict(job))
                break
            if time.monotonic() > deadline:
                logs = "\n".join(line["data"] for line in await jobs.logs(uuid.UUID(job_id)))
                raise AssertionError(f"job {job_id} still {job['status']}:\n{logs}")
            await asyncio.sleep(0.1)
    return out


async def job_log(jobs: JobService, job_id: str) -> list[str]:
    return [line["data"] for line in await jobs.logs(uuid.UUID(job_id))]


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())

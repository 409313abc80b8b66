"""``dtr scan`` and ``dtr vulndb``: the scanner from the admin's shell (on the configured database
and storage, as ``dtr gc`` is).

``dtr scan REPO[:TAG|@DIGEST]`` queues a scan of the image (of each image of an index, or of
``--platform``'s) and follows the jobs with a progress bar, then prints each image's counts; exit
status 0 when every scan completed, 1 when one failed. As with ``dtr gc``, when no running dtr
process runs scans (or with ``--local``) the command runs them itself.

``dtr vulndb update`` refreshes the database from its feeds (a job, followed the same way; the
re-match it queues is run here too when no dtr process would); ``status`` lists the feeds;
``export FILE`` writes a signed offline bundle; ``import FILE`` imports one (refused, exit 1, when
its checksum or signature fails or its signer is not trusted) and re-matches the images.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dtr.config import Config, load_config
from dtr.errors import UsageError
from dtr.progress import ProgressBar
from dtr.registry.names import DIGEST_RE, TAG_RE, is_name

if TYPE_CHECKING:  # imported when run: `dtr --help` stays quick
    from dtr.jobs.service import JobService


def parse_reference(text: str) -> tuple[str, str]:
    """``REPO:TAG``, ``REPO@DIGEST`` or ``REPO`` (tag ``latest``) as (repository, reference)."""
    name, at, digest = text.partition("@")
    if at:
        if not DIGEST_RE.fullmatch(digest):
            raise argparse.ArgumentTypeError(f"{digest!r} is not a digest")
        ref = digest
    else:
        head, colon, tag = text.rpartition(":")
        name, ref = (head, tag) if colon and "/" not in tag else (text, "latest")
        if not TAG_RE.fullmatch(ref):
            raise argparse.ArgumentTypeError(f"{ref!r} is not a tag")
    if not is_name(name):
        raise argparse.ArgumentTypeError(f"{name!r} is not a repository name")
    return name, ref


def parse_platform(text: str) -> tuple[str, str]:
    """``OS/ARCH`` or ``OS/ARCH/VARIANT`` as (os, architecture[/variant])."""
    os_, sep, arch = text.partition("/")
    if not os_ or not sep or not arch or arch.count("/") > 1 or any(not p for p in arch.split("/")):
        raise argparse.ArgumentTypeError(f"expected OS/ARCH (linux/amd64, linux/arm64/v8), got {text!r}")
    return os_, arch


async def _with_jobs(cfg: Config, work: Callable[[JobService], Awaitable[int]]) -> int:
    from dtr.db.engine import Database
    from dtr.jobs.service import JobService

    db = await Database.open(cfg)
    try:
        return await work(JobService(db.engine, cfg.jobs.stop_timeout, cfg.jobs.worker_timeout))
    finally:
        await db.close()


def _enabled(cfg: Config) -> bool:
    if not cfg.scanning.enabled:
        print("dtr: scanning is disabled (scanning.enabled: false)", file=sys.stderr)
    return cfg.scanning.enabled


@contextlib.asynccontextmanager
async def _worker_if_needed(cfg: Config, jobs: JobService, action: str, local: bool) -> AsyncIterator[None]:
    """A worker for ``action`` in this command for the block, when ``local`` or when no running dtr
    process runs that action."""
    from dtr.jobs.cli import _live_worker, _local_worker

    if not local and await _live_worker(jobs, action):
        yield
        return
    if not local:
        print(f"no running dtr process runs {action} jobs: running it here", file=sys.stderr)
    async with _local_worker(cfg, jobs, action):
        yield


# -- dtr scan -------------------------------------------------------------------------------------


async def scan(cfg: Config, jobs: JobService, repository: str, reference: str, platform: tuple[str, str] | None,
               follow: bool = True, local: bool = False, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Queue the scans and follow them; print each image's counts. The exit status."""
    from dtr.jobs.cli import follow as follow_job
    from dtr.scanning.service import ScanTargetError, queue_scan

    try:
        async with jobs.engine.begin() as conn:
            queued = await queue_scan(jobs, conn, repository, reference, platform=platform)
    except ScanTargetError as e:
        print(f"dtr: {e}", file=err)
        return 1
    for job in queued:
        print(f"queued scan job {job['id']} for {repository}@{job['parameters']['digest']}", file=err)
    if not follow:
        for job in queued:
            print(job["id"], file=out)
        return 0
    status = 0
    try:
        async with _worker_if_needed(cfg, jobs, "scan", local):
            for job in queued:
                status = max(status, await follow_job(jobs, uuid.UUID(job["id"]), out, err))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\nstopped following; the scans go on (dtr jobs cancel ID stops one)", file=err)
        return 130
    await _print_summary(jobs, [job["parameters"]["digest"] for job in queued], out)
    return status


async def _print_summary(jobs: JobService, digests: list[str], out: TextIO) -> None:
    from sqlalchemy import select

    from dtr.scanning.results import COMPLETED
    from dtr.scanning.results import images as scan_images

    async with jobs.engine.connect() as conn:
        rows = {r.digest: r for r in await conn.execute(select(scan_images).where(scan_images.c.digest.in_(digests)))}
    for d in digests:
        r = rows.get(d)
        platform = "/".join(p for p in (r.os, r.architecture) if p) if r is not None else ""
        head = f"{d}" + (f" ({platform})" if platform else "")
        if r is None or r.status != COMPLETED:
            out.write(f"{head}: not scanned" + (f": {r.error}" if r is not None and r.error else "") + "\n")
            continue
        out.write(f"{head}: {r.critical} critical, {r.major} major, {r.minor} minor"
                  + (f" ({r.hidden} hidden by overrides)" if r.hidden else "") + "\n")


def cmd_scan(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if not _enabled(cfg):
        return 1
    repository, reference = args.image
    return asyncio.run(_with_jobs(cfg, lambda jobs: scan(cfg, jobs, repository, reference, args.platform,
                                                        args.follow, args.local)))


# -- dtr vulndb -----------------------------------------------------------------------------------


async def _update(cfg: Config, jobs: JobService, feeds: list[str] | None, follow: bool, local: bool) -> int:
    from dtr.jobs.cli import follow as follow_job
    from dtr.jobs.params import ParameterError
    from dtr.scanning.service import queue_update

    try:
        job = await queue_update(jobs, feeds)
    except ParameterError as e:
        print(f"dtr: {e}", file=sys.stderr)
        return 2
    print(f"queued update_vuln_db job {job['id']}", file=sys.stderr)
    if not follow:
        print(job["id"])
        return 0
    async with _worker_if_needed(cfg, jobs, "update_vuln_db", local):
        status = await follow_job(jobs, uuid.UUID(job["id"]))
    rematch = ((await jobs.get(uuid.UUID(job["id"]))).get("result") or {}).get("rematch")
    if rematch:
        status = max(status, await _follow_rematch(cfg, jobs, rematch, local))
    return status


async def _follow_rematch(cfg: Config, jobs: JobService, job_id: str, local: bool) -> int:
    from dtr.jobs.cli import follow as follow_job

    async with _worker_if_needed(cfg, jobs, "rematch", local):
        return await follow_job(jobs, uuid.UUID(job_id))


def cmd_update(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if not _enabled(cfg):
        return 1
    return asyncio.run(_with_jobs(cfg, lambda jobs: _update(cfg, jobs, args.feed, args.follow, args.local)))


async def status(jobs: JobService, out: TextIO = sys.stdout) -> int:
    """The feeds, their versions, last updates and errors; the images scanned."""
    from sqlalchemy import func, select

    from dtr.scanning import vulndb
    from dtr.scanning.results import COMPLETED
    from dtr.scanning.results import images as scan_images

    def when(t: Any) -> str:
        return t.isoformat(timespec="seconds").replace("+00:00", "Z") if t else "-"

    db = await vulndb.status(jobs.engine)
    async with jobs.engine.connect() as conn:
        images = (await conn.execute(select(func.count()).select_from(scan_images)
                                     .where(scan_images.c.status == COMPLETED))).scalar_one()
    if not db.feeds:
        out.write("no vulnerability feed imported yet (dtr vulndb update, or dtr vulndb import FILE)\n")
    else:
        out.write(f"{'FEED':24}  {'VERSION':>7}  {'RECORDS':>8}  {'UPDATED':20}  {'CHECKED':20}  LAST ERROR\n")
        for f in db.feeds:
            error = f"{f.last_error} ({when(f.last_error_at)})" if f.last_error else "-"
            out.write(f"{f.name:24}  {f.version:>7}  {f.records:>8}  {when(f.updated_at):20}  "
                      f"{when(f.checked_at):20}  {error}\n")
    out.write(f"{images} images scanned\n")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    return asyncio.run(_with_jobs(cfg, lambda jobs: status(jobs)))


def signing_key_path(cfg: Config) -> Path:
    """The bundle signing key: ``scanning.bundle_signing_key``, else ``data_dir/scanning/bundle-signing.pem``."""
    return Path(cfg.scanning.bundle_signing_key or cfg.data_path / "scanning" / "bundle-signing.pem")


async def export(jobs: JobService, path: Path, key_pem: bytes, err: TextIO = sys.stderr) -> int:
    """Write the offline bundle signed with ``key_pem``."""
    from dtr.scanning import bundles

    bar = ProgressBar(err)
    try:
        manifest = await bundles.export_bundle(jobs.engine, path, key_pem, lambda done, total: bar.show(
            {"done": done, "total": total, "message": "records"}))
    finally:
        bar.clear()
    feeds = ", ".join(f"{f['name']} v{f['version']}" for f in manifest.get("feeds", [])) or "no feed imported yet"
    print(f"wrote {path}: {feeds}", file=err)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from dtr.scanning import bundles

    cfg = load_config(args.config)
    key_path = signing_key_path(cfg)
    made = not key_path.exists() and cfg.scanning.bundle_signing_key is None
    try:
        key = bundles.load_signing_key(key_path, create=cfg.scanning.bundle_signing_key is None)
    except FileNotFoundError:
        print(f"dtr: the bundle signing key {key_path} (scanning.bundle_signing_key) does not exist", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"dtr: {e}", file=sys.stderr)
        return 1
    if made:
        print(f"made the bundle signing key {key_path}", file=sys.stderr)
    status = asyncio.run(_with_jobs(cfg, lambda jobs: export(jobs, Path(args.file), key_path.read_bytes())))
    print("importers trust its signer with this public key (dtr vulndb import --trust-key FILE, or "
          "scanning.bundle_trusted_keys):", file=sys.stderr)
    sys.stdout.write(bundles.public_key_pem(key).decode())
    return status


async def import_(cfg: Config, jobs: JobService, path: Path, keys: list[bytes], local: bool = False,
                  err: TextIO = sys.stderr) -> int:
    """Import the bundle (refused: one line, 1); then re-match the images it touches (followed,
    run here when no dtr process would)."""
    from dtr.scanning import bundles
    from dtr.scanning.jobs import changes, describe
    from dtr.scanning.service import database_updated

    bar = ProgressBar(err)
    try:
        results = await bundles.import_bundle(jobs.engine, path, keys, lambda done, total: bar.show(
            {"done": done, "total": total, "message": "records imported"}))
    except bundles.BundleError as e:
        bar.clear()
        print(f"dtr: {path}: bundle refused: {e}", file=err)
        return 1
    bar.clear()
    for r in results:
        print(f"{r.name}: {describe(r)}", file=err)
    detail = changes(results)
    job = await database_updated(jobs.engine, jobs, None if detail is None else {**detail, "bundle": path.name})
    if job is None:
        return 0
    print(f"queued rematch job {job['id']}", file=err)
    return await _follow_rematch(cfg, jobs, job["id"], local)


def cmd_import(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if not _enabled(cfg):
        return 1
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{args.file}: no such file")
    keys = [Path(p).read_bytes() for p in (*cfg.scanning.bundle_trusted_keys, *args.trust_key)]
    if not keys:
        print("dtr: no trusted bundle signer: give --trust-key PEM (or scanning.bundle_trusted_keys)", file=sys.stderr)
        return 1
    return asyncio.run(_with_jobs(cfg, lambda jobs: import_(cfg, jobs, path, keys, args.local)))


_LOCAL_HELP = "run the job in this command (the default when no running dtr process runs it)"


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser,
                 group: Callable[[str, str], argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    """Add ``scan`` and ``vulndb`` to the ``dtr`` command."""
    p = sub.add_parser("scan", help="scan an image for vulnerabilities (follows the scan to its end)",
                       description="Queue a scan of REPO:TAG or REPO@DIGEST (of each image of an index, or of "
                                   "--platform's) and follow it; exit 0 when every scan completed, 1 when one "
                                   "failed.", parents=[common])
    p.add_argument("image", type=parse_reference, metavar="REPO[:TAG|@DIGEST]", help="the image (tag: latest)")
    p.add_argument("--platform", type=parse_platform, metavar="OS/ARCH",
                   help="of an index, only this platform's image (linux/amd64, linux/arm64/v8)")
    p.add_argument("--no-follow", dest="follow", action="store_false", help="queue the scans and exit")
    p.add_argument("--local", action="store_true", help=_LOCAL_HELP)
    p.set_defaults(func=cmd_scan)

    vulndb = group("vulndb", "the vulnerability database")
    p = vulndb.add_parser("update", help="update the database from its feeds (follows the job)", parents=[common])
    p.add_argument("--feed", action="append", metavar="NAME", help="only this feed (repeatable)")
    p.add_argument("--no-follow", dest="follow", action="store_false", help="queue the job and exit")
    p.add_argument("--local", action="store_true", help=_LOCAL_HELP)
    p.set_defaults(func=cmd_update)
    p = vulndb.add_parser("status", help="the feeds: versions, last updates and errors", parents=[common])
    p.set_defaults(func=cmd_status)
    p = vulndb.add_parser("export", help="write a signed offline bundle of the database (for air-gapped sites)",
                          parents=[common])
    p.add_argument("file", help="the bundle to write")
    p.set_defaults(func=cmd_export)
    p = vulndb.add_parser("import", help="import an offline bundle (its signer must be trusted)", parents=[common])
    p.add_argument("file", help="the bundle")
    p.add_argument("--trust-key", action="append", default=[], metavar="PEM",
                   help="a public key file (PEM) whose bundles are trusted, besides scanning.bundle_trusted_keys")
    p.add_argument("--local", action="store_true", help="run the re-match in this command")
    p.set_defaults(func=cmd_import)

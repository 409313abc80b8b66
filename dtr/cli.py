"""The ``dtr`` command: serve, migrate, export the CA, check storage and config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import ssl
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence

from dtr.config import Config, ConfigError, load_config

log = logging.getLogger("dtr")


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the config, bind the listening sockets, then create and serve: a broken environment
    is one line on stderr and exit 1, before anything is created."""
    from dtr.ops.logs import setup_logging
    from dtr.ops.runtime import install_uvloop, tune_malloc
    from dtr.startup import StartupError, bind, problems, server_ssl

    cfg = _load(args)
    setup_logging(cfg.log.level, cfg.log.format)
    try:
        if found := problems(cfg):
            return _failed(found)
        socks = bind(cfg)
        ssl_ctx = server_ssl(cfg)
        tune_malloc()
        install_uvloop()
        return asyncio.run(_serve(cfg, socks, ssl_ctx))
    except StartupError as e:
        return _failed([str(e)])


def _failed(problems: list[str]) -> int:
    """One line on stderr per problem; exit status 1."""
    for problem in problems:
        print(f"dtr: {problem}", file=sys.stderr)
    return 1


async def _serve(cfg: Config, socks: list[socket.socket], ssl_ctx: ssl.SSLContext | None) -> int:
    """Serve on ``socks`` (with ``ssl_ctx``) until SIGTERM/SIGINT (0), or until the database is lost for good (1);
    then drain: /_ping and /health answer 503 for ``http.drain_delay`` s while all else is served (a second
    signal cuts it short), then stop accepting, let requests in flight finish, close. SIGHUP loads the TLS
    certificate files again. systemd hears of each step (``dtr.ops.systemd``: ready, watchdog, stopping)."""
    import contextlib
    import signal

    from aiohttp import web

    from dtr.app import create_app
    from dtr.keys import DATABASE
    from dtr.ops.logs import ACCESS_LINES, AccessLogger
    from dtr.ops.runtime import trim_memory_periodically
    from dtr.ops.systemd import Notifier
    from dtr.ops.tasks import background
    from dtr.ops.views import DRAIN, IN_FLIGHT
    from dtr.startup import reload_ssl

    notify = Notifier.from_environ()
    stop, hurry, serving = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def reload() -> None:
        if ssl_ctx is None:
            log.info("SIGHUP: nothing to reload (no TLS)")
            return
        tell = serving.is_set()  # systemd hears of reloads once dtr is ready, not while it starts
        if tell:
            notify.reloading()
        if problem := reload_ssl(cfg, ssl_ctx):
            log.error("SIGHUP: keeping the certificate in use: %s", problem)
        else:
            log.info("SIGHUP: TLS certificate loaded again; new connections use it")
        if tell:
            notify.ready(f"serving on {cfg.http.addr}")

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reload)  # from the start: SIGHUP's default action would end dtr
    async with background(notify.watchdog()):
        notify.status("starting: opening the database and migrating")
        runner = web.AppRunner(create_app(cfg), access_log_class=AccessLogger,
                               access_log=logging.getLogger("dtr.access"), shutdown_timeout=cfg.http.drain_timeout,
                               handle_signals=False)
        await runner.setup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: (hurry if stop.is_set() else stop).set())
        lost = runner.app[DATABASE].lost
        try:
            sites = [web.SockSite(runner, s, ssl_context=ssl_ctx) for s in socks]
            for site in sites:
                await site.start()
            log.info("dtr serving", extra={"addr": cfg.http.addr, "data_dir": cfg.data_dir,
                                           "storage": cfg.storage_config.driver, "tls": bool(ssl_ctx),
                                           "auth": "on" if cfg.auth.enabled else "off"})
            notify.ready(f"serving on {cfg.http.addr}")
            serving.set()
            async with background(trim_memory_periodically()), background(_set_when(lost, stop)):
                await stop.wait()
            # Health checks fail first, so load balancers send new requests elsewhere while dtr still serves.
            DRAIN.start()
            delay = 0.0 if lost.is_set() else cfg.http.drain_delay
            notify.stopping(f"draining: health checks answer 503 for {delay:g}s")
            log.info("dtr stopping: health checks answer 503 (draining)", extra={"drain_delay_s": delay})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await hurry.wait()
            # Stop accepting, then let requests in flight (uploads above all) finish before closing.
            for site in sites:
                await site.stop()
            notify.status(f"stopping: waiting for {IN_FLIGHT.count} requests in flight")
            log.info("dtr stopping: draining requests in flight",
                     extra={"in_flight": IN_FLIGHT.count, "timeout_s": cfg.http.drain_timeout})
            try:
                async with asyncio.timeout(cfg.http.drain_timeout):
                    await IN_FLIGHT.wait_idle()
            except TimeoutError:
                log.warning("drain timeout: cutting off requests still in flight", extra={"in_flight": IN_FLIGHT.count})
        finally:
            await runner.cleanup()
            ACCESS_LINES.flush()
    if lost.is_set():
        log.error("dtr stopped: the database is lost")
        return 1
    log.info("dtr stopped")
    return 0


async def _set_when(first: asyncio.Event, then: asyncio.Event) -> None:
    await first.wait()
    then.set()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from dtr.db.engine import Database

    async def run() -> None:
        db = await Database.open(_load(args))
        await db.close()

    asyncio.run(run())
    print("database is at the latest schema")
    return 0


def cmd_ca_export(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from dtr.tls import ensure_ca

    cert, _ = ensure_ca(_load(args))
    sys.stdout.write(cert.public_bytes(serialization.Encoding.PEM).decode())
    return 0


def cmd_storage_check(args: argparse.Namespace) -> int:
    from dtr.storage.base import StorageError
    from dtr.storage.factory import create_driver

    cfg = _load(args)

    async def run() -> int:
        driver = create_driver(cfg.storage_config)
        probe = f"/_probe/{uuid.uuid4().hex}"
        data = uuid.uuid4().bytes * 64

        async def read() -> None:
            if await driver.get_content(probe) != data:
                raise AssertionError("read back different bytes than written")

        async def listing() -> None:
            if probe not in await driver.list("/_probe"):
                raise AssertionError(f"{probe} missing from the listing")

        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("write", lambda: driver.put_content(probe, data)),
            ("read", read),
            ("list", listing),
            ("delete", lambda: driver.delete(probe)),
        ]
        try:
            for step, fn in steps:
                try:
                    await fn()
                except (StorageError, AssertionError) as e:
                    print(f"storage check failed at step {step!r} ({cfg.storage_config.driver}): {e}",
                          file=sys.stderr)
                    return 1
                print(f"{step}: ok")
        finally:
            await driver.close()
        print(f"storage {cfg.storage_config.driver} works")
        return 0

    return asyncio.run(run())


def cmd_config_check(args: argparse.Namespace) -> int:
    """The config loads and validates, and what can be known without starting holds (files
    readable, data_dir writable, the address local and its port free): "config OK", else one line
    per problem and 1."""
    from dtr.startup import check

    cfg = _load(args)
    if found := check(cfg):
        return _failed(found)
    print(f"config OK: addr {cfg.http.addr}, data_dir {cfg.data_dir}, storage {cfg.storage_config.driver}")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dtr")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The ``dtr`` command line: every argument and command has a help text; a command group
    called without its command (``dtr``, ``dtr jobs``) is a usage error naming the choices."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", help="YAML config file (default: $DTR_CONFIG, else built-in defaults)")
    p = argparse.ArgumentParser(prog="dtr", description="dtr: a self-hosted container registry",
                                epilog="Exit status: 0 success, 1 failure, 2 usage or configuration error.")
    p.add_argument("--version", action="version", version=f"dtr {_version()}", help="print the version and exit")
    sub = p.add_subparsers(required=True, title="commands", help="what to do (dtr COMMAND --help for more)")

    def group(name: str, help: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        """A command group: ``dtr NAME COMMAND``."""
        parser = sub.add_parser(name, help=help, description=help)
        return parser.add_subparsers(required=True, title="commands", help="what to do")

    def leaf(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str, func: object) -> None:
        parent.add_parser(name, help=help, description=help, parents=[common]).set_defaults(func=func)

    leaf(sub, "serve", "run the registry", cmd_serve)
    leaf(group("db", "database schema"), "upgrade", "migrate the database to the latest schema", cmd_db_upgrade)
    leaf(group("ca", "the internal certificate authority"), "export",
         "print the CA certificate (PEM) for clients' certs.d", cmd_ca_export)
    leaf(group("storage", "storage backend"), "check", "write, read, list and delete a probe object",
         cmd_storage_check)
    leaf(group("config", "configuration"), "check", "validate the configuration and exit", cmd_config_check)
    from dtr.accounts.cli import add_commands as add_account_commands

    add_account_commands(sub, common, group)
    from dtr.accounts.ldapadmin import register_actions as register_ldap_actions
    from dtr.jobs.cli import add_commands as add_job_commands
    from dtr.mirroring.jobs import register_actions as register_mirroring_actions
    from dtr.promotion.jobs import register_actions as register_promotion_actions
    from dtr.scanning.jobs import register_actions as register_scan_actions
    from dtr.webhooks.delivery import register_actions as register_webhook_actions

    register_scan_actions()  # before the jobs commands list the actions
    register_webhook_actions()
    register_mirroring_actions()
    register_promotion_actions()
    register_ldap_actions()

    add_job_commands(sub, common, group)
    from dtr.registry.cli import add_commands as add_registry_commands

    add_registry_commands(sub, common, group)
    from dtr.scanning.cli import add_commands as add_scanning_commands

    add_scanning_commands(sub, common, group)
    from dtr.cluster.cli import add_commands as add_cluster_commands

    add_cluster_commands(sub, common, group)
    from dtr.ops.service_cli import add_commands as add_service_commands

    add_service_commands(sub, common, group)
    from dtr.backup.cli import add_commands as add_backup_commands

    add_backup_commands(sub, common, group)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Exit status: 0 success; 1 failure (not found, refused, the database or
    storage failing); 2 usage error (arguments, values, configuration). Failures are one line on
    stderr, never a traceback (but for bugs)."""
    from dtr.db.engine import DatabaseError
    from dtr.errors import UsageError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"dtr: configuration error: {e}", file=sys.stderr)
        return 2
    except UsageError as e:
        print(f"dtr: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (DatabaseError, OSError) as e:
        print(f"dtr: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""``dtr users create|reset-password|list|delete|set-admin`` and ``dtr ldap sync``: account work
without the API.

The commands call the accounts use cases (``dtr.accounts.usecases``) as a local site admin (the
audit log names the client ``cli``), so the rules are the API's. Passwords are read from standard
input with ``--password-stdin``, else asked at the terminal without echo.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from dtr.accounts.context import Caller
from dtr.config import Config, load_config
from dtr.errors import UsageError


def _password(args: argparse.Namespace) -> str:
    """The new password: a line of stdin with ``--password-stdin``, else asked twice at the terminal."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise UsageError("standard input is not a terminal to ask the password at: pipe the password in "
                         "with --password-stdin")
    password = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Repeat it: ") != password:
        raise UsageError("the passwords differ")
    if not password:
        raise UsageError("the password is empty")
    return password


async def _as_admin(cfg: Config, work: Callable[[Caller], Awaitable[int]]) -> int:
    """``work`` as a local site admin on the configured database; APIErrors printed (exit 1)."""
    from dtr.api.errors import APIError
    from dtr.auth.api import UNRESTRICTED
    from dtr.db.engine import Database

    db = await Database.open(cfg)
    try:
        return await work(Caller(db.engine, UNRESTRICTED, "cli", None, cfg.auth.min_password_length,
                                 cfg.scanning.scan_on_push))
    except APIError as e:
        print(f"dtr: {e.message}", file=sys.stderr)
        return 1
    finally:
        await db.close()


def _run(args: argparse.Namespace, work: Callable[[Caller], Awaitable[int]]) -> int:
    return asyncio.run(_as_admin(load_config(args.config), work))


def cmd_users_create(args: argparse.Namespace) -> int:
    from dtr.accounts.usecases import NewAccount, create_account

    cfg = load_config(args.config)
    password = _password(args)

    async def work(c: Caller) -> int:
        await create_account(c, NewAccount(args.name, password=password, is_admin=args.admin))
        print(f"created {'site admin' if args.admin else 'user'} {args.name}")
        return 0

    return asyncio.run(_as_admin(cfg, work))


def cmd_users_reset_password(args: argparse.Namespace) -> int:
    from dtr.accounts.usecases import change_password

    cfg = load_config(args.config)
    password = _password(args)

    async def work(c: Caller) -> int:
        await change_password(c, args.name, password)
        print(f"password of {args.name} changed")
        return 0

    return asyncio.run(_as_admin(cfg, work))


def cmd_users_list(args: argparse.Namespace) -> int:
    from dtr.accounts.service import account_json
    from dtr.accounts.usecases import list_accounts

    async def work(c: Caller) -> int:
        rows: list[Any] = []
        start: str | None = None
        while True:
            page = await list_accounts(c, args.filter, start, 500)
            rows += page[:500]
            if len(page) <= 500:
                break
            start = page[500].name
        if args.json:
            print(json.dumps([account_json(r) for r in rows], indent=2))
            return 0
        print(f"{'NAME':32}  {'TYPE':12}  {'ADMIN':5}  {'ACTIVE':6}  SOURCE")
        for r in rows:
            print(f"{r.name:32}  {'organization' if r.is_org else 'user':12}  {'yes' if r.is_admin else 'no':5}  "
                  f"{'yes' if r.is_active else 'no':6}  {'ldap' if r.is_imported else 'local'}")
        return 0

    return _run(args, work)


def cmd_users_delete(args: argparse.Namespace) -> int:
    from dtr.accounts.usecases import delete_account

    async def work(c: Caller) -> int:
        await delete_account(c, args.name)
        print(f"deleted {args.name}")
        return 0

    return _run(args, work)


def cmd_users_set_admin(args: argparse.Namespace) -> int:
    from dtr.accounts.usecases import AccountChanges, update_account

    async def work(c: Caller) -> int:
        await update_account(c, args.name, AccountChanges(is_admin=not args.off))
        print(f"{args.name} is {'no longer ' if args.off else ''}a site admin")
        return 0

    return _run(args, work)


def cmd_ldap_sync(args: argparse.Namespace) -> int:
    from dtr.accounts.ldapsync import sync
    from dtr.auth.ldap import Directory, DirectoryError
    from dtr.auth.ldapsettings import effective
    from dtr.db.engine import Database

    cfg = load_config(args.config)

    async def run() -> int:
        db = await Database.open(cfg)
        try:
            ldap = (await effective(db.engine, cfg)).config
            if ldap is None:
                print("dtr: configuration error: no directory configured (LDAP settings or auth.ldap)",
                      file=sys.stderr)
                return 2
            report = await sync(db.engine, Directory(ldap))
        except DirectoryError as e:
            print(f"dtr: LDAP sync failed: {e}", file=sys.stderr)
            return 1
        finally:
            await db.close()
        print(json.dumps(report.as_dict(), indent=2))
        return 0

    return asyncio.run(run())


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser,
                 group: Callable[[str, str], argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    """Add ``users`` and ``ldap`` to the ``dtr`` command (``group(name, help)`` makes a command group)."""
    from dtr.accounts.usecases import KINDS

    users = group("users", "local user accounts (as a site admin, on the configured database)")
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument("name", help="the user's name")
    password.add_argument("--password-stdin", action="store_true",
                          help="read the password from standard input (default: ask at the terminal)")
    c = users.add_parser("create", help="create a user", parents=[common, password])
    c.add_argument("--admin", action="store_true", help="make the user a site admin")
    c.set_defaults(func=cmd_users_create)
    users.add_parser("reset-password", help="set a user's password", parents=[common, password]
                     ).set_defaults(func=cmd_users_reset_password)
    p = users.add_parser("list", help="accounts by name", parents=[common])
    p.add_argument("--filter", choices=KINDS, default="users", help="which accounts (default: users)")
    p.add_argument("--json", action="store_true", help="print JSON as the API shows accounts")
    p.set_defaults(func=cmd_users_list)
    p = users.add_parser("delete", help="delete a user or organisation (its namespace must be empty)",
                         parents=[common])
    p.add_argument("name", help="the account's name")
    p.set_defaults(func=cmd_users_delete)
    p = users.add_parser("set-admin", help="make a user a site admin (or, with --off, no longer one)",
                         parents=[common])
    p.add_argument("name", help="the user's name")
    p.add_argument("--off", action="store_true", help="take site admin away instead")
    p.set_defaults(func=cmd_users_set_admin)
    ldap = group("ldap", "the LDAP/AD directory")
    ldap.add_parser("sync", help="import users, deactivate departed ones, sync team members",
                    parents=[common]).set_defaults(func=cmd_ldap_sync)

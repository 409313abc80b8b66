"""``dtr users create|reset-password`` and ``dtr ldap sync``: account work without the API."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from dtr.config import Config, load_config


def _password_from_stdin(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        raise SystemExit("dtr: give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise SystemExit("dtr: no password on standard input")
    return password


async def _with_db(cfg: Config, work: Any) -> int:
    from dtr.db.engine import Database

    db = await Database.open(cfg)
    try:
        return int(await work(db.engine))
    finally:
        await db.close()


def cmd_users_create(args: argparse.Namespace) -> int:
    from dtr.accounts import service as svc
    from dtr.api.errors import APIError
    from dtr.audit import service as audit
    from dtr.auth.passwords import PasswordPolicyError, check_policy, hash_password

    cfg = load_config(args.config)
    password = _password_from_stdin(args)
    try:
        svc.check_name(args.name)
        check_policy(password, args.name, cfg.auth.min_password_length)
    except (ValueError, PasswordPolicyError) as e:
        print(f"dtr: {e}", file=sys.stderr)
        return 1
    hashed = hash_password(password)

    async def work(engine: Any) -> int:
        try:
            async with engine.begin() as conn:
                await svc.create_account(conn, name=args.name, password_hash=hashed, is_admin=args.admin)
        except APIError as e:
            print(f"dtr: {e}", file=sys.stderr)
            return 1
        await audit.record(engine, "account_create", "", "cli", "user", args.name, {"isAdmin": args.admin})
        return 0

    rc = asyncio.run(_with_db(cfg, work))
    if rc == 0:
        print(f"created {'site admin' if args.admin else 'user'} {args.name}")
    return rc


def cmd_users_reset_password(args: argparse.Namespace) -> int:
    from dtr.accounts import service as svc
    from dtr.api.errors import APIError
    from dtr.audit import service as audit
    from dtr.auth.passwords import PasswordPolicyError, check_policy, hash_password

    cfg = load_config(args.config)
    password = _password_from_stdin(args)
    try:
        check_policy(password, args.name, cfg.auth.min_password_length)
    except PasswordPolicyError as e:
        print(f"dtr: {e}", file=sys.stderr)
        return 1
    hashed = hash_password(password)

    async def work(engine: Any) -> int:
        async with engine.begin() as conn:
            try:
                row = await svc.get_user(conn, args.name)
            except APIError as e:
                print(f"dtr: {e}", file=sys.stderr)
                return 1
            if row.is_imported:
                print(f"dtr: {args.name} logs in against the directory (LDAP); change the password there",
                      file=sys.stderr)
                return 1
            await svc.update_account(conn, row.id, password_hash=hashed, credential_gen=row.credential_gen + 1)
        await audit.record(engine, "password_change", "", "cli", "user", args.name)
        return 0

    rc = asyncio.run(_with_db(cfg, work))
    if rc == 0:
        print(f"password of {args.name} changed")
    return rc


def cmd_ldap_sync(args: argparse.Namespace) -> int:
    from dtr.accounts.ldapsync import sync
    from dtr.auth.ldap import Directory, DirectoryError

    cfg = load_config(args.config)
    if cfg.auth.ldap is None:
        print("dtr: no directory configured (auth.ldap)", file=sys.stderr)
        return 2
    directory = Directory(cfg.auth.ldap)

    async def work(engine: Any) -> int:
        try:
            report = await sync(engine, directory)
        except DirectoryError as e:
            print(f"dtr: LDAP sync failed: {e}", file=sys.stderr)
            return 1
        print(json.dumps(report.as_dict(), indent=2))
        return 0

    return asyncio.run(_with_db(cfg, work))


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    users = sub.add_parser("users", help="local user accounts").add_subparsers(dest="users_command", required=True)
    c = users.add_parser("create", help="create a user (password on stdin)", parents=[common])
    c.add_argument("name")
    c.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    c.add_argument("--admin", action="store_true", help="make the user a site admin")
    c.set_defaults(func=cmd_users_create)
    r = users.add_parser("reset-password", help="set a user's password (from stdin)", parents=[common])
    r.add_argument("name")
    r.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    r.set_defaults(func=cmd_users_reset_password)
    ldap = sub.add_parser("ldap", help="the LDAP/AD directory").add_subparsers(dest="ldap_command", required=True)
    ldap.add_parser("sync", help="import users, deactivate departed ones, sync team members",
                    parents=[common]).set_defaults(func=cmd_ldap_sync)

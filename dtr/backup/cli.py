"""``dtr backup FILE`` and ``dtr restore FILE`` (see ``docs/backup.md``).

The passphrase comes from ``--passphrase-file`` (its first line) or ``$DTR_BACKUP_PASSPHRASE``;
without one the backup is written unencrypted (mode 0600, a warning on stderr). A refusal or a
failure is one line on stderr and exit status 1; a usage mistake exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from dtr.backup.errors import BackupError
from dtr.config import Config, load_config
from dtr.errors import UsageError
from dtr.progress import ProgressBar

PASSPHRASE_ENV = "DTR_BACKUP_PASSPHRASE"
_MIB = 1 << 20


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _passphrase(args: argparse.Namespace) -> str | None:
    """The first line of ``--passphrase-file``, else ``$DTR_BACKUP_PASSPHRASE``, else None."""
    if args.passphrase_file is None:
        return os.environ.get(PASSPHRASE_ENV) or None
    try:
        with open(args.passphrase_file, encoding="utf-8") as f:
            line = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read --passphrase-file {args.passphrase_file}: "
                         f"{getattr(e, 'strerror', None) or e}") from None
    if not line:
        raise UsageError(f"--passphrase-file {args.passphrase_file}: the first line is empty")
    return line


def _refused(e: BackupError) -> int:
    print(f"dtr: {e}", file=sys.stderr)
    return 1


def cmd_backup(args: argparse.Namespace) -> int:
    from dtr.backup.service import backup

    cfg = _config(args)
    passphrase = _passphrase(args)
    config_file = args.config or os.environ.get("DTR_CONFIG")
    if not passphrase:
        print("dtr: warning: the backup is not encrypted and holds the config's secrets and dtr's private keys "
              f"(give --passphrase-file or set {PASSPHRASE_ENV} to encrypt it)", file=sys.stderr)
    try:
        result = backup(cfg, Path(config_file) if config_file else None, Path(args.file), passphrase,
                        args.include_blobs, args.force, ProgressBar(sys.stderr))
    except BackupError as e:
        return _refused(e)
    print(f"backup written to {args.file}: {result.size / _MIB:.1f} MiB, schema {result.revision or 'none'}, "
          f"{result.keys} key file(s), {result.blobs} blob(s){', encrypted' if passphrase else ''}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from dtr.backup.restore import restore

    cfg = _config(args)
    passphrase = _passphrase(args)
    try:
        result = restore(cfg, Path(args.file), passphrase, args.force,
                         Path(args.config_out) if args.config_out else None, ProgressBar(sys.stderr))
    except BackupError as e:
        return _refused(e)
    m = result.manifest
    print(f"restored the backup of {m.created} (dtr {m.dtr_version}, schema {m.alembic_revision or 'none'}); "
          f"the database is at schema {result.revision}; {result.keys} key file(s), {result.blobs} blob(s) written")
    if result.config_out is not None:
        print(f"the backup's config is at {result.config_out} (it holds secrets): compare it with the config "
              "this instance runs with before starting it")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser,
                 group: Callable[[str, str], argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    """``dtr backup`` and ``dtr restore``."""
    passphrase_help = f"read the passphrase from the first line of this file (default: ${PASSPHRASE_ENV})"
    p = sub.add_parser("backup", parents=[common], help="write a backup of the metadata, config and keys",
                       description="Write a consistent backup of dtr's database, config and key material while "
                                   "dtr serves; encrypted when a passphrase is given.")
    p.add_argument("file", metavar="FILE", help="the backup file to write")
    p.add_argument("--passphrase-file", metavar="F", help=passphrase_help)
    p.add_argument("--include-blobs", action="store_true",
                   help="also copy the blobs (filesystem storage only)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=cmd_backup)
    p = sub.add_parser("restore", parents=[common], help="restore a backup into an empty instance",
                       description="Verify a backup, then restore it into the empty instance the config "
                                   "describes (database, key material, blobs if included); the migrations run "
                                   "after. dtr must not be running on that database.")
    p.add_argument("file", metavar="FILE", help="the backup file to read")
    p.add_argument("--passphrase-file", metavar="F", help=passphrase_help)
    p.add_argument("--config-out", metavar="PATH",
                   help="where to write the backup's config (default: FILE.config.yaml)")
    p.add_argument("--force", action="store_true",
                   help="drop what the database holds, and replace the --config-out file if it exists")
    p.set_defaults(func=cmd_restore)

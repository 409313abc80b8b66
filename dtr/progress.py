"""A one-line progress bar for long CLI work (jobs followed, fsck, backup): redrawn in place on a
terminal, an occasional plain line otherwise (logs, pipes)."""

from __future__ import annotations

import shutil
import time
from typing import Any, TextIO


class ProgressBar:
    """A one-line progress bar on a terminal; occasional plain lines otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.tty, self.shown, self.last_plain = out, out.isatty(), False, 0.0

    def show(self, progress: dict[str, Any] | None) -> None:
        if not progress:
            return
        done, total, msg = progress.get("done", 0), progress.get("total"), progress.get("message", "")
        if total:
            frac = min(done / total, 1.0)
            width = max(10, min(40, shutil.get_terminal_size().columns - 40))
            fill = int(frac * width)
            text = f"[{'#' * fill}{'.' * (width - fill)}] {frac:4.0%} {msg} {done}/{total}"
        else:
            text = f"{msg} {done}"
        if self.tty:
            self.out.write("\r\033[K" + text)
            self.shown = True
        elif time.monotonic() - self.last_plain > 5:
            self.out.write(text + "\n")
            self.last_plain = time.monotonic()
        self.out.flush()

    def clear(self) -> None:
        if self.shown:
            self.out.write("\r\033[K")
            self.out.flush()
            self.shown = False

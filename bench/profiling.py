"""py-spy on dtr during a workload, and the hot spots of what it recorded."""

from __future__ import annotations

import collections
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

PY_SPY = str(Path(sys.executable).parent / "py-spy")
#: Frames on every stack of a thread (interpreter start, event loop entry, thread start): left out of
#: the inclusive table, where they would only say "100%".
_ROOTS = ("<frozen runpy>", "threading.py", "asyncio/runners.py", "dtr/__main__.py", "dtr/cli.py",
          "concurrent/futures/thread.py")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


class PySpy:
    """``py-spy record`` (raw collapsed stacks, idle threads excluded) attached to ``pid`` until ``stop()``."""

    def __init__(self, pid: int, out: Path, rate: int = 200) -> None:
        self.out = out
        self.log = out.with_suffix(".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [PY_SPY, "record", "-p", str(pid), "-r", str(rate), "-f", "raw", "-o", str(out), "--nonblocking",
                 "-d", "3600"], stdout=log, stderr=subprocess.STDOUT)
        time.sleep(1.5)  # attached and sampling before the workload starts
        if self.proc.poll() is not None:
            raise RuntimeError(f"py-spy exited at once: {self.log.read_text()[-1000:]}")

    def stop(self) -> Path:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote no profile: {self.log.read_text()[-1000:]}")
        return self.out


def _short(path: str) -> str:
    """py-spy already writes paths relative to sys.path; shorten the ones it could not."""
    for marker in ("site-packages/", "/lib/python3.11/", "/lib/python3.12/", "/lib/python3.13/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return re.sub(r"^.*?/(dtr|bench|tests)/", r"\1/", path)


def _package(path: str) -> str:
    """``dtr/<subpackage>``, or the top-level module (``aiohttp``, ``asyncio``, ...)."""
    parts = _short(path).split("/")
    if parts[0] == "dtr" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0].removesuffix(".py")


def hot_spots(raw: Path, top: int = 20) -> str:
    """Markdown: top functions by own samples and by inclusive samples, and own samples per package."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    pkg: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = []
        for f in stack.split(";"):
            m = _FRAME.match(f.strip())
            if m and m.group("file"):
                frames.append((f"{m.group('func')} ({_short(m.group('file'))})", m.group("file")))
        if not frames:
            continue
        total += n
        own[frames[-1][0]] += n
        pkg[_package(frames[-1][1])] += n
        for name in {name for name, file in frames if not _short(file).startswith(_ROOTS)}:
            incl[name] += n
    if total == 0:
        return "(no samples)\n"

    def rows(counter: collections.Counter[str], k: int) -> list[str]:
        return [f"| {100 * c / total:5.1f}% | `{name}` |" for name, c in counter.most_common(k)]

    return "\n".join([
        f"{total} samples (busy threads only).", "",
        "Own time (the frame on top of the stack):", "", "| % | function |", "|---|---|", *rows(own, top), "",
        "Own time by package:", "", "| % | package |", "|---|---|", *rows(pkg, 12), "",
        "Inclusive (on the stack; interpreter, event-loop and thread-start frames left out):", "",
        "| % | function |", "|---|---|", *rows(incl, top), "",
        "Reading: own time in `Runner.run (asyncio/runners.py)` is the event loop itself, i.e. C code py-spy "
        "cannot see into (uvloop, aiohttp's C HTTP parser, asyncpg's protocol); own time in "
        "`_worker`/`_WorkItem.run` (concurrent/futures/thread.py) is thread-pool hand-off plus C calls made from "
        "pool threads (os.write, hashlib's update, fsync).", "",
    ])

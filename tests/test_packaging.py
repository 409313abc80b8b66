"""The wheel carries every module of the checkout, and the migrations as ``dtr/_migrations``.

``scripts/check-wheel.sh`` installs the wheel and starts ``dtr serve`` from it; this test checks
what serving would not notice: a module or migration left out of the package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.servers import ROOT

#: What the build reads (the rest of the checkout is not packaged).
SOURCES = ("pyproject.toml", "setup.py", "README.md", "dtr", "migrations")


def _files(root: Path, *patterns: str) -> set[str]:
    return {p.relative_to(root).as_posix() for pat in patterns for p in root.rglob(pat) if "__pycache__" not in p.parts}


def test_the_wheel_ships_every_module_and_migration(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = (tmp_path / "dist").glob("dtr-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"dtr/{f}" for f in _files(ROOT / "dtr", "*.py", "py.typed", "deploy/*", "ui/templates/*",
                                                       "ui/static/*")}
    expected |= {f"dtr/_migrations/{f}" for f in _files(ROOT / "migrations", "*.py", "*.mako")}
    assert expected - packaged == set()

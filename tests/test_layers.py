"""The shape of the code, checked in CI: dtr's packages import each other without cycles (a
package imports only packages below it), and no module outside the storage drivers grows past
~500 lines (split it along its seams instead)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

DTR = Path(__file__).resolve().parent.parent / "dtr"
MAX_LINES = 520


def _package(module: str) -> str:
    """``dtr.registry.views`` -> ``dtr.registry``; top-level modules (``dtr.keys``) stand alone."""
    return ".".join(module.split(".")[:2])


def _imports(tree: ast.Module) -> set[str]:
    """Modules of dtr imported anywhere in ``tree`` (inside functions too), except for type checking."""
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in
                   ast.unparse(node.test) for stmt in node.body for n in ast.walk(stmt)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return {m for m in found if m.startswith("dtr.")}


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in DTR.rglob("*.py"):
        module = ".".join(path.relative_to(DTR.parent).with_suffix("").parts).removesuffix(".__init__")
        # dtr.db.metadata gathers every domain's models for Alembic: a unit of its own.
        src = module if module == "dtr.db.metadata" else _package(module)
        deps = {_package(m) for m in _imports(ast.parse(path.read_text(), str(path)))}
        graph.setdefault(src, set()).update(deps - {src})
    return graph


def test_no_package_import_cycles() -> None:
    try:
        graphlib.TopologicalSorter(package_graph()).prepare()
    except graphlib.CycleError as e:
        raise AssertionError(f"package import cycle: {' -> '.join(e.args[1])}") from None


def test_modules_stay_small() -> None:
    big = {str(p.relative_to(DTR.parent)): n for p in DTR.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_LINES and p.parent.name != "storage"}
    assert not big, f"split these along their seams: {big}"

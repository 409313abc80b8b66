"""Every /api/v0 error code used in dtr's source is declared once in ``dtr.api.errors.codes``."""

from __future__ import annotations

import ast
from pathlib import Path

from dtr.api.errors import ALL, codes

DTR = Path(__file__).resolve().parents[2] / "dtr"


def _api_modules() -> list[tuple[Path, ast.Module, set[str]]]:
    """Modules that import dtr.api's errors, with the local names ``codes`` is bound to."""
    out = []
    for path in sorted(DTR.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        names = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                 and n.module in ("dtr.api.errors", "dtr.api.app") for a in n.names if a.name == "codes"}
        if names or any(isinstance(n, ast.ImportFrom) and n.module in ("dtr.api.errors", "dtr.api.app")
                        for n in ast.walk(tree)):
            out.append((path, tree, names))
    return out


def test_every_code_attribute_is_declared() -> None:
    used: dict[str, set[str]] = {}
    for path, tree, names in _api_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
                used.setdefault(node.attr, set()).add(path.name)
    assert used, "no module uses dtr.api.errors.codes"
    undeclared = {name: files for name, files in used.items() if name not in ALL}
    assert not undeclared, f"codes used but not declared in dtr.api.errors.codes: {undeclared}"


def test_codes_are_declared_once_with_their_names() -> None:
    for attr, value in vars(codes).items():
        if not attr.startswith("_"):
            assert value.code == attr and 400 <= value.status < 600, attr
    assert len(ALL) == len([a for a in vars(codes) if not a.startswith("_")])

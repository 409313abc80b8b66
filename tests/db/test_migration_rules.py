"""Migrations after 0006 are expand-only (docs/upgrades.md), so the previous release keeps working
on a database the new one migrated: ``upgrade()`` may only add tables, indexes, and columns that
are nullable or have a server default (and run ``op.execute``, reviewed by hand). Dropping,
renaming or altering belongs in a migration named ``*_contract*``, shipped a release later."""

from __future__ import annotations

import ast
from pathlib import Path

from dtr.db.migrate import migrations_dir

#: The last migration written before the rule.
RULE_FROM = 6
EXPAND = {"create_table", "create_index", "add_column", "execute", "f", "get_bind"}


def _upgrade(tree: ast.Module) -> ast.FunctionDef:
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade")


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def problems(path: Path) -> list[str]:
    """What in ``path``'s ``upgrade()`` breaks the expand-only rule (empty: none)."""
    found = []
    for node in ast.walk(_upgrade(ast.parse(path.read_text()))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "op"):
            continue
        op = node.func.attr
        if op not in EXPAND:
            found.append(f"{path.name}:{node.lineno}: op.{op} is not expand-only")
        elif op == "add_column" and len(node.args) > 1 and isinstance(column := node.args[1], ast.Call):
            nullable = _kw(column, "nullable")
            if isinstance(nullable, ast.Constant) and nullable.value is False and _kw(column, "server_default") is None:
                found.append(f"{path.name}:{node.lineno}: a NOT NULL column needs a server_default")
    return found


def test_migrations_after_0006_only_expand() -> None:
    later = [p for p in sorted((migrations_dir() / "versions").glob("[0-9]*.py"))
             if int(p.name[:4]) > RULE_FROM and "_contract" not in p.name]
    assert [x for p in later for x in problems(p)] == []


def test_the_rule_catches_drops_renames_and_not_null_columns(tmp_path: Path) -> None:
    bad = tmp_path / "0099_bad.py"
    bad.write_text("def upgrade():\n    op.drop_column('t', 'c')\n    op.alter_column('t', 'c', new_column_name='d')\n"
                   "    op.add_column('t', sa.Column('x', sa.Text(), nullable=False))\n"
                   "    op.add_column('t', sa.Column('y', sa.Text(), nullable=False, server_default=''))\n"
                   "    op.create_table('u')\n")
    assert problems(bad) == ["0099_bad.py:2: op.drop_column is not expand-only",
                             "0099_bad.py:3: op.alter_column is not expand-only",
                             "0099_bad.py:4: a NOT NULL column needs a server_default"]

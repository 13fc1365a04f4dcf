"""The read side reads: nothing under `sync/views/` imports a module that writes the ledger."""

from __future__ import annotations

import ast
from pathlib import Path

import sync.views

WRITERS = ("sync.engine", "sync.books", "sync.refill", "sync.delta")
VIEWS = Path(sync.views.__file__).parent


def imported(source: str, package: str = "sync.views") -> set[str]:
    """Absolute names of every module (or module member) `source` imports, with relative
    imports resolved against `package`, so `from ..books import x` cannot slip past."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(x for x in (base, node.module) if x)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_views_never_import_a_writer() -> None:
    files = sorted(VIEWS.rglob("*.py"))
    assert len(files) > 3
    offending = {
        f"{path.name}: {name}"
        for path in files
        for name in imported(path.read_text())
        if any(name == w or name.startswith(f"{w}.") for w in WRITERS)
    }
    assert offending == set()


def test_relative_and_package_imports_are_seen() -> None:
    names = imported("from ..books import decide\nfrom sync import engine\nfrom . import chart\n")
    assert {"sync.books", "sync.engine", "sync.views.chart"} <= names

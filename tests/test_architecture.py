"""The house rules on dependencies, checked by reading every module's imports.

Rules name packages, not files, and each rule first checks that the packages it names hold
modules, so a later move cannot silently empty a rule. Relative imports are resolved to the
absolute names they mean (`from ..ledger import schema` inside `sync.views` is
`sync.ledger.schema`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from tests.support import ROOT

WRITERS = ("sync.engine", "sync.books", "sync.refill", "sync.delta")
PURE = ("sync.model", "sync.rules", "sync.settings")


def module_name(path: Path) -> str:
    """`sync/views/reports.py` -> `sync.views.reports`; a package's `__init__` is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module `source` (the text of `module`) imports, relative imports made absolute.

    `from pkg import name` counts as importing both `pkg` and `pkg.name` (it may be a
    submodule), so a rule about a module catches either spelling.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def imports_of(path: Path) -> set[str]:
    return imports_in(path.read_text(), module_name(path), is_package=path.name == "__init__.py")


def modules(*packages: str) -> dict[str, Path]:
    """Module name -> file, for every module in the packages named (which must exist)."""
    found: dict[str, Path] = {}
    for package in packages:
        folder = ROOT / package.replace(".", "/")
        files = sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]
        files = [f for f in files if f.is_file() and "migrations" not in f.parts]
        assert files, f"{package} holds no modules: a rule here names a package that moved"
        found.update((module_name(f), f) for f in files)
    return found


def within(name: str, packages: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def offenders(mods: dict[str, Path], forbidden: Iterable[str]) -> dict[str, list[str]]:
    forbidden = tuple(forbidden)
    bad = {m: sorted(i for i in imports_of(p) if within(i, forbidden)) for m, p in mods.items()}
    return {m: v for m, v in bad.items() if v}


def test_relative_imports_are_read_as_what_they_mean() -> None:
    source = "from ..ledger import schema\nfrom . import chart\nfrom .statement import Line\n"
    assert imports_in(source, "sync.views.reports") >= {
        "sync.ledger",
        "sync.ledger.schema",
        "sync.views.chart",
        "sync.views.statement",
    }
    assert "sync.engine" in imports_in("from .. import engine\n", "sync.views", is_package=True)


def test_the_core_never_imports_connectors_except_the_wiring() -> None:
    core = {m: p for m, p in modules("sync").items() if m != "sync.wiring"}
    assert offenders(core, ["connectors"]) == {}


def test_connectors_use_only_the_model_settings_and_ports_of_the_core() -> None:
    allowed = ["sync.model", "sync.settings", "sync.ports", "sync.redaction"]
    bad = {
        m: sorted(
            i
            for i in imports_of(p)
            if within(i, ["sync"]) and i != "sync" and not within(i, allowed)
        )
        for m, p in modules("connectors").items()
    }
    assert {m: v for m, v in bad.items() if v} == {}


def test_model_rules_and_settings_do_no_io() -> None:
    pure = {"__future__", "dataclasses", "datetime", "decimal", "typing", "collections.abc",
            "operator", "functools", "enum", "pathlib", "re", "zoneinfo", "typing_extensions",
            *PURE}  # fmt: skip
    for name, path in modules(*PURE).items():
        extra = {i for i in imports_of(path) if not within(i, pure)}
        assert extra == set(), (name, extra)
    # settings may name a Path (a CSV file, an outbox folder) but must not touch the disk
    assert "open(" not in (ROOT / "sync" / "settings.py").read_text()


def test_the_read_side_never_imports_a_writer() -> None:
    assert offenders(modules("sync.views"), [*WRITERS, "sync.service", "sync.cli"]) == {}


def test_only_the_ledger_and_the_views_touch_the_schema() -> None:
    """Elsewhere a connection may be passed along (a transaction spans calls), but no
    statement is built: no table, no query builder, no SQL text."""
    outside = {
        m: p for m, p in modules("sync").items() if not within(m, ["sync.ledger", "sync.views"])
    }
    builders = ["select", "insert", "update", "delete", "func", "text", "bindparam", "case",
                "and_", "or_", "exists", "sql", "Table", "Row"]  # fmt: skip
    forbidden = ["sync.ledger.schema", *(f"sqlalchemy.{b}" for b in builders)]
    assert offenders(outside, forbidden) == {}


def test_lower_layers_never_import_upper_ones() -> None:
    upper = {
        "sync.ledger": ["sync.config", "sync.views", "sync.service", "sync.cli", *WRITERS],
        "sync.config": ["sync.ledger", "sync.views", "sync.service", "sync.cli", *WRITERS],
        "sync.views": ["sync.service", "sync.cli"],
        "sync.service": ["sync.cli"],
    }
    for package, forbidden in upper.items():
        assert offenders(modules(package), forbidden) == {}, package


def test_no_module_imports_another_modules_private_names() -> None:
    bad: dict[str, list[str]] = {}
    for name, path in modules("sync", "connectors").items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private and node.module != "__future__":
                    bad.setdefault(name, []).extend(private)
    assert bad == {}

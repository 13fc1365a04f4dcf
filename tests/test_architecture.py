"""The house rules on dependencies, checked by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; relative imports are not used here)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_core_never_imports_connectors_except_the_wiring() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imports_of(path) if m.startswith("connectors")
        )
        for path in modules("sync")
        if path.name != "wiring.py"
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_connectors_use_only_the_model_settings_and_ports_of_the_core() -> None:
    allowed = {"sync.model", "sync.settings", "sync.ports", "sync.redaction"}
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imports_of(path) if m.startswith("sync") and m not in allowed
        )
        for path in modules("connectors")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_model_and_rules_do_no_io() -> None:
    pure = {"__future__", "dataclasses", "datetime", "decimal", "typing", "collections.abc",
            "operator", "sync.model", "sync.settings", "functools", "enum"}  # fmt: skip
    for name in ("model.py", "rules.py", "settings.py"):
        extra = imports_of(ROOT / "sync" / name) - pure - {"pathlib"}
        assert extra == set(), (name, extra)
    # settings may name a Path (a CSV file, an outbox folder) but must not touch the disk
    assert "open(" not in (ROOT / "sync" / "settings.py").read_text()

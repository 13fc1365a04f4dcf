"""The sqlite3 driver's adapters are process-wide: the ledger registers them when it opens a
SQLite database, never as a side effect of being imported."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sqlite3
import sync.ledger
key = (bool, sqlite3.PrepareProtocol)
print(key in sqlite3.adapters)
sync.ledger.Ledger("sqlite://")
print(key in sqlite3.adapters)
sync.ledger.Ledger("sqlite://")
print(len(sqlite3.adapters))
"""


def test_importing_the_ledger_registers_nothing_and_opening_sqlite_does() -> None:
    lines = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert lines[:2] == ["False", "True"]
    assert int(lines[2]) >= 4

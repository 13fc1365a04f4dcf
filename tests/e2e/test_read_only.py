"""End-to-end: the commands that only read (`balance`, `entries`, `ledger`, `statement`,
`check`) never write, not after a config change and not on a new database; they say what the
next sync will re-value, and `sync` then applies it. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from tests.e2e.test_cli import by_budget, copy_story, run_json
from tests.support import run_prepaid as run

READ_COMMANDS: list[tuple[str, ...]] = [
    ("balance",),
    ("balance", "--format", "json"),
    ("balance", "--customer", "acme"),
    ("entries",),
    ("entries", "--format", "json"),
    ("entries", "--status", "invalid"),
    ("ledger",),
    ("ledger", "--format", "json"),
    ("ledger", "--format", "csv"),
    ("statement", "acme"),
    ("statement", "globex", "--format", "json"),
    ("check",),
]


def _db_url(config: Path) -> str:
    for line in config.read_text().splitlines():
        if line.startswith("database: "):
            return line.removeprefix("database: ").strip()
    raise AssertionError("no database line")


def _dump(url: str) -> dict[str, list[str]]:
    """Every row of every table, as text, sorted: equal dumps mean nothing was written."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            return {
                t: sorted(repr(tuple(row)) for row in conn.execute(text(f"SELECT * FROM {t}")))
                for t in tables
            }
    finally:
        engine.dispose()


def _sqlite_hash(url: str) -> str | None:
    if make_url(url).get_backend_name() != "sqlite":
        return None
    path = make_url(url).database
    assert path is not None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _change_prices(config: Path) -> None:
    """ACME's rate 95.00 -> 100.00 and its opening balance 2000.00 -> 2500.00."""
    body = config.read_text()
    assert 'rate: "95.00"' in body and 'opening_balance: "2000.00"' in body
    body = body.replace('rate: "95.00"', 'rate: "100.00"')
    config.write_text(body.replace('opening_balance: "2000.00"', 'opening_balance: "2500.00"'))


def test_read_commands_write_nothing_after_a_config_change(tmp_path: Path, db_url: str) -> None:
    story = copy_story(tmp_path, db_url)
    assert run(story, "sync").returncode == 0
    _change_prices(story)
    before, file_before = _dump(db_url), _sqlite_hash(db_url)

    for args in READ_COMMANDS:
        result = run(story, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert _dump(db_url) == before, f"`prepaid {' '.join(args)}` wrote to the database"
        if args[0] != "check":
            assert "5 entries will be re-valued and 1 opening balance posted" in result.stderr
    assert _sqlite_hash(db_url) == file_before

    # the balance as it stands, and as it will be once the next sync has re-valued
    acme: dict[str, Any] = by_budget(run_json(story, "balance"))["acme/retainer"]
    assert (acme["balance"], acme["opening"], acme["debited"]) == ("290.00", "2000.00", "1710.00")
    assert acme["after_next_sync"] == "700.00"  # 2500.00 - 18 h x 100.00
    table = run(story, "balance").stdout.splitlines()
    assert "after next sync" in table[0].split("\t")
    assert "700.00" in next(line for line in table if line.startswith("acme\t")).split("\t")

    synced = run(story, "sync")
    assert synced.returncode == 0, synced.stderr
    assert "config changed: re-valued" in synced.stdout
    after = run(story, "balance", "--format", "json")
    assert "will be re-valued" not in after.stderr
    acme = by_budget(json.loads(after.stdout))["acme/retainer"]
    assert (acme["balance"], acme["after_next_sync"]) == ("700.00", "700.00")
    assert "after next sync" not in run(story, "balance").stdout


def test_read_commands_on_a_new_database_create_nothing(tmp_path: Path, db_url: str) -> None:
    story = copy_story(tmp_path, db_url)
    for args in READ_COMMANDS:
        result = run(story, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
        if args[0] != "check":
            assert "no sync has run yet" in result.stderr
        if args == ("balance", "--format", "json"):
            assert json.loads(result.stdout) == []
    if make_url(db_url).get_backend_name() == "sqlite":
        assert not Path(str(make_url(db_url).database)).exists()
    else:
        assert _dump(db_url) == {}
    assert run(story, "sync").returncode == 0
    assert by_budget(run_json(story, "balance"))["acme/retainer"]["balance"] == "290.00"


def test_a_read_command_on_an_older_schema_migrates_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    story = copy_story(tmp_path, sqlite_url)
    assert run(story, "db", "upgrade").returncode == 0
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    engine.dispose()
    before = _dump(sqlite_url)
    result = run(story, "balance")
    assert result.returncode == 2
    assert "prepaid db upgrade" in result.stderr and "Traceback" not in result.stderr
    assert _dump(sqlite_url) == before

"""End-to-end: `prepaid statement` on the example story dates work by its work date."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.e2e.test_cli import copy_story
from tests.support import run_prepaid as run


def statement(config: Path, customer: str, *period: str) -> Any:
    result = run(config, "statement", customer, *period, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_readme_example_shows_novembers_work_and_months_chain(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = copy_story(tmp_path, sqlite_url)
    synced = run(config, "sync")
    assert synced.returncode == 0, synced.stderr
    november = statement(config, "acme", "--from", "2026-11-01", "--to", "2026-11-30")
    (budget,) = november["budgets"]
    work = [line for line in budget["lines"] if line["kind"] == "work"]
    assert work, "the README's example must show ACME's November work"
    assert all(line["date"].startswith("2026-11") for line in work)
    assert budget["opening_balance"] == "2000.00"
    everything = statement(config, "acme")["budgets"][0]
    assert [line["kind"] for line in everything["lines"]].count("opening") == 0
    assert everything["opening_balance"] == "2000.00"
    credits = [line for line in everything["lines"] if line["kind"] in ("top-up", "refill")]
    assert Decimal(everything["added"]) == sum(
        (Decimal(line["amount"]) for line in credits), Decimal(0)
    )
    months = [("2026-10-01", "2026-10-31"), ("2026-11-01", "2026-11-30"), ("2026-12-01", None)]
    chain = []
    for first, last in months:
        period = ["--from", first] + ([] if last is None else ["--to", last])
        chain.append(statement(config, "acme", *period)["budgets"][0])
    for earlier, later in itertools.pairwise(chain):
        assert later["opening_balance"] == earlier["closing_balance"]
    assert chain[-1]["closing_balance"] == everything["closing_balance"]


def test_an_hours_statement_adds_up_as_shown(tmp_path: Path, sqlite_url: str) -> None:
    config = copy_story(tmp_path, sqlite_url)
    assert run(config, "sync").returncode == 0
    data = statement(config, "globex")
    for budget in data["budgets"]:
        lines = [Decimal(line["amount"]) for line in budget["lines"]]
        total = Decimal(budget["opening_balance"]) + sum(lines, Decimal(0))
        assert total == Decimal(budget["closing_balance"])
        assert all(len(line["amount"].split(".")[-1]) == 2 for line in budget["lines"])


def test_units_are_spelled_one_way_and_times_are_labelled(tmp_path: Path, sqlite_url: str) -> None:
    config = copy_story(tmp_path, sqlite_url)
    assert run(config, "sync").returncode == 0
    units: set[str] = set()
    for command in ("ledger", "entries", "balance"):
        result = run(config, command, "--format", "json")
        assert result.returncode == 0, result.stderr
        units |= {item["unit"] for item in json.loads(result.stdout) if item.get("unit")}
    assert "HOUR" not in units and "hours" in units
    ledger = json.loads(run(config, "ledger", "--format", "json").stdout)
    assert all(item["recorded_at"].endswith("+00:00") for item in ledger)
    table = run(config, "ledger").stdout
    assert "recorded (Europe/Brussels)" in table.splitlines()[0]
    csv_text = run(config, "statement", "globex", "--format", "csv").stdout
    assert ",h," not in csv_text and ",hours," in csv_text

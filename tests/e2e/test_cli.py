"""End-to-end: the real `prepaid` command on the example CSV story, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import PREPAID, ROOT
from tests.support import run_prepaid as run


def run_json(config: Path, *args: str) -> Any:
    result = run(config, *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def story(tmp_path: Path, db_url: str) -> Path:
    """The example config and CSV exports, copied into a temp folder, on `db_url`."""
    return copy_story(tmp_path, db_url)


@pytest.fixture
def sqlite_story(tmp_path: Path, sqlite_url: str) -> Path:
    """The example story on SQLite only (for checks that do not depend on the database)."""
    return copy_story(tmp_path, sqlite_url)


def copy_story(tmp_path: Path, db_url: str) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    text = (ROOT / "config.example.yaml").read_text()
    text = text.replace("database: sqlite:///prepaid.db", f"database: {db_url}")
    config = tmp_path / "config.yaml"
    config.write_text(text)
    return config


def by_budget(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{r['customer']}/{r['budget']}": r for r in rows}


def test_example_story(story: Path) -> None:
    first = run(story, "sync")
    assert first.returncode == 0, first.stderr
    assert "exports: fetched 11, new 11" in first.stdout
    assert "refill raised: acme-retainer-1" in first.stdout

    rows = by_budget(run_json(story, "balance"))
    acme = rows["acme/retainer"]
    assert {
        k: acme[k] for k in ("unit", "currency", "balance", "opening", "credited", "debited")
    } == {
        "unit": "money",
        "currency": "EUR",
        "balance": "290.00",
        "opening": "2000.00",
        "credited": "0.00",
        "debited": "1710.00",
    }
    assert acme["open_refill"]["id"] == "acme-retainer-1"
    assert acme["open_refill"]["status"] == "issued"
    assert acme["open_refill"]["amount"] == "2000.00"
    globex = rows["globex/support"]
    assert (globex["unit"], globex["balance"], globex["pending"]) == ("hours", "10.00", "4.60")

    invoice = json.loads((story.parent / "outbox" / "acme-retainer-1.json").read_text())
    assert invoice["amount_minor"] == 200000

    entries = run_json(story, "entries")
    status = {e["external_id"]: e["status"] for e in entries}
    assert status == {
        "a1": "deducted",
        "a2": "deducted",
        "a3": "deducted",
        "a4": "deducted",
        "a5": "excluded",
        "a6": "excluded",
        "a7": "deducted",
        "u1": "unrouted",
        "g1": "pending",
        "g2": "pending",
        "g3": "pending",
    }
    for item in entries:
        assert {
            "id",
            "source",
            "external_id",
            "customer",
            "budget",
            "status",
            "date",
            "hours",
            "amount",
            "reason",
        } <= set(item)

    # a re-run changes nothing and raises no second refill
    again = run(story, "sync")
    assert again.returncode == 0, again.stderr
    assert "new 0, changed 0, deleted 0" in again.stdout
    assert "refill raised" not in again.stdout

    pending = run_json(story, "entries", "--status", "pending")
    ids = [str(e["id"]) for e in pending]
    approved = run(story, "entries", "approve", *ids)
    assert approved.returncode == 0, approved.stderr
    globex = by_budget(run_json(story, "balance", "--customer", "globex"))["globex/support"]
    assert (globex["balance"], globex["debited"], globex["pending"]) == ("5.40", "4.60", "0.00")

    paid = run(story, "refill", "paid", "acme-retainer-1")
    assert paid.returncode == 0, paid.stderr
    acme = by_budget(run_json(story, "balance"))["acme/retainer"]
    assert (acme["balance"], acme["credited"], acme["open_refill"]) == ("2290.00", "2000.00", None)
    twice = run(story, "refill", "paid", "acme-retainer-1")
    assert twice.returncode == 2 and "already paid" in twice.stderr

    topped = run(story, "topup", "acme/retainer", "100.50", "--note", "wire 2026-11-20")
    assert topped.returncode == 0, topped.stderr
    ledger = run_json(story, "ledger", "--customer", "acme")
    assert ledger[-1]["kind"] == "topup" and ledger[-1]["balance_after"] == "2390.50"
    assert all(row["reason"] for row in ledger)
    csv_out = run(story, "ledger", "--format", "csv")
    assert csv_out.stdout.splitlines()[0].startswith("id,recorded_at,work_date,customer")


def test_reexport_with_edit_and_removal_is_reconciled(story: Path) -> None:
    assert run(story, "sync").returncode == 0
    csv_path = story.parent / "examples" / "time_entries.csv"
    lines = csv_path.read_text().splitlines()
    edited = [
        line.replace("2026-11-03T18:00:00Z", "2026-11-04T09:00:00Z").replace(",4.25,", ",5.25,")
        if line.startswith("a2,")
        else line
        for line in lines
        if not line.startswith("a4,")
    ]
    csv_path.write_text("\n".join(edited) + "\n")
    result = run(story, "sync")
    assert result.returncode == 0, result.stderr
    assert "changed 1, deleted 1" in result.stdout
    acme = by_budget(run_json(story, "balance"))["acme/retainer"]
    assert acme["debited"] == "1330.00"  # 1710.00 + 95.00 (a2 one hour more) - 475.00 (a4)


def test_invalid_rows_are_quarantined_and_exit_3(story: Path) -> None:
    csv_path = story.parent / "examples" / "time_entries.csv"
    with csv_path.open("a") as f:
        f.write("bad1,2026-11-20T10:00:00Z,2026-11-20,,,lots,Ann,ACME Corp,Website,QA,,true,x\n")
    result = run(story, "sync")
    assert result.returncode == 3, result.stderr
    assert "invalid 1" in result.stdout
    invalid = run_json(story, "entries", "--status", "invalid")
    assert len(invalid) == 1
    assert invalid[0]["external_id"] == "bad1" and "line 13" in invalid[0]["reason"]
    acme = by_budget(run_json(story, "balance"))["acme/retainer"]
    assert acme["debited"] == "1710.00"


def test_dry_run_writes_nothing(story: Path) -> None:
    result = run(story, "sync", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "[dry run] exports: fetched 11, new 11" in result.stdout
    assert "would be raised: acme/retainer" in result.stdout
    acme = by_budget(run_json(story, "balance"))["acme/retainer"]
    assert (acme["debited"], acme["open_refill"]) == ("0.00", None)
    assert not (story.parent / "outbox").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("balance", "--customer", "nobody"), "unknown customer 'nobody'"),
        (("topup", "acme/retainer", "ten"), "amount 'ten' is not a number"),
        (("topup", "nobody", "10"), "unknown customer 'nobody'"),
        (("entries", "approve", "99999"), "no entry with id 99999"),
        (("refill", "retry", "nope"), "no refill 'nope'"),
        (("sync", "--source", "nope"), "unknown source 'nope'"),
        (("sync", "--since", "yesterday"), "is not a date"),
    ],
)
def test_bad_usage_exits_2(sqlite_story: Path, args: tuple[str, ...], message: str) -> None:
    result = run(sqlite_story, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_exits_2_with_yaml_path(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        (ROOT / "config.example.yaml").read_text().replace('below: "500.00"', 'below: "-5"')
    )
    result = run(config, "check")
    assert result.returncode == 2
    assert "customers[0].budgets[0].refill.below" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run(tmp_path / "nope.yaml", "check")
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr


def test_every_command_has_help() -> None:
    commands = [
        ["sync"],
        ["balance"],
        ["entries"],
        ["entries", "approve"],
        ["entries", "exclude"],
        ["topup"],
        ["refill"],
        ["refill", "paid"],
        ["refill", "retry"],
        ["ledger"],
        ["check"],
        ["db", "upgrade"],
        ["serve"],
        ["statement"],
    ]
    readme = (ROOT / "README.md").read_text()
    for command in commands:
        result = subprocess.run([PREPAID, *command, "--help"], capture_output=True, text=True)
        assert result.returncode == 0, command
        assert "example:" in result.stdout or "examples:" in result.stdout, command
        assert f"prepaid {' '.join(command)}" in readme, f"README lacks an example of {command}"


def test_readme_config_walkthrough_is_valid(tmp_path: Path) -> None:
    import re

    block = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[0]
    config = tmp_path / "config.yaml"
    config.write_text(block)
    env = {
        name: "sk_test_value" if name == "STRIPE_API_KEY" else "value"
        for name in re.findall(r"\$\{(\w+)\}", block)
    }
    result = run(config, "check", env=env)
    assert result.returncode == 0, result.stderr
    assert "valid (4 sources, 3 sinks, 2 customers)" in result.stdout


def test_every_source_failing_exits_1_and_some_failing_exits_3(sqlite_story: Path) -> None:
    config = sqlite_story
    text = config.read_text()
    two_sources = text.replace(
        "sources:\n",
        "sources:\n  - name: missing\n    type: csv\n    path: examples/nowhere.csv\n",
    )
    config.write_text(two_sources)
    some = run(config, "sync")
    assert some.returncode == 3, some.stdout + some.stderr
    assert "nowhere.csv" in some.stdout
    config.write_text(two_sources.replace("examples/time_entries.csv", "examples/gone.csv"))
    every = run(config, "sync")
    assert every.returncode == 1, every.stdout + every.stderr


def test_the_console_script_tunes_the_collector_then_runs_main() -> None:
    script = "\n".join(
        [
            "import gc",
            "from sync.cli import parser as cli",
            "cli.main = lambda: 7",
            "try:",
            "    cli.run()",
            "except SystemExit as exit:",
            "    print(gc.get_threshold()[0], gc.get_freeze_count() > 1000, exit.code)",
        ]
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.split() == ["50000", "True", "7"], done.stderr

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
        (("topup", "acme/retainer", "10.005"), "at most 2 decimals for EUR"),
        (("topup", "acme/retainer", "0.004"), "at most 2 decimals for EUR"),
        (("topup", "acme/retainer", "1e3"), "without an exponent"),
        (("topup", "acme/retainer", "12345678901234567890"), "is too large"),
        (("topup", "acme/retainer", "-5"), "must be positive"),
        (("topup", "globex", "1.255"), "at most 2 decimals for hours"),
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


def test_check_warns_that_serve_will_refuse_an_unset_server_variable(sqlite_story: Path) -> None:
    """Only `serve` needs `server.status_token`: `check` passes (exit 0) but says so."""
    text = sqlite_story.read_text()
    line = "  # status_token: ${PREPAID_STATUS_TOKEN}"
    assert line in text
    unset = "PREPAID_TEST_TOKEN_NOBODY_SETS"
    sqlite_story.write_text(text.replace(line, f"  status_token: ${{{unset}}}"))
    result = run(sqlite_story, "check")
    assert result.returncode == 0, result.stderr
    assert (
        f"warning: server.status_token: environment variable {unset} is not set:"
        " `prepaid serve` will refuse to start" in result.stdout
    )


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


def test_a_refused_amount_records_nothing(sqlite_story: Path) -> None:
    for typed in ("10.005", "0.004", "1e3", "12345678901234567890"):
        assert run(sqlite_story, "topup", "acme/retainer", typed).returncode == 2
    ledger = run_json(sqlite_story, "ledger")
    assert [row["kind"] for row in ledger if row["kind"] == "topup"] == []


def test_topup_with_a_reference_is_recorded_once(sqlite_story: Path) -> None:
    first = run(sqlite_story, "topup", "acme/retainer", "250.00", "--ref", "TRF-1120")
    assert first.returncode == 0, first.stderr
    again = run(sqlite_story, "topup", "acme/retainer", "250.00", "--ref", "TRF-1120")
    assert again.returncode == 0, again.stderr
    assert "already recorded" in again.stdout and "nothing new recorded" in again.stdout
    other = run(sqlite_story, "topup", "acme/retainer", "260.00", "--ref", "TRF-1120")
    assert other.returncode == 2
    assert "already recorded a top-up of 250.00 to acme/retainer" in other.stderr
    topups = [row for row in run_json(sqlite_story, "ledger") if row["kind"] == "topup"]
    assert [(row["amount"], row["key"]) for row in topups] == [("250.00", "topup-ref:TRF-1120")]
    assert "TRF-1120" in topups[0]["reason"]
    plain = run(sqlite_story, "topup", "acme/retainer", "250.00")
    assert plain.returncode == 0, plain.stderr
    assert len([row for row in run_json(sqlite_story, "ledger") if row["kind"] == "topup"]) == 2


def test_statement_to_a_missing_folder_is_a_plain_message(sqlite_story: Path) -> None:
    result = run(sqlite_story, "statement", "acme", "-o", "/no/such/dir/x.csv")
    assert result.returncode == 2
    assert "/no/such/dir/x.csv" in result.stderr and "No such file or directory" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_a_closed_pipe_ends_quietly(sqlite_story: Path) -> None:
    import os

    assert run(sqlite_story, "sync").returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before a byte is written, like `| head -0`
    try:
        result = subprocess.run(
            [PREPAID, "--config", str(sqlite_story), "entries", "--format", "json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=sqlite_story.parent,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141  # as a shell reports a tool ended by SIGPIPE
    assert result.stderr == ""


def test_serve_removes_its_lock_file_on_exit(tmp_path: Path, sqlite_url: str) -> None:
    import signal

    from tests.service_story import Serve, free_port, wait_for, write_story

    port = free_port()
    config = write_story(tmp_path, sqlite_url, port=port)
    lock = Path(sqlite_url.removeprefix("sqlite:///") + ".serve.lock")
    serve = Serve(config, port, tmp_path / "serve.log", {})
    try:
        wait_for("/healthz", serve.healthy)
        assert lock.exists()
    finally:
        assert serve.stop(signal.SIGTERM) == 0, serve.output()
    assert not lock.exists()
    again = Serve(config, port, tmp_path / "again.log", {})  # and a next serve starts as before
    try:
        wait_for("/healthz", again.healthy)
    finally:
        assert again.stop(signal.SIGTERM) == 0, again.output()


def test_approve_that_changes_nothing_says_why_and_exits_3(sqlite_story: Path) -> None:
    assert run(sqlite_story, "sync").returncode == 0
    entries = {e["external_id"]: e["id"] for e in run_json(sqlite_story, "entries")}
    result = run(sqlite_story, "entries", "approve", str(entries["u1"]), str(entries["a5"]))
    assert result.returncode == 3
    assert f"entry {entries['u1']}: not approved, nothing deducted: no budget takes it" in (
        result.stderr
    )
    assert f"entry {entries['a5']}: not approved, nothing deducted: its budget's rules" in (
        result.stderr
    )
    pending = [str(e["id"]) for e in run_json(sqlite_story, "entries", "--status", "pending")]
    assert run(sqlite_story, "entries", "approve", *pending).returncode == 0


def test_sync_since_a_future_date_is_refused(sqlite_story: Path) -> None:
    result = run(sqlite_story, "sync", "--since", "2999-01-01")
    assert result.returncode == 2
    assert "--since 2999-01-01 is in the future" in result.stderr
    assert run_json(sqlite_story, "entries") == []


def test_sync_since_on_a_csv_source_says_it_does_not_apply(sqlite_story: Path) -> None:
    result = run(sqlite_story, "sync", "--since", "2026-11-01")
    assert result.returncode == 0, result.stderr
    assert "--since does not apply to exports: a CSV file is read whole" in result.stderr


def test_check_connections_on_a_new_database_tries_every_sink(sqlite_story: Path) -> None:
    text = sqlite_story.read_text().replace(
        "invoicing:\n",
        "invoicing:\n"
        "  - name: xero\n"
        "    type: xero\n"
        "    client_id: cid\n"
        "    client_secret: secret\n"
        "    refresh_token: first-token\n"
        "    tenant_id: t1\n"
        '    account_code: "200"\n'
        "    base_url: http://127.0.0.1:9\n"
        "    token_url: http://127.0.0.1:9/token\n",
    )
    sqlite_story.write_text(text)
    result = run(sqlite_story, "check", "--connections")
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "database: ok" in lines
    assert any(line.startswith("sink xero: FAILED: ") for line in lines), result.stdout
    assert any(line.startswith("sink files: ok") for line in lines), result.stdout
    assert "credentials" not in result.stdout + result.stderr


def _hold_source(db_url: str, name: str) -> tuple[Any, str]:
    """Take the source's lease as another live run would (this test process holds it)."""
    import datetime as dt

    from sync.engine import process_holder
    from sync.ledger import Ledger

    ledger = Ledger(db_url)
    ledger.upgrade()
    holder = f"{process_holder()} (other run)"
    assert ledger.acquire_lease(f"source:{name}", holder, dt.timedelta(minutes=10)) is None
    return ledger, holder


def test_sync_of_a_source_another_run_holds_is_skipped_with_exit_0(
    sqlite_story: Path, sqlite_url: str
) -> None:
    ledger, holder = _hold_source(sqlite_url, "exports")
    try:
        result = run(sqlite_story, "sync")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "exports is being synced by" in result.stdout and "skipped" in result.stdout
        waited = run(sqlite_story, "sync", "--wait", "1")
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert "waited 1 s" in waited.stdout
        assert run_json(sqlite_story, "entries") == []
    finally:
        ledger.release_lease("source:exports", holder)
        ledger.dispose()


def test_sync_wait_syncs_a_source_once_the_other_run_is_done(
    sqlite_story: Path, sqlite_url: str
) -> None:
    import threading

    ledger, holder = _hold_source(sqlite_url, "exports")
    release = threading.Timer(3.0, ledger.release_lease, ("source:exports", holder))
    release.start()
    try:
        result = run(sqlite_story, "sync", "--wait", "60")
    finally:
        release.join()
        ledger.dispose()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "exports: fetched 11, new 11" in result.stdout


def test_a_refill_that_cannot_lift_the_budget_is_warned_and_explained(
    sqlite_story: Path,
) -> None:
    """`below: 500`, `amount: 100`: `check` warns (exit 0), and neither `sync` nor `refill`
    leaves the budget below its threshold in silence."""
    text = sqlite_story.read_text()
    assert 'amount: "2000.00"' in text
    sqlite_story.write_text(text.replace('amount: "2000.00"', 'amount: "100.00"'))
    check = run(sqlite_story, "check")
    assert check.returncode == 0, check.stderr
    assert (
        "warning: customers[0].budgets[0].refill.amount: a refill of 100.00 cannot lift a"
        " used-up budget above its threshold (500.00)"
    ) in check.stdout
    synced = run(sqlite_story, "sync")
    assert synced.returncode == 0, synced.stderr
    assert "refill raised: acme-retainer-1" in synced.stdout
    assert (
        "refill below threshold: refill of 100.00 leaves acme/retainer at 390.00, below 500.00"
    ) in synced.stdout
    refill = run(sqlite_story, "refill")
    assert refill.returncode == 0, refill.stderr
    assert "nothing to do" not in refill.stdout
    assert "raise refill.amount or use top_up_to" in refill.stdout


def test_a_mass_deletion_is_reversed_once_the_operator_accepts_it(story: Path) -> None:
    csv_path = story.parent / "examples" / "time_entries.csv"
    original = csv_path.read_text()
    extra = "".join(
        f"m{i},2026-11-02T18:00:00Z,2026-11-02,,,0.25,Ann Peeters,ACME Corp,Website,Design,,true,"
        f"Small fix {i}\n"
        for i in range(20)
    )
    csv_path.write_text(original + extra)
    assert run(story, "sync").returncode == 0
    assert by_budget(run_json(story, "balance"))["acme/retainer"]["debited"] == "2185.00"
    csv_path.write_text(original)  # the 20 small fixes really were deleted in the tracker

    refused = run(story, "sync", "--full")
    assert refused.returncode == 3, refused.stderr
    assert "refusing to reverse 20 entries" in refused.stdout
    assert "prepaid sync --full --source exports --accept-deletions" in refused.stdout
    without_full = run(story, "sync", "--accept-deletions")
    assert without_full.returncode == 2 and "use it with --full" in without_full.stderr
    assert by_budget(run_json(story, "balance"))["acme/retainer"]["debited"] == "2185.00"

    accepted = run(story, "sync", "--full", "--accept-deletions")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "deleted 20" in accepted.stdout
    assert by_budget(run_json(story, "balance"))["acme/retainer"]["debited"] == "1710.00"
    reversals = [p for p in run_json(story, "ledger") if "mass deletion" in p["reason"]]
    assert len(reversals) == 20
    assert all(
        "deleted at the source, mass deletion accepted by the operator on 20" in p["reason"]
        for p in reversals
    )
    again = run(story, "sync", "--full", "--accept-deletions")
    assert again.returncode == 0 and "deleted 0" in again.stdout

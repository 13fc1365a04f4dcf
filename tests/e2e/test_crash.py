"""Kill the real `prepaid` process at named points (SIGKILL, no cleanup), rerun, and show that
I1-I4 hold: every entry costs exactly its value, balances recompute, one refill, one invoice,
one credit."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectors.sources.csv_export import PAGE_SIZE as CSV_PAGE_SIZE
from sync.ledger import Ledger, balances, schema
from tests.e2e.test_cli import copy_story, run, run_json

CRASH = "PREPAID_CRASH_AT"
KILLED = -signal.SIGKILL


def check_story_invariants(config: Path, db_url: str) -> None:
    """The example story after one complete sync: exact debits, one refill, one invoice."""
    rows = {f"{r['customer']}/{r['budget']}": r for r in run_json(config, "balance")}
    assert (rows["acme/retainer"]["debited"], rows["acme/retainer"]["balance"]) == (
        "1710.00",
        "290.00",
    )
    assert rows["acme/retainer"]["open_refill"]["id"] == "acme-retainer-1"
    assert rows["acme/retainer"]["open_refill"]["status"] == "issued"
    outbox = sorted(p.name for p in (config.parent / "outbox").glob("*.json"))
    assert outbox == ["acme-retainer-1.json"]
    ledger = Ledger(db_url)
    e, p = schema.entries, schema.postings
    with ledger.read() as conn:
        debits = dict(
            conn.execute(
                select(e.c.external_id, -func.sum(p.c.amount_minor))
                .join(p, p.c.entry_id == e.c.id)
                .group_by(e.c.external_id)
            ).all()
        )
        refills = conn.execute(select(func.count()).select_from(schema.refills)).scalar_one()
        parts = balances(conn)[("acme", "retainer")]
        total = conn.execute(
            select(func.sum(p.c.amount_minor)).where(p.c.customer_id == "acme")
        ).scalar_one()
    ledger.dispose()
    assert {k: int(v) for k, v in debits.items() if v} == {
        "a1": 33250, "a2": 40375, "a3": 21375, "a4": 47500, "a7": 28500,
    }  # fmt: skip
    assert refills == 1
    assert parts.balance == int(total) == 29000


@pytest.mark.parametrize(
    "point",
    [
        "before_page_commit",
        "after_page_commit",
        "after_refill_intent",
        "after_record_sent",
        "after_refill_issued",
    ],
)
def test_sync_killed_then_rerun(tmp_path: Path, db_url: str, point: str) -> None:
    config = copy_story(tmp_path, db_url)
    killed = run(config, "sync", env={CRASH: point})
    assert killed.returncode == KILLED, killed.stdout + killed.stderr
    rerun = run(config, "sync")
    assert rerun.returncode == 0, rerun.stderr
    check_story_invariants(config, db_url)
    third = run(config, "sync")
    assert third.returncode == 0 and "refill raised" not in third.stdout


def test_payment_killed_before_commit_credits_once(tmp_path: Path, db_url: str) -> None:
    config = copy_story(tmp_path, db_url)
    assert run(config, "sync").returncode == 0
    killed = run(config, "refill", "paid", "acme-retainer-1", env={CRASH: "before_credit_commit"})
    assert killed.returncode == KILLED
    acme = {r["budget"]: r for r in run_json(config, "balance", "--customer", "acme")}["retainer"]
    assert (acme["credited"], acme["open_refill"]["status"]) == ("0.00", "issued")
    assert run(config, "refill", "paid", "acme-retainer-1").returncode == 0
    assert run(config, "refill", "paid", "acme-retainer-1").returncode == 2
    acme = {r["budget"]: r for r in run_json(config, "balance", "--customer", "acme")}["retainer"]
    assert (acme["credited"], acme["balance"], acme["open_refill"]) == ("2000.00", "2290.00", None)


def test_multi_page_sync_killed_between_pages(tmp_path: Path, sqlite_url: str) -> None:
    config = copy_story(tmp_path, sqlite_url)
    csv_path = tmp_path / "examples" / "time_entries.csv"
    lines = csv_path.read_text().splitlines()
    extra = [
        f"x{i},2026-11-20T10:00:00Z,2026-11-{1 + i % 25:02d},,,0.25,Eve,Initech,Ops,Support,,true,n"
        for i in range(2 * CSV_PAGE_SIZE + 500)
    ]
    csv_path.write_text("\n".join(lines + extra) + "\n")
    killed = run(config, "sync", env={CRASH: "after_page_commit:2"})
    assert killed.returncode == KILLED
    ledger = Ledger(sqlite_url)
    with ledger.read() as conn:
        stored = conn.execute(select(func.count()).select_from(schema.entries)).scalar_one()
    assert stored == 2 * CSV_PAGE_SIZE  # two pages committed, the third never started
    rerun = run(config, "sync")
    assert rerun.returncode == 0, rerun.stderr
    with ledger.read() as conn:
        stored = conn.execute(select(func.count()).select_from(schema.entries)).scalar_one()
    ledger.dispose()
    assert stored == len(lines) - 1 + len(extra)  # the story's rows (less the header) and ours
    check_story_invariants(config, sqlite_url)
    invoice = json.loads((tmp_path / "outbox" / "acme-retainer-1.json").read_text())
    assert invoice["amount_minor"] == 200000

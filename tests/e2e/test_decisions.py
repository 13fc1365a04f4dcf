"""End-to-end (issue 10 items 5 and 7): unpriced work and review decisions through the real
`prepaid` command, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support import run_prepaid as run


def run_json(config: Path, *args: str) -> Any:
    result = run(config, *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


FROM_SOURCE_CONFIG = """\
database: {db_url}
timezone: UTC
sources:
  - name: exports
    type: csv
    path: export.csv
    date_order: ymd
customers:
  - id: acme
    name: ACME Corp
    currency: EUR
    match:
      - {{source: exports, client: "ACME Corp"}}
    budgets:
      - id: retainer
        unit: money
        rate: from_source
        opening_balance: "1000.00"
"""


def test_unpriced_work_is_listed_exits_3_once_and_is_charged_when_priced(
    tmp_path: Path, db_url: str
) -> None:
    """Issue 10 item 5: a row without a rate (or in USD for a EUR customer) was `excluded`,
    uncounted, with exit 0."""
    config = tmp_path / "config.yaml"
    config.write_text(FROM_SOURCE_CONFIG.format(db_url=db_url))
    export = tmp_path / "export.csv"
    header = "id,date,hours,client,rate,currency,description\n"
    export.write_text(
        header + "1,2026-11-02,1,ACME Corp,80.00,EUR,priced\n"
        "2,2026-11-02,2,ACME Corp,,,no rate\n"
        "3,2026-11-03,1,ACME Corp,90.00,USD,dollars\n"
    )
    first = run(config, "sync")
    assert first.returncode == 3, first.stdout + first.stderr
    assert "unpriced 2" in first.stdout
    assert "prepaid entries --status unpriced" in first.stdout
    listed = run_json(config, "entries", "--status", "unpriced")
    assert sorted((e["external_id"], e["reason"]) for e in listed) == [
        ("2", "no billable rate in source"),
        ("3", "source rate is in USD, customer acme is billed in EUR"),
    ]
    (row,) = run_json(config, "balance")
    assert row["balance"] == "920.00"

    again = run(config, "sync")  # nothing new: listed, but no page for the cron job
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(run_json(config, "entries", "--status", "unpriced")) == 2

    export.write_text(
        header + "1,2026-11-02,1,ACME Corp,80.00,EUR,priced\n"
        "2,2026-11-02,2,ACME Corp,50.00,EUR,no rate\n"
        "3,2026-11-03,1,ACME Corp,90.00,USD,dollars\n"
    )
    priced = run(config, "sync")
    assert priced.returncode == 0, priced.stdout + priced.stderr
    (row,) = run_json(config, "balance")
    assert row["balance"] == "820.00"
    assert [e["external_id"] for e in run_json(config, "entries", "--status", "unpriced")] == ["3"]


REVIEW_CONFIG = """\
database: {db_url}
timezone: UTC
sources:
  - name: exports
    type: csv
    path: export.csv
    date_order: ymd
customers:
  - id: acme
    name: ACME Corp
    currency: EUR
    match:
      - {{source: exports, client: "ACME Corp"}}
    budgets:
      - id: retainer
        unit: money
        rate: "120.00"
        opening_balance: "2000.00"
        approval: review
"""


def test_approve_names_the_version_it_decides(tmp_path: Path, db_url: str) -> None:
    """Issue 10 item 7: an entry listed at 1.25 h / 150.00, edited to 9 h and synced, was
    deducted at 1080.00 by an approval of what was listed."""
    config = tmp_path / "config.yaml"
    config.write_text(REVIEW_CONFIG.format(db_url=db_url))
    export = tmp_path / "export.csv"
    header = "id,date,hours,client,description\n"
    export.write_text(header + "7,2026-11-02,1.25,ACME Corp,design\n")
    assert run(config, "sync").returncode == 0
    (listed,) = run_json(config, "entries")
    shown = listed["priced_version"]
    assert shown and shown in run(config, "entries").stdout

    export.write_text(header + "7,2026-11-02,9,ACME Corp,design\n")
    assert run(config, "sync").returncode == 0
    stale = run(config, "entries", "approve", f"{listed['id']}@{shown}")
    assert stale.returncode == 2, stale.stdout + stale.stderr
    assert "acme/retainer 9.00 h x EUR 120.00 = EUR 1080.00" in stale.stderr
    (row,) = run_json(config, "balance")
    assert row["balance"] == "2000.00"

    bare = run(config, "entries", "approve", str(listed["id"]))  # the current figures, printed
    assert bare.returncode == 0, bare.stdout + bare.stderr
    assert "deducted: acme/retainer 9.00 h x EUR 120.00 = EUR 1080.00 (version" in bare.stdout
    (row,) = run_json(config, "balance")
    assert row["balance"] == "920.00"

    # A description edit keeps the approval; new hours send it back to review, saying why.
    export.write_text(header + "7,2026-11-02,9,ACME Corp,design and build\n")
    assert run(config, "sync").returncode == 0
    assert run_json(config, "balance")[0]["balance"] == "920.00"
    export.write_text(header + "7,2026-11-02,8,ACME Corp,design and build\n")
    assert run(config, "sync").returncode == 0
    assert run_json(config, "balance")[0]["balance"] == "2000.00"
    (pending,) = run_json(config, "entries", "--status", "pending")
    assert pending["reason"].startswith(
        "approved before at acme/retainer 9.00 h x EUR 120.00 = EUR 1080.00; now acme/retainer"
        " 8.00 h"
    )

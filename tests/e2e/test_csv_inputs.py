"""End-to-end (issue 10): CSV exports mean what the operator meant, through the real `prepaid`
command on SQLite and PostgreSQL: date orders, absurd durations, repeated ids, filtered exports.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.support import run_prepaid as run


def run_json(config: Path, *args: str) -> Any:
    result = run(config, *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


DAY_FIRST_CONFIG = """\
database: {db_url}
timezone: Europe/Brussels
sources:
  - name: exports
    type: csv
    path: export.csv
customers:
  - id: acme
    name: ACME Corp
    currency: EUR
    match:
      - {{source: exports, client: "ACME Corp"}}
    budgets:
      - id: retainer
        unit: money
        rate: "100.00"
        opening_balance: "3000.00"
"""


def test_day_first_exports_are_never_read_month_first(tmp_path: Path, db_url: str) -> None:
    """Issue 10 item 1: 15/03/2026 proves day first; the next export's 01/11 and 07/11 are
    November, not January and July "covering" March (2800.00 with exit 0 before the fix).
    """
    config = tmp_path / "config.yaml"
    config.write_text(DAY_FIRST_CONFIG.format(db_url=db_url))
    export = tmp_path / "export.csv"
    header = "date,hours,client,description\n"
    export.write_text(header + "15/03/2026,4,ACME Corp,March work\n")
    first = run(config, "sync")
    assert first.returncode == 0, first.stdout + first.stderr
    export.write_text(header + "01/11/2026,1,ACME Corp,a\n07/11/2026,1,ACME Corp,b\n")
    second = run(config, "sync")
    assert second.returncode == 0, second.stdout + second.stderr
    (row,) = run_json(config, "balance")
    assert row["balance"] == "2400.00"  # 3000 - 4 h - 2 h at 100.00; March stays charged

    # A fresh source that has proven nothing refuses the ambiguous file, naming the setting.
    renamed = DAY_FIRST_CONFIG.replace("name: exports", "name: other").replace(
        "source: exports", "source: other"
    )
    config.write_text(renamed.format(db_url=db_url))
    refused = run(config, "sync")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "sources[0].date_order" in refused.stdout + refused.stderr


def test_ten_thousand_hours_are_invalid_and_the_run_exits_3(tmp_path: Path, db_url: str) -> None:
    """Issue 10 item 3: a 10000-hour row was deducted (1,000,000.00) with exit 0."""
    config = tmp_path / "config.yaml"
    config.write_text(DAY_FIRST_CONFIG.format(db_url=db_url))
    (tmp_path / "export.csv").write_text(
        "date,hours,client,description\n"
        "2026-11-02,10000,ACME Corp,typo\n"
        "2026-11-02,1,ACME Corp,ok\n"
    )
    done = run(config, "sync")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "invalid 1" in done.stdout
    (row,) = run_json(config, "balance")
    assert row["balance"] == "2900.00"
    listed = run(config, "entries", "--status", "invalid")
    assert "10000.00 hours is more than sources[0].max_hours (24)" in listed.stdout


def test_a_repeated_id_keeps_the_last_good_version_until_fixed(tmp_path: Path, db_url: str) -> None:
    """Issue 10 (duplicate ids): both lines are listed and nothing about the entry changes."""
    config = tmp_path / "config.yaml"
    config.write_text(DAY_FIRST_CONFIG.format(db_url=db_url))
    export = tmp_path / "export.csv"
    header = "id,date,hours,client,description\n"
    export.write_text(header + "7,2026-11-03,1,ACME Corp,first\n")
    assert run(config, "sync").returncode == 0
    export.write_text(
        header
        + "7,2026-11-02,2,ACME Corp,one\n"
        + "8,2026-11-03,1,ACME Corp,other\n"
        + "7,2026-11-04,3,ACME Corp,two\n"
    )
    done = run(config, "sync")
    assert done.returncode == 3, done.stdout + done.stderr
    (row,) = run_json(config, "balance")
    assert row["balance"] == "2800.00"  # 7 still at its 1 h (not deleted on 11-03), 8 charged
    listed = run(config, "entries", "--status", "invalid").stdout
    assert "export.csv line 2" in listed and "export.csv line 4" in listed
    assert "id '7' appears on lines 2 and 4" in listed
    export.write_text(header + "7,2026-11-04,3,ACME Corp,two\n8,2026-11-03,1,ACME Corp,other\n")
    assert run(config, "sync").returncode == 0
    (row,) = run_json(config, "balance")
    assert row["balance"] == "2600.00"
    assert "appears on lines" not in run(config, "entries", "--status", "invalid").stdout


TWO_CLIENTS = (
    DAY_FIRST_CONFIG
    + """\
  - id: globex
    name: Globex
    currency: EUR
    match:
      - {{source: exports, client: "Globex"}}
    budgets:
      - id: support
        unit: money
        rate: "100.00"
        opening_balance: "1000.00"
"""
)


def test_an_export_filtered_to_one_client_leaves_the_others_alone(
    tmp_path: Path, db_url: str
) -> None:
    """Issue 10 (filtered exports): the ACME-only export reversed Globex's work of those dates."""
    config = tmp_path / "config.yaml"
    config.write_text(TWO_CLIENTS.format(db_url=db_url))
    export = tmp_path / "export.csv"
    header = "date,hours,client,description\n"
    export.write_text(header + "2026-11-02,1,ACME Corp,a\n2026-11-02,2,Globex,g\n")
    assert run(config, "sync").returncode == 0
    export.write_text(header + "2026-11-02,1,ACME Corp,a\n2026-11-03,1,ACME Corp,b\n")
    done = run(config, "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    balances = {row["customer"]: row["balance"] for row in run_json(config, "balance")}
    assert balances == {"acme": "2800.00", "globex": "800.00"}
    # The old reading, asked for: the file lists every entry of its dates.
    config.write_text(
        TWO_CLIENTS.format(db_url=db_url).replace(
            "path: export.csv", "path: export.csv\n    snapshot: dates"
        )
    )
    assert run(config, "sync", "--full").returncode == 0
    balances = {row["customer"]: row["balance"] for row in run_json(config, "balance")}
    assert balances == {"acme": "2800.00", "globex": "1000.00"}


def test_a_folder_of_exports_each_a_snapshot_of_its_own_scope(tmp_path: Path, db_url: str) -> None:
    """Issue 10 (filtered exports): `path` names a folder; files apply in name order, a later
    export decides its dates and clients, and a file that disappears reverses nothing."""
    config = tmp_path / "config.yaml"
    config.write_text(TWO_CLIENTS.format(db_url=db_url).replace("path: export.csv", "path: in"))
    folder = tmp_path / "in"
    folder.mkdir()
    header = "date,hours,client,description\n"
    (folder / "2026-10.csv").write_text(header + "2026-10-05,1,ACME Corp,october\n")
    (folder / "2026-11-acme.csv").write_text(header + "2026-11-02,2,ACME Corp,a\n")
    (folder / "2026-11-globex.csv").write_text(header + "2026-11-02,3,Globex,g\n")
    done = run(config, "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    balances = {row["customer"]: row["balance"] for row in run_json(config, "balance")}
    assert balances == {"acme": "2700.00", "globex": "700.00"}
    # A later export of ACME's November (a later name) decides ACME's November: "a" is
    # 0.5 h now, though the earlier file still says 2 h.
    (folder / "2026-11-zacme.csv").write_text(
        header + "2026-11-02,0.5,ACME Corp,a\n2026-11-03,1,ACME Corp,b\n"
    )
    done = run(config, "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    balances = {row["customer"]: row["balance"] for row in run_json(config, "balance")}
    assert balances == {"acme": "2750.00", "globex": "700.00"}
    # October's file is gone: its entry stays charged; an empty folder reverses nothing.
    (folder / "2026-10.csv").unlink()
    assert run(config, "sync").returncode == 0
    for name in ("2026-11-acme.csv", "2026-11-globex.csv", "2026-11-zacme.csv"):
        (folder / name).unlink()
    empty = run(config, "sync")
    assert empty.returncode == 1, empty.stdout + empty.stderr
    assert "has no .csv file (sources[0].path): nothing read, nothing reversed" in (
        empty.stdout + empty.stderr
    )
    balances = {row["customer"]: row["balance"] for row in run_json(config, "balance")}
    assert balances == {"acme": "2750.00", "globex": "700.00"}


def test_an_edited_row_without_ids_is_a_new_version_of_its_entry(
    tmp_path: Path, db_url: str
) -> None:
    """Issue 10 (filtered exports): an export without ids identified a row by its description
    too, so an edited description was a deletion plus a new entry."""
    config = tmp_path / "config.yaml"
    config.write_text(DAY_FIRST_CONFIG.format(db_url=db_url))
    export = tmp_path / "export.csv"
    header = "date,hours,user,client,project,description\n"
    export.write_text(
        header + "2026-11-02,1,Ann,ACME Corp,Web,typo\n2026-11-02,2,Ann,ACME Corp,Web,other\n"
    )
    assert run(config, "sync").returncode == 0
    export.write_text(
        header + "2026-11-02,1.5,Ann,ACME Corp,Web,fixed\n2026-11-02,2,Ann,ACME Corp,Web,other\n"
    )
    done = run(config, "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "new 0, changed 1, deleted 0" in done.stdout, done.stdout
    (row,) = run_json(config, "balance")
    assert row["balance"] == "2650.00"
    listed = run_json(config, "entries")
    assert sorted(e["description"] for e in listed) == ["fixed", "other"]


def test_the_upgrade_to_the_new_identity_moves_no_money(tmp_path: Path, db_url: str) -> None:
    """Entries stored under the previous release's ids (which hashed the description too) are
    carried over to the new ids on the first sync after the upgrade: nothing is reversed or
    charged again, and an approval stays. The ledger of the previous release is made here by
    an export whose `id` column holds exactly the ids that release derived."""
    config = tmp_path / "config.yaml"
    review = DAY_FIRST_CONFIG.replace('rate: "100.00"', 'rate: "100.00"\n        approval: review')
    config.write_text(review.format(db_url=db_url))
    export = tmp_path / "export.csv"
    rows = [("2026-11-02", "1", "a"), ("2026-11-02", "2", "b"), ("2026-11-02", "2", "b")]
    olds: list[str] = []
    for day, _, text in rows:
        key = "\x1f".join((day, "Ann", "ACME Corp", "Web", "", text, ""))
        old = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
        olds.append(old if old not in olds else f"{old}#2")
    lines = [
        f"{old},{d},{h},Ann,ACME Corp,Web,{t}\n" for old, (d, h, t) in zip(olds, rows, strict=True)
    ]
    export.write_text("id,date,hours,user,client,project,description\n" + "".join(lines))
    assert run(config, "sync").returncode == 0
    ids = [str(e["id"]) for e in run_json(config, "entries", "--status", "pending")]
    assert run(config, "entries", "approve", *ids).returncode == 0
    (row,) = run_json(config, "balance")
    assert row["balance"] == "2500.00"
    # The same export without its id column, as the previous release read it.
    export.write_text(
        "date,hours,user,client,project,description\n"
        + "".join(line.split(",", 1)[1] for line in lines)
    )
    done = run(config, "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "new 0, changed 0, deleted 0" in done.stdout, done.stdout
    (row,) = run_json(config, "balance")
    assert row["balance"] == "2500.00"
    assert {e["status"] for e in run_json(config, "entries")} == {"deducted"}

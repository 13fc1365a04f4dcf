"""Benchmark: sync N generated CSV entries into a fresh SQLite ledger with the real command.

Reproduce with `make bench` or `.venv/bin/python bench/csv_sync.py --rows 20000 100000 200000`.
Each size runs `prepaid sync` in a child process on a fresh database `--repeat` times (3 by
default) and reports the best and the median wall time, the child's peak resident memory
(ru_maxrss), then a no-change re-sync. The best of a few runs is what the code costs; the
median shows how much a shared machine added. The target for 100,000 rows is under 5 s and
150 MB on a 2-core machine, with memory flat as rows grow.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PREPAID = str(Path(sys.executable).parent / "prepaid")

CONFIG = """\
database: sqlite:///{db}
timezone: UTC
sources:
  - name: exports
    type: csv
    path: {csv}
    format: generic
invoicing:
  - name: files
    type: outbox
    path: {outbox}
customers:
  - id: acme
    name: ACME Corp
    currency: EUR
    invoice_to: {{sink: files}}
    match:
      - {{source: exports, client: "ACME Corp"}}
    budgets:
      - id: retainer
        unit: money
        rate: "95.00"
        opening_balance: "10000000.00"
        rounding: {{increment_minutes: 15, mode: up}}
        exclude: {{tags: [internal]}}
        refill: {{below: "500.00", amount: "2000.00"}}
  - id: globex
    name: Globex
    currency: GBP
    invoice_to: {{sink: files}}
    match:
      - {{source: exports, client: Globex}}
    budgets:
      - id: support
        unit: hours
        rate: "120.00"
        opening_balance: "100000"
"""

HEADER = ["id", "updated_at", "date", "start", "end", "hours", "user", "client", "project",
          "task", "tags", "billable", "description"]  # fmt: skip


def write_csv(path: Path, rows: int) -> None:
    """`rows` generic entries spread over 2026, three clients, some tags and non-billable."""
    start = dt.date(2026, 1, 1)
    clients = ("ACME Corp", "Globex", "Initech")
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(rows):
            day = start + dt.timedelta(days=i % 300)
            out.writerow(
                [
                    f"e{i}",
                    f"{day.isoformat()}T18:00:00Z",
                    day.isoformat(),
                    "",
                    "",
                    f"{(i % 16 + 1) * 0.25:.2f}",
                    f"user{i % 25}",
                    clients[i % 3],
                    f"project{i % 40}",
                    "Development",
                    "internal" if i % 17 == 0 else "",
                    "false" if i % 11 == 0 else "true",
                    f"work item {i}",
                ]
            )


def run_sync(config: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB of the child, and its first output line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    began = time.perf_counter()
    result = subprocess.run(
        [PREPAID, "--config", str(config), "sync"], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - began
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if result.returncode not in (0, 3):
        raise SystemExit(f"sync failed ({result.returncode}): {result.stderr}")
    # ru_maxrss of children is the largest child so far; sizes run in increasing order
    return wall, max(peak_kb, before) / 1024, result.stdout.splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[20000, 100000, 200000])
    parser.add_argument("--repeat", type=int, default=3, help="fresh syncs per size (best wins)")
    args = parser.parse_args()
    print(f"# python {sys.version.split()[0]}, {os.cpu_count()} cores, best of {args.repeat}")
    print("rows\tfirst sync s\tmedian s\tpeak MB\tre-sync s\tsummary")
    for rows in sorted(args.rows):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            csv_path = folder / "entries.csv"
            write_csv(csv_path, rows)
            config = folder / "config.yaml"
            config.write_text(
                CONFIG.format(db=folder / "ledger.db", csv=csv_path, outbox=folder / "outbox")
            )
            walls, peak = [], 0.0
            for _ in range(args.repeat):
                for stale in folder.glob("ledger.db*"):
                    stale.unlink()
                wall, run_peak, summary = run_sync(config)
                walls.append(wall)
                peak = max(peak, run_peak)
            again, _, _ = run_sync(config)
            best, median = min(walls), statistics.median(walls)
            print(f"{rows}\t{best:.2f}\t{median:.2f}\t{peak:.0f}\t{again:.2f}\t{summary}")


if __name__ == "__main__":
    main()

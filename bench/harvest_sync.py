"""Benchmark: Harvest entries through the whole pipeline against a bare download of the pages.

Reproduce with `make bench-harvest`, or with
`.venv/bin/python bench/harvest_sync.py --entries 20000 200000`.

For each size a fake Harvest API (tests/fakes/harvest_server.py) runs in a child process with
that many entries: work dates 40 to 340 days back (outside the 30-day look-back window, a
backfill), `updated_at` one second apart ending before now, two clients and every fifth entry
not billable. Then, in one run:

* bare download: this process follows `links.next` over the same listing the first sync reads
  (`updated_since` = now - lookback, 2000 per page), plus the look-back window request, with
  `requests` and `json.loads(parse_float=Decimal)`, doing nothing with the entries (best of 2,
  after an untimed warm-up that also makes the fake cache its JSON);
* full sync: `prepaid sync` in a child process against a fresh SQLite ledger (process start,
  config, migrations, download, decode, normalise, route, value, store, post, refill check);
* no-change re-sync: `prepaid sync` again with the look-back reconcile not due
  (`reconcile_every: 1d`), its seconds and the request count from its summary line;
* peak RSS of each sync child (`wait4` rusage of that child alone, not the fake's).

Goals: full sync within 2x the bare download; re-sync <= 2 requests and < 1 s; peak RSS flat
from 20,000 to 200,000 entries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PREPAID = str(Path(sys.executable).parent / "prepaid")
LOOKBACK_DAYS = 30
PER_PAGE = 2000
USER_AGENT = "prepaid-sync bench (ops@example.com)"

CONFIG = """\
database: sqlite:///{db}
timezone: UTC
sources:
  - name: harvest
    type: harvest
    account_id: "{account}"
    token: ${{HARVEST_TOKEN}}
    user_agent: "{user_agent}"
    base_url: {base_url}
    lookback_days: {lookback}
    reconcile_every: 1d
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
      - {{source: harvest, client_ids: [5735776]}}
    budgets:
      - id: retainer
        unit: money
        rate: "95.00"
        opening_balance: "100000000.00"
        rounding: {{increment_minutes: 15, mode: up}}
        refill: {{below: "500.00", amount: "2000.00"}}
  - id: globex
    name: Globex Ltd
    currency: GBP
    invoice_to: {{sink: files}}
    match:
      - {{source: harvest, client_ids: [5735777]}}
    budgets:
      - id: support
        unit: hours
        rate: "120.00"
        opening_balance: "10000000"
"""


# --- the fake, in its own process -------------------------------------------------------------


def serve(entries: int) -> None:
    """Child mode: fill a fake Harvest, print its base URL, serve until stdin closes."""
    sys.path.insert(0, str(ROOT))
    from tests.fakes.harvest_server import FakeHarvest

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    fake = FakeHarvest(start=now - dt.timedelta(seconds=entries + 3600))
    today = now.date()
    globex = {"id": 5735777, "name": "Globex Ltd", "currency": "GBP"}
    for n in range(entries):
        fields: dict[str, Any] = {
            "spent_date": (today - dt.timedelta(days=40 + n % 300)).isoformat(),
            "hours": f"{(n % 16 + 1) * 0.2:.2f}",
        }
        if n % 2:
            fields["client"] = globex
        if n % 5 == 0:
            fields["billable"] = False
        fake.add(**fields)
    fake.start()
    print(fake.base_url, fake.token, fake.account_id, flush=True)
    sys.stdin.read()  # the parent closes our stdin to stop us
    fake.stop()


def start_fake(entries: int) -> tuple[subprocess.Popen[str], str, str, str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(entries)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 3:
        proc.kill()
        raise SystemExit("the fake Harvest did not start")
    base_url, token, account = line
    return proc, base_url, token, account


def stop_fake(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- the bare download ------------------------------------------------------------------------


def bare_download(base_url: str, token: str, account: str) -> tuple[float, int, int]:
    """Seconds, entries and requests to read the listings the first sync reads."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Harvest-Account-Id": account,
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
    }
    now = dt.datetime.now(dt.UTC)
    since = (now - dt.timedelta(days=LOOKBACK_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = now.date() + dt.timedelta(days=1)
    window = {"from": (end - dt.timedelta(days=LOOKBACK_DAYS + 1)).isoformat(), "to": str(end)}
    listings = [{"per_page": PER_PAGE, "updated_since": since}, {"per_page": PER_PAGE, **window}]
    count = made = 0
    began = time.perf_counter()
    with requests.Session() as session:
        for params in listings:
            url: str | None = f"{base_url}/time_entries"
            query: dict[str, Any] | None = params
            while url:
                response = session.get(url, params=query, headers=headers, timeout=(5, 60))
                response.raise_for_status()
                made += 1
                body = json.loads(response.content, parse_float=Decimal)
                count += len(body["time_entries"])
                url, query = body["links"]["next"], None
    return time.perf_counter() - began, count, made


# --- the real command -------------------------------------------------------------------------


def run_sync(config: Path, token: str) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB of this child alone, and the harvest summary line."""
    env = {**os.environ, "HARVEST_TOKEN": token}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(
            [PREPAID, "--config", str(config), "sync"], stdout=out, stderr=err, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"prepaid sync failed ({proc.returncode}):\n{stdout}{stderr}")
    line = next((x for x in stdout.splitlines() if x.startswith("harvest:")), stdout)
    return wall, usage.ru_maxrss / 1024, line


def requests_of(line: str) -> int:
    found = re.search(r"; (\d+) requests", line)
    return int(found.group(1)) if found else 0


def measure(entries: int, folder: Path) -> dict[str, Any]:
    proc, base_url, token, account = start_fake(entries)
    try:
        bare_download(base_url, token, account)  # warm-up: the fake caches each entry's JSON
        runs = [bare_download(base_url, token, account) for _ in range(2)]
        bare, downloaded, bare_requests = min(runs)
        config = folder / "config.yaml"
        config.write_text(
            CONFIG.format(
                db=folder / "ledger.db",
                account=account,
                user_agent=USER_AGENT,
                base_url=base_url,
                lookback=LOOKBACK_DAYS,
                outbox=folder / "outbox",
            )
        )
        full, peak, summary = run_sync(config, token)
        again, again_peak, again_summary = run_sync(config, token)
    finally:
        stop_fake(proc)
    return {
        "entries": entries,
        "downloaded": downloaded,
        "bare_requests": bare_requests,
        "bare_s": bare,
        "sync_s": full,
        "ratio": full / bare,
        "sync_requests": requests_of(summary),
        "peak_mb": peak,
        "resync_s": again,
        "resync_requests": requests_of(again_summary),
        "resync_peak_mb": again_peak,
        "summary": summary,
        "resync_summary": again_summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[20000, 200000])
    parser.add_argument("--serve", type=int, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    sizes = " ".join(str(n) for n in sorted(args.entries))
    print(f"# python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"# reproduce: .venv/bin/python bench/harvest_sync.py --entries {sizes}")
    header = (
        "entries", "bare download s", "full sync s", "ratio", "sync peak MB",
        "re-sync s", "re-sync requests",
    )  # fmt: skip
    print("\t".join(header))
    results = []
    for entries in sorted(args.entries):
        with tempfile.TemporaryDirectory() as tmp:
            r = measure(entries, Path(tmp))
        results.append(r)
        print(
            f"{r['entries']}\t{r['bare_s']:.2f}\t{r['sync_s']:.2f}\t{r['ratio']:.2f}x"
            f"\t{r['peak_mb']:.0f}\t{r['resync_s']:.2f}\t{r['resync_requests']}",
            flush=True,
        )
    for r in results:
        print(f"# {r['entries']}: first sync: {r['summary']}")
        print(f"# {r['entries']}: re-sync:    {r['resync_summary']}")
        if r["downloaded"] != r["entries"]:
            print(f"# warning: the bare download read {r['downloaded']} entries")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

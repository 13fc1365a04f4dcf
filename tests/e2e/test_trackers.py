"""End-to-end per tracker: the real `prepaid` command against each tracker's local fake.

Every test starts the fakes in-process (a thread on 127.0.0.1), writes a config in tmp_path
(secrets through `${ENV}` given to the child only), runs `prepaid sync` in a subprocess and
reads the results back with `prepaid balance|entries|ledger --format json`, on SQLite and on
PostgreSQL. Each story covers: exact debits, a running timer (not deducted until stopped), an
edit posted as the difference, a deletion (look-back window with `sync --full` where the
tracker hides deletions, `server_deleted_at` for Toggl's `scope: me`), a no-change re-sync
that posts nothing, and a 429 with Retry-After that is waited out. The failure tests cover
rejected credentials (the setting named, no token text anywhere) and a 5xx that outlives the
retries (the source fails, its cursor stays, other sources still sync, the next run completes).

Entry dates are relative to today so they fall inside the look-back window; every assertion is
on exact amounts and counts, never on elapsed time.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from sync.ledger import schema
from tests.fakes.clockify_server import USER_2, FakeClockify
from tests.fakes.harvest_server import FakeHarvest
from tests.fakes.toggl_server import FakeToggl
from tests.support import run_prepaid

pytestmark = pytest.mark.slow

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
TODAY = NOW.date()
YESTERDAY = TODAY - dt.timedelta(days=1)
OLD = TODAY - dt.timedelta(days=10)  # inside the look-back window, outside a recent one

HARVEST_ACME, HARVEST_GLOBEX = 5735776, 5735777
GLOBEX_CLIENT = {"id": HARVEST_GLOBEX, "name": "Globex Ltd", "currency": "GBP"}
TOGGL_INTERNAL = 202793182  # the fake's project without a client

ENV = {
    "HARVEST_TOKEN": "harvest-fake-token-0001",
    "TOGGL_TOKEN": "toggl-fake-token-0001",
    "CLOCKIFY_KEY": "clockify-fake-key-0001",
}
BAD = {
    "HARVEST_TOKEN": "hv-wrong-secret-5f3a9c",
    "TOGGL_TOKEN": "tg-wrong-secret-77b1e2",
    "CLOCKIFY_KEY": "ck-wrong-secret-0d94aa",
}

CONFIG = """\
database: {db}
timezone: UTC
sources:
{sources}
invoicing:
  - name: files
    type: outbox
    path: outbox
customers:
  - id: acme
    name: ACME Corp
    currency: EUR
    invoice_to: {{sink: files}}
    match:
{acme}
    budgets:
      - id: retainer
        unit: money
        rate: "100.00"
        opening_balance: "1000.00"
        refill: {{below: "100.00", amount: "1000.00"}}
  - id: globex
    name: Globex Ltd
    currency: GBP
    invoice_to: {{sink: files}}
    match:
{globex}
    budgets:
      - id: support
        unit: hours
        rate: "120.00"
        opening_balance: "10"
"""


def harvest_source(url: str) -> str:
    return f"""\
  - name: harvest
    type: harvest
    account_id: "123456"
    token: ${{HARVEST_TOKEN}}
    user_agent: "prepaid-sync tests (ops@example.com)"
    base_url: {url}
    lookback_days: 30
    reconcile_every: 1d"""


def toggl_source(url: str, *, name: str = "toggl", scope: str = "workspace") -> str:
    return f"""\
  - name: {name}
    type: toggl
    token: ${{TOGGL_TOKEN}}
    workspace_id: "{FakeToggl().workspace_id}"
    scope: {scope}
    base_url: {url}
    lookback_days: 30
    reconcile_every: 1d"""


def clockify_source(url: str) -> str:
    return f"""\
  - name: clockify
    type: clockify
    api_key: ${{CLOCKIFY_KEY}}
    workspace_id: {FakeClockify().workspace_id}
    base_url: {url}
    lookback_days: 30
    reconcile_every: 1d"""


CSV_SOURCE = """\
  - name: exports
    type: csv
    path: exports.csv
    format: generic"""

CSV_HEADER = (
    "id,updated_at,date,start,end,hours,user,client,project,task,tags,billable,description\n"
)


def csv_row(row_id: str, day: dt.date, hours: str) -> str:
    return f"{row_id},{day}T18:00:00Z,{day},,,{hours},Ann,Initech,Ops,Support,,true,Work\n"


def write_config(
    tmp_path: Path, db_url: str, sources: list[str], acme: list[str], globex: list[str]
) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        CONFIG.format(
            db=db_url,
            sources="\n".join(sources),
            acme="\n".join(f"      - {rule}" for rule in acme),
            globex="\n".join(f"      - {rule}" for rule in globex),
        )
    )
    return config


# --- running the command ----------------------------------------------------------------------


def run(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`prepaid --config CONFIG ARGS...` in a child whose environment holds the secrets."""
    return run_prepaid(config, *args, env=env if env is not None else ENV)


def read_json(config: Path, *args: str) -> Any:
    result = run(config, *args, "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def sync_json(config: Path, *args: str, code: int = 0) -> dict[str, dict[str, Any]]:
    """`prepaid sync ARGS --format json` -> each source's summary, by source name."""
    result = run(config, "sync", *args, "--format", "json")
    assert result.returncode == code, result.stdout + result.stderr
    return {s["source"]: s for s in json.loads(result.stdout)["sources"]}


def counts(summary: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: summary[name] for name in names}


def balances(config: Path) -> dict[str, tuple[str, str]]:
    """`customer/budget` -> (debited, balance)."""
    return {
        f"{r['customer']}/{r['budget']}": (r["debited"], r["balance"])
        for r in read_json(config, "balance")
    }


def entries(config: Path) -> dict[str, dict[str, Any]]:
    """The tracker's id -> its entry row."""
    return {e["external_id"]: e for e in read_json(config, "entries")}


def postings(config: Path) -> dict[int, list[str]]:
    """Entry id -> the amounts posted for it, oldest first."""
    found: dict[int, list[str]] = {}
    for row in read_json(config, "ledger"):
        if row["entry_id"] is not None:
            found.setdefault(int(row["entry_id"]), []).append(row["amount"])
    return found


def cursor_of(db_url: str, source: str) -> str | None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            table = schema.source_state
            return conn.execute(
                select(table.c.cursor).where(table.c.source == source)
            ).scalar_one_or_none()
    finally:
        engine.dispose()


# --- fakes ------------------------------------------------------------------------------------


def new_harvest() -> FakeHarvest:
    # Its clock (updated_at) starts an hour ago, so the first run's updated_since finds it all.
    return FakeHarvest(start=NOW - dt.timedelta(hours=1))


def new_toggl() -> FakeToggl:
    return FakeToggl(now=NOW - dt.timedelta(hours=1))


@pytest.fixture
def harvest() -> Iterator[FakeHarvest]:
    with new_harvest() as fake:
        yield fake


@pytest.fixture
def toggl() -> Iterator[FakeToggl]:
    with new_toggl() as fake:
        yield fake


@pytest.fixture
def clockify() -> Iterator[FakeClockify]:
    with FakeClockify() as fake:
        yield fake


@pytest.fixture
def fakes() -> Iterator[tuple[FakeHarvest, FakeToggl, FakeClockify]]:
    """All three tracker fakes, stopped together (each stop waits out a server poll)."""
    started = (new_harvest().start(), new_toggl().start(), FakeClockify().start())
    yield started
    stoppers = [threading.Thread(target=fake.stop) for fake in started]
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join()


def at(day: dt.date, hour: int = 9) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00+00:00"


def clockify_at(day: dt.date, hour: int = 9) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00Z"


# --- stories, one per tracker -----------------------------------------------------------------
# Each subprocess costs about a second, so a story reads the results back only where they prove
# something: the running timer after the first run, then entries, ledger and balance at the end.
# A run's `postings` count shows an edit was posted as one difference (not a reversal and a new
# debit), and the final balance pins its amount. Only Harvest's 429 asks for a real 1 s wait.


def test_harvest_story(tmp_path: Path, db_url: str, harvest: FakeHarvest) -> None:
    config = write_config(
        tmp_path,
        db_url,
        [harvest_source(harvest.base_url)],
        acme=[f"{{source: harvest, client_ids: [{HARVEST_ACME}]}}"],
        globex=[f"{{source: harvest, client_ids: [{HARVEST_GLOBEX}]}}"],
    )
    a = harvest.add(spent_date=str(YESTERDAY), hours="1.5")
    b = harvest.add(spent_date=str(YESTERDAY), hours="2.0", client=GLOBEX_CLIENT)
    old = harvest.add(spent_date=str(OLD), hours="1.0")
    timer = harvest.add(
        spent_date=str(TODAY),
        hours="0.4",
        is_running=True,
        timer_started_at=f"{TODAY}T00:05:00Z",
    )

    # First run: the updated_since pass only; a look-back pass would read every entry twice
    # (issue 10: "fetched 8" for 4 entries). The next run is the first reconciliation.
    first = sync_json(config)["harvest"]
    assert counts(first, "outcome", "fetched", "new", "unchanged", "deducted", "running") == {
        "outcome": "ok",
        "fetched": 4,
        "new": 4,
        "unchanged": 0,
        "deducted": 3,
        "running": 1,
    }
    assert first["requests"] == 1
    rows = entries(config)
    assert (rows[str(timer["id"])]["status"], rows[str(timer["id"])]["amount"]) == (
        "running",
        "0.00",
    )
    assert rows[str(a["id"])]["amount"] == "150.00"

    # No change, reconcile not due (reconcile_every: 1d): one listing, nothing posted.
    again = run(config, "sync")
    assert again.returncode == 0, again.stdout + again.stderr
    line = next(x for x in again.stdout.splitlines() if x.startswith("harvest:"))
    assert "new 0, changed 0, deleted 0" in line
    spent = re.search(r"; (\d+) requests", line)
    assert spent is not None and int(spent.group(1)) <= 2, line

    # An edit, the timer stopped, a deletion, and one 429 (Retry-After: 1) on the way.
    harvest.edit(a["id"], hours="2.0")
    harvest.edit(timer["id"], hours="0.5", is_running=False, timer_started_at=None)
    harvest.delete(old["id"])
    harvest.fail_next(1, 429, retry_after=1, path="/time_entries")
    before = harvest.count("/time_entries")
    edited = sync_json(config)["harvest"]
    assert counts(edited, "outcome", "new", "changed", "deleted", "postings", "requests") == {
        "outcome": "ok",
        "new": 0,
        "changed": 2,
        "deleted": 0,  # Harvest leaves no trace of a deletion: only the window finds it
        "postings": 2,
        "requests": 2,  # the 429 and its retry
    }
    assert harvest.count("/time_entries") - before == 2

    full = sync_json(config, "--full")["harvest"]
    assert counts(full, "outcome", "changed", "deleted", "postings") == {
        "outcome": "ok",
        "changed": 0,
        "deleted": 1,
        "postings": 1,
    }

    rows = entries(config)
    assert {k: (r["status"], r["amount"]) for k, r in rows.items()} == {
        str(a["id"]): ("deducted", "200.00"),
        str(b["id"]): ("deducted", "2.00"),
        str(old["id"]): ("deleted", "0.00"),
        str(timer["id"]): ("deducted", "50.00"),
    }
    ledger = postings(config)
    assert ledger[rows[str(a["id"])]["id"]] == ["-150.00", "-50.00"]  # the difference
    assert ledger[rows[str(old["id"])]["id"]] == ["-100.00", "100.00"]
    assert ledger[rows[str(timer["id"])]["id"]] == ["-50.00"]
    assert balances(config) == {
        "acme/retainer": ("250.00", "750.00"),
        "globex/support": ("2.00", "8.00"),
    }


def test_toggl_workspace_story(tmp_path: Path, db_url: str, toggl: FakeToggl) -> None:
    config = write_config(
        tmp_path,
        db_url,
        [toggl_source(toggl.base_url)],
        acme=[f"{{source: toggl, client_ids: [{FakeToggl.CLIENT}]}}"],
        globex=[f"{{source: toggl, project_ids: [{TOGGL_INTERNAL}]}}"],
    )
    a = toggl.add(start=at(YESTERDAY), seconds=3600, project_id=FakeToggl.PROJECT)
    b = toggl.add(start=at(YESTERDAY, 11), seconds=7200, project_id=TOGGL_INTERNAL)
    old = toggl.add(start=at(OLD), seconds=1800, project_id=FakeToggl.PROJECT)
    timer = toggl.add(start=at(YESTERDAY, 14), seconds=-1, project_id=FakeToggl.PROJECT)

    # Reports v3 lists stopped entries only: the running timer is not even seen yet.
    first = sync_json(config)["toggl"]
    assert counts(first, "outcome", "new", "deducted", "running", "postings") == {
        "outcome": "ok",
        "new": 3,
        "deducted": 3,
        "running": 0,
        "postings": 3,
    }

    again = sync_json(config)["toggl"]
    assert counts(again, "outcome", "new", "changed", "deleted", "postings") == {
        "outcome": "ok",
        "new": 0,
        "changed": 0,
        "deleted": 0,
        "postings": 0,
    }

    toggl.edit(a["id"], duration=5400)
    toggl.edit(timer["id"], duration=1800)
    toggl.delete(old["id"])  # ten days back: only the look-back window (--full) sees it
    toggl.fail_next(1, 429, retry_after=0, path="search/time_entries")
    before = toggl.count("search/time_entries")
    full = sync_json(config, "--full")["toggl"]
    assert counts(full, "outcome", "new", "changed", "deleted", "postings") == {
        "outcome": "ok",
        "new": 1,  # the stopped timer
        "changed": 1,
        "deleted": 1,
        "postings": 3,  # one difference for the edit, one debit, one reversal
    }
    assert toggl.count("search/time_entries") - before == 2  # the 429 and its retry

    rows = entries(config)
    assert {k: (r["status"], r["amount"]) for k, r in rows.items()} == {
        str(a["id"]): ("deducted", "150.00"),
        str(b["id"]): ("deducted", "2.00"),
        str(old["id"]): ("deleted", "0.00"),
        str(timer["id"]): ("deducted", "50.00"),
    }
    assert balances(config) == {
        "acme/retainer": ("200.00", "800.00"),
        "globex/support": ("2.00", "8.00"),
    }


def test_toggl_me_story(tmp_path: Path, db_url: str, toggl: FakeToggl) -> None:
    config = write_config(
        tmp_path,
        db_url,
        [toggl_source(toggl.base_url, name="mine", scope="me")],
        acme=[f"{{source: mine, client_ids: [{FakeToggl.CLIENT}]}}"],
        globex=[f"{{source: mine, project_ids: [{TOGGL_INTERNAL}]}}"],
    )
    a = toggl.add(start=at(YESTERDAY), seconds=3600, project_id=FakeToggl.PROJECT)
    b = toggl.add(start=at(YESTERDAY, 11), seconds=7200, project_id=TOGGL_INTERNAL)
    timer = toggl.add(start=at(YESTERDAY, 14), seconds=-1, project_id=FakeToggl.PROJECT)

    first = sync_json(config)["mine"]
    assert counts(first, "outcome", "new", "deducted", "running", "postings") == {
        "outcome": "ok",
        "new": 3,
        "deducted": 2,
        "running": 1,
        "postings": 2,
    }
    rows = entries(config)
    assert (rows[str(timer["id"])]["status"], rows[str(timer["id"])]["amount"]) == (
        "running",
        "0.00",
    )

    again = sync_json(config)["mine"]
    assert counts(again, "outcome", "new", "changed", "deleted", "postings") == {
        "outcome": "ok",
        "new": 0,
        "changed": 0,
        "deleted": 0,
        "postings": 0,
    }

    toggl.edit(a["id"], duration=5400)
    toggl.edit(timer["id"], duration=1800)
    toggl.delete(b["id"])  # v9 `since` reports it with server_deleted_at: no --full needed
    toggl.fail_next(1, 429, retry_after=0, path="/me/time_entries")
    before = toggl.count("/me/time_entries")
    edited = sync_json(config)["mine"]
    assert counts(edited, "outcome", "new", "changed", "deleted", "postings") == {
        "outcome": "ok",
        "new": 0,
        "changed": 2,
        "deleted": 1,
        "postings": 3,
    }
    assert toggl.count("/me/time_entries") - before == 2  # the 429 and its retry

    rows = entries(config)
    assert {k: (r["status"], r["amount"]) for k, r in rows.items()} == {
        str(a["id"]): ("deducted", "150.00"),
        str(b["id"]): ("deleted", "0.00"),
        str(timer["id"]): ("deducted", "50.00"),
    }
    assert balances(config) == {
        "acme/retainer": ("200.00", "800.00"),
        "globex/support": ("0.00", "10.00"),
    }


def test_clockify_story(tmp_path: Path, db_url: str, clockify: FakeClockify) -> None:
    config = write_config(
        tmp_path,
        db_url,
        [clockify_source(clockify.base_url)],
        acme=[f"{{source: clockify, client_ids: [{FakeClockify.CLIENT}]}}"],
        globex=[f"{{source: clockify, user_ids: [{USER_2}]}}"],
    )
    project = {"projectId": FakeClockify.PROJECT}
    a = clockify.add(start=clockify_at(YESTERDAY), seconds=3600, **project)
    b = clockify.add(start=clockify_at(YESTERDAY, 11), seconds=7200, userId=USER_2)
    old = clockify.add(start=clockify_at(OLD), seconds=1800, **project)
    timer = clockify.add(start=clockify_at(YESTERDAY, 14), seconds=None, **project)

    first = sync_json(config)["clockify"]
    assert counts(first, "outcome", "new", "deducted", "running", "postings") == {
        "outcome": "ok",
        "new": 4,
        "deducted": 3,
        "running": 1,
        "postings": 3,
    }
    rows = entries(config)
    assert (rows[timer["id"]]["status"], rows[timer["id"]]["amount"]) == ("running", "0.00")

    again = sync_json(config)["clockify"]
    assert counts(again, "outcome", "new", "changed", "deleted", "postings") == {
        "outcome": "ok",
        "new": 0,
        "changed": 0,
        "deleted": 0,
        "postings": 0,
    }

    clockify.edit(a["id"], seconds=5400)
    clockify.edit(timer["id"], seconds=1800)
    clockify.delete(old["id"])  # ten days back: only the look-back window (--full) sees it
    clockify.fail_next(1, 429, retry_after=0, path="time-entries")
    before = clockify.count("time-entries")
    full = sync_json(config, "--full")["clockify"]
    assert counts(full, "outcome", "new", "changed", "deleted", "postings") == {
        "outcome": "ok",
        "new": 0,
        "changed": 2,
        "deleted": 1,
        "postings": 3,
    }
    assert clockify.count("time-entries") - before == 3  # two users, one 429 retried

    rows = entries(config)
    assert {k: (r["status"], r["amount"]) for k, r in rows.items()} == {
        a["id"]: ("deducted", "150.00"),
        b["id"]: ("deducted", "2.00"),
        old["id"]: ("deleted", "0.00"),
        timer["id"]: ("deducted", "50.00"),
    }
    assert balances(config) == {
        "acme/retainer": ("200.00", "800.00"),
        "globex/support": ("2.00", "8.00"),
    }


# --- failures ---------------------------------------------------------------------------------


def all_trackers_config(
    tmp_path: Path, db_url: str, fakes: tuple[FakeHarvest, FakeToggl, FakeClockify]
) -> Path:
    """sources[0..3]: Harvest, Toggl workspace, Toggl me, Clockify; sources[4]: a CSV file.
    Everything routes to acme, except the CSV file's client (Initech) which goes to globex.
    """
    harvest, toggl, clockify = fakes
    (tmp_path / "exports.csv").write_text(CSV_HEADER + csv_row("x1", YESTERDAY, "1.0"))
    return write_config(
        tmp_path,
        db_url,
        [
            harvest_source(harvest.base_url),
            toggl_source(toggl.base_url),
            toggl_source(toggl.base_url, name="mine", scope="me"),
            clockify_source(clockify.base_url),
            CSV_SOURCE,
        ],
        acme=[
            "{source: harvest}",
            "{source: toggl}",
            "{source: mine}",
            "{source: clockify}",
        ],
        globex=["{source: exports, client: Initech}"],
    )


TRACKERS = {
    "harvest": "sources[0].token",
    "toggl": "sources[1].token",
    "mine": "sources[2].token",
    "clockify": "sources[3].api_key",
}


def test_rejected_credentials_name_the_setting_and_never_show_the_token(
    tmp_path: Path, db_url: str, fakes: tuple[FakeHarvest, FakeToggl, FakeClockify]
) -> None:
    harvest = fakes[0]
    config = all_trackers_config(tmp_path, db_url, fakes)
    harvest.add(spent_date=str(YESTERDAY))

    # Every tracker refuses its (wrong) secret; the CSV source still runs: partly done.
    result = run(config, "sync", env=BAD)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    lines = result.stdout.splitlines()
    for source, setting in TRACKERS.items():
        summary = next(i for i, x in enumerate(lines) if x.startswith(f"{source}: "))
        detail = lines[summary + 1]
        assert detail.startswith("  failed: ") and f"check {setting}" in detail, detail
    assert "exports: fetched 1, new 1" in output
    assert "Traceback" not in output
    for secret in BAD.values():
        assert secret not in output

    # A tracker that echoes the token in its error still shows nothing of it; the only source
    # run failed, so the whole command failed.
    harvest.fail_next(
        1, 401, body={"error_description": f"token {BAD['HARVEST_TOKEN']} was revoked"}
    )
    alone = run(config, "sync", "--source", "harvest", env=BAD)
    output = alone.stdout + alone.stderr
    assert alone.returncode == 1, output
    assert "token rejected (401): check sources[0].token" in output
    assert "was revoked" in output and "Traceback" not in output
    for secret in BAD.values():
        assert secret not in output


def test_server_error_fails_the_source_keeps_its_cursor_and_spares_the_others(
    tmp_path: Path, db_url: str, fakes: tuple[FakeHarvest, FakeToggl, FakeClockify]
) -> None:
    harvest, toggl, clockify = fakes
    config = all_trackers_config(tmp_path, db_url, fakes)
    harvest.add(spent_date=str(YESTERDAY), hours="1.0")
    toggl.add(start=at(YESTERDAY), seconds=3600)  # a workspace entry, not the token owner's
    toggl.add(start=at(YESTERDAY, 11), seconds=3600, user_id=6234513)
    clockify.add(start=clockify_at(YESTERDAY), seconds=3600)

    first = sync_json(config)
    assert {name: s["new"] for name, s in first.items()} == {
        "harvest": 1,
        "toggl": 2,
        "mine": 1,
        "clockify": 1,
        "exports": 1,
    }
    cursors = {name: cursor_of(db_url, name) for name in TRACKERS}
    assert all(cursors.values()), cursors

    # New work everywhere, well past the adapters' overlap; then every tracker answers 500
    # until the retries (5 attempts) run out. Retry-After: 0 keeps the test fast.
    harvest.advance(3600)
    toggl.now += dt.timedelta(hours=1)
    harvest.add(spent_date=str(YESTERDAY), hours="2.0")
    toggl.add(start=at(YESTERDAY, 13), seconds=7200)
    clockify.add(start=clockify_at(YESTERDAY, 13), seconds=7200)
    (tmp_path / "exports.csv").write_text(
        CSV_HEADER + csv_row("x1", YESTERDAY, "1.0") + csv_row("x2", YESTERDAY, "0.5")
    )
    for fake in (harvest, toggl, clockify):
        fake.fail_next(5, 500, retry_after=0)
    toggl.fail_next(5, 500, retry_after=0)  # two Toggl sources share one fake

    failed = sync_json(config, code=3)
    for name in TRACKERS:
        outcome, error = failed[name]["outcome"], failed[name]["error"] or ""
        assert outcome == "failed" and failed[name]["new"] == 0, failed[name]
        assert "500" in error and "gave up after 5 attempt(s)" in error, error
    assert counts(failed["exports"], "outcome", "new") == {"outcome": "ok", "new": 1}
    assert {name: cursor_of(db_url, name) for name in TRACKERS} == cursors

    # The fault is gone: every tracker picks up exactly what it missed.
    healed = sync_json(config)
    assert {name: (s["outcome"], s["new"]) for name, s in healed.items()} == {
        "harvest": ("ok", 1),
        "toggl": ("ok", 1),
        "mine": ("ok", 1),
        "clockify": ("ok", 1),
        "exports": ("ok", 0),
    }
    # harvest 1 h + 2 h, toggl 1 h + 1 h + 2 h, mine 1 h + 2 h, clockify 1 h + 2 h at 100.00
    assert balances(config) == {
        "acme/retainer": ("1300.00", "-300.00"),
        "globex/support": ("1.50", "8.50"),
    }

"""Statement building (pure: rows in, statement out), its renderers and the SVG chart."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any
from zoneinfo import ZoneInfo

from sync.views.chart import BalancePoint, balance_chart_svg
from sync.views.statement import build_statement
from sync.views.statement_formats import render, to_csv, to_json
from tests.support import money_customer

UTC = dt.UTC
TZ = "Europe/Brussels"
GENERATED = dt.datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
EXPLANATION = "2026-11-19 2.00 h x EUR 100.00 = EUR 200.00; it cost 300.00 before"


def row(pid: int, kind: str, amount: int, at: dt.datetime, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": pid,
        "key": f"{kind}:{pid}",
        "budget_id": "retainer",
        "kind": kind,
        "amount_minor": amount,
        "unit": "EUR",
        "entry_version": None,
        "work_date": None,
        "recorded_at": at,
        "note": None,
        "explanation": None,
        "entry_role": None,
        "entry_current_version": None,
        "seconds": None,
        "user_name": None,
        "user_id": None,
        "project_name": None,
        "task_name": None,
        "description": None,
        "invoice_number": None,
        "invoice_id": None,
    }
    return {**base, **extra}


def work(
    pid: int, entry: int, n: int, kind: str, amount: int, at: dt.datetime, **extra: Any
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "key": f"entry:{entry}:acme:retainer:{n}",
        "entry_role": "charge" if n == 1 else "correction",
        "explanation": "2026-11-19 2.00 h x EUR 100.00 = EUR 200.00",
        "entry_version": "v2",
        "entry_current_version": "v2",
        "seconds": 7200,
        "user_name": "Ann",
        "project_name": "Website",
        "task_name": "Design",
        "description": "Wireframes",
        "work_date": dt.date(2026, 11, 19),
    }
    return row(pid, kind, amount, at, **{**details, **extra})


ROWS = [
    row(1, "opening", 100000, dt.datetime(2026, 10, 1, 8, tzinfo=UTC)),
    work(2, 1, 1, "entry", -20000, dt.datetime(2026, 10, 15, 10, tzinfo=UTC), entry_version="v1"),
    # 23:30 UTC on Oct 31 is already November 1st in Brussels
    row(3, "topup", 5000, dt.datetime(2026, 10, 31, 23, 30, tzinfo=UTC), note="wire 42"),
    work(4, 2, 1, "entry", -30000, dt.datetime(2026, 11, 20, 10, tzinfo=UTC), entry_version="v1"),
    row(
        5, "refill_credit", 100000, dt.datetime(2026, 11, 25, 10, tzinfo=UTC), invoice_number="N-7"
    ),
    work(
        6,
        2,
        2,
        "reversal",
        10000,
        dt.datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
        explanation=EXPLANATION,
    ),
    row(7, "topup", 99900, dt.datetime(2026, 11, 2, 10, tzinfo=UTC), budget_id="other"),
]


def build(start: dt.date | None, end: dt.date | None) -> Any:
    return build_statement(
        money_customer(), ROWS, start=start, end=end, timezone=TZ, generated_at=GENERATED
    )


def test_a_month_carries_the_balance_before_it_and_dates_by_local_day() -> None:
    (budget,) = build(dt.date(2026, 11, 1), dt.date(2026, 11, 30)).budgets
    assert budget.opening_minor == 80000
    assert [
        (line.posting_id, line.date.isoformat(), line.kind, line.amount_minor, line.balance_minor)
        for line in budget.lines
    ] == [
        (3, "2026-11-01", "top-up", 5000, 85000),
        (4, "2026-11-20", "work", -30000, 55000),
        (5, "2026-11-25", "refill", 100000, 155000),
    ]
    assert (budget.closing_minor, budget.added_minor, budget.used_minor) == (155000, 105000, 30000)
    assert [line.description for line in budget.lines] == [
        "Prepayment: wire 42",
        "Wireframes",
        "Refill invoice N-7",
    ]
    # the v1 work line no longer matches the entry's current version: no duration shown
    assert budget.lines[1].hours is None


def test_periods_chain_and_the_whole_history_ends_at_the_balance() -> None:
    november = build(dt.date(2026, 11, 1), dt.date(2026, 11, 30)).budgets[0]
    december = build(dt.date(2026, 12, 1), None).budgets[0]
    everything = build(None, None).budgets[0]
    assert december.opening_minor == november.closing_minor
    assert december.closing_minor == everything.closing_minor == 165000
    assert everything.opening_minor == 0
    assert sum(r["amount_minor"] for r in ROWS if r["budget_id"] == "retainer") == 165000
    (adjustment,) = december.lines
    assert (adjustment.kind, adjustment.hours, adjustment.person, adjustment.task) == (
        "adjustment",
        "2.00",
        "Ann",
        "Website / Design",
    )
    assert adjustment.explanation == EXPLANATION


def test_json_and_csv() -> None:
    statement = build(dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    data = json.loads(to_json(statement))
    (budget,) = data["budgets"]
    assert (data["from"], data["to"], data["timezone"]) == ("2026-11-01", "2026-11-30", TZ)
    assert {k: budget[k] for k in ("opening_balance", "added", "used", "closing_balance")} == {
        "opening_balance": "800.00",
        "added": "1050.00",
        "used": "300.00",
        "closing_balance": "1550.00",
    }
    assert [line["balance"] for line in budget["lines"]] == ["850.00", "550.00", "1550.00"]
    rows = list(csv.DictReader(io.StringIO(to_csv(statement))))
    assert [(r["kind"], r["amount"], r["balance"]) for r in rows] == [
        ("opening balance", "", "800.00"),
        ("top-up", "50.00", "850.00"),
        ("work", "-300.00", "550.00"),
        ("refill", "1000.00", "1550.00"),
        ("closing balance", "", "1550.00"),
    ]
    assert render(statement, "json") == to_json(statement)


def test_html_is_self_contained_and_escaped() -> None:
    rows = [*ROWS[:3], work(8, 3, 1, "entry", -100, ROWS[2]["recorded_at"], description="<b>x</b>")]
    statement = build_statement(
        money_customer(), rows, start=None, end=None, timezone=TZ, generated_at=GENERATED
    )
    html = render(statement, "html")
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "<svg" in html and "<script" not in html and "src=" not in html


def test_chart_is_a_staircase_in_integer_pixels() -> None:
    t0 = dt.datetime(2026, 11, 1, tzinfo=UTC)
    svg = balance_chart_svg(
        [BalancePoint(t0, 1000), BalancePoint(t0 + dt.timedelta(seconds=50), 500)],
        unit="EUR",
        unit_label="EUR",
        title="acme <retainer>",
        end=t0 + dt.timedelta(seconds=100),
        tz=ZoneInfo(TZ),
    )
    assert 'd="M8,22H320V109H632"' in svg
    assert "<title>acme &lt;retainer&gt;</title>" in svg
    assert "now 5.00 EUR" in svg
    empty = balance_chart_svg([], unit="EUR", unit_label="EUR", title="t", end=t0, tz=ZoneInfo(TZ))
    assert "no postings yet" in empty

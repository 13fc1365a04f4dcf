"""Statement building (pure: rows in, statement out), its renderers and the SVG chart."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import itertools
import json
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.views.chart import BalancePoint, balance_chart_svg
from sync.views.statement import build_statement
from sync.views.statement_formats import chart_for, render, to_csv, to_json
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
    work(
        2,
        1,
        1,
        "entry",
        -20000,
        dt.datetime(2026, 10, 15, 10, tzinfo=UTC),
        entry_version="v1",
        work_date=dt.date(2026, 10, 14),
    ),
    # 23:30 UTC on Oct 31 is already November 1st in Brussels
    row(3, "topup", 5000, dt.datetime(2026, 10, 31, 23, 30, tzinfo=UTC), note="wire 42"),
    work(4, 2, 1, "entry", -30000, dt.datetime(2026, 11, 20, 10, tzinfo=UTC), entry_version="v1"),
    row(
        5, "refill_credit", 100000, dt.datetime(2026, 11, 25, 10, tzinfo=UTC), invoice_number="N-7"
    ),
    # recorded December 1st (Brussels) for work of November 19: within the grace window
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
    # work of November 28 synced on December 3rd: still November's
    work(
        8,
        3,
        1,
        "entry",
        -2000,
        dt.datetime(2026, 12, 3, 10, tzinfo=UTC),
        work_date=dt.date(2026, 11, 28),
        description="Late sync",
    ),
    # a correction to October's work, recorded long after October closed: December's
    work(
        9,
        1,
        2,
        "reversal",
        5000,
        dt.datetime(2026, 12, 10, 10, tzinfo=UTC),
        work_date=dt.date(2026, 10, 14),
    ),
]


def build(start: dt.date | None, end: dt.date | None, rows: Any = None) -> Any:
    return build_statement(
        money_customer(),
        ROWS if rows is None else rows,
        start=start,
        end=end,
        timezone=TZ,
        generated_at=GENERATED,
    )


def test_a_month_shows_the_work_done_in_it_by_work_date() -> None:
    (budget,) = build(dt.date(2026, 11, 1), dt.date(2026, 11, 30)).budgets
    assert budget.opening_minor == 80000
    assert [
        (line.posting_id, line.date.isoformat(), line.kind, line.amount_minor, line.balance_minor)
        for line in budget.lines
    ] == [
        (3, "2026-11-01", "top-up", 5000, 85000),
        (4, "2026-11-19", "work", -30000, 55000),
        (6, "2026-11-19", "adjustment", 10000, 65000),
        (5, "2026-11-25", "refill", 100000, 165000),
        (8, "2026-11-28", "work", -2000, 163000),
    ]
    assert (budget.closing_minor, budget.added_minor, budget.used_minor) == (163000, 105000, 22000)
    assert [line.description for line in budget.lines][:2] == ["Prepayment: wire 42", "Wireframes"]
    # the v1 work line no longer matches the entry's current version: no duration shown
    assert budget.lines[1].hours is None
    assert not any(line.late for line in budget.lines)


def test_a_correction_after_the_grace_window_is_a_late_line_in_its_recording_month() -> None:
    october = build(dt.date(2026, 10, 1), dt.date(2026, 10, 31)).budgets[0]
    december = build(dt.date(2026, 12, 1), dt.date(2026, 12, 31)).budgets[0]
    assert [line.posting_id for line in october.lines] == [2]
    (late,) = december.lines
    assert (late.posting_id, late.date, late.kind, late.late) == (
        9,
        dt.date(2026, 12, 10),
        "adjustment",
        True,
    )
    assert late.work_date == dt.date(2026, 10, 14)
    assert late.explanation is not None and "work of 2026-10-14" in late.explanation


def test_periods_chain_and_the_whole_history_ends_at_the_balance() -> None:
    october = build(dt.date(2026, 10, 1), dt.date(2026, 10, 31)).budgets[0]
    november = build(dt.date(2026, 11, 1), dt.date(2026, 11, 30)).budgets[0]
    december = build(dt.date(2026, 12, 1), None).budgets[0]
    everything = build(None, None).budgets[0]
    assert october.opening_minor == 100000
    assert november.opening_minor == october.closing_minor
    assert december.opening_minor == november.closing_minor
    assert december.closing_minor == everything.closing_minor == 168000
    assert sum(r["amount_minor"] for r in ROWS if r["budget_id"] == "retainer") == 168000
    adjustment = november.lines[2]
    assert (adjustment.kind, adjustment.hours, adjustment.person, adjustment.task) == (
        "adjustment",
        "2.00",
        "Ann",
        "Website / Design",
    )
    assert adjustment.explanation == EXPLANATION


def test_the_opening_balance_is_one_opening_row_not_something_added() -> None:
    statement = build(None, None)
    (budget,) = statement.budgets
    assert budget.opening_minor == 100000
    assert all(line.kind != "opening" for line in budget.lines)
    assert budget.added_minor == 5000 + 100000
    rows = list(csv.DictReader(io.StringIO(to_csv(statement))))
    assert [r["kind"] for r in rows].count("opening balance") == 1
    html = render(statement, "html")
    assert html.count("Opening balance") == 2  # the summary and the table's first row
    corrected = [*ROWS, row(10, "opening", -1000, dt.datetime(2026, 11, 3, tzinfo=UTC))]
    (budget,) = build(None, None, corrected).budgets
    (line,) = [line for line in budget.lines if line.kind == "opening"]
    assert (line.description, line.date) == ("Opening balance corrected", dt.date(2026, 11, 3))


def test_json_and_csv() -> None:
    statement = build(dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    data = json.loads(to_json(statement))
    (budget,) = data["budgets"]
    assert (data["from"], data["to"], data["timezone"]) == ("2026-11-01", "2026-11-30", TZ)
    assert (data["grace_days"], data["settled_on"], data["provisional"]) == (5, "2026-12-05", True)
    assert {k: budget[k] for k in ("opening_balance", "added", "used", "closing_balance")} == {
        "opening_balance": "800.00",
        "added": "1050.00",
        "used": "220.00",
        "closing_balance": "1630.00",
    }
    assert [line["balance"] for line in budget["lines"]] == [
        "850.00",
        "550.00",
        "650.00",
        "1650.00",
        "1630.00",
    ]
    rows = list(csv.DictReader(io.StringIO(to_csv(statement))))
    assert [(r["kind"], r["unit"], r["amount"], r["balance"]) for r in rows] == [
        ("opening balance", "EUR", "", "800.00"),
        ("top-up", "EUR", "50.00", "850.00"),
        ("work", "EUR", "-300.00", "550.00"),
        ("adjustment", "EUR", "100.00", "650.00"),
        ("refill", "EUR", "1000.00", "1650.00"),
        ("work", "EUR", "-20.00", "1630.00"),
        ("closing balance", "EUR", "", "1630.00"),
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


def hours_customer() -> Any:
    customer = money_customer(below=None)
    budget = dataclasses.replace(customer.budgets[0], unit="hours", rate=None)
    return dataclasses.replace(customer, budgets=(budget,))


def test_hours_show_two_decimals_and_the_shown_lines_add_up_to_the_shown_balance() -> None:
    """Three thirds of an hour each (1200.4 s do not exist: 1200 s, 1201 s, 1199 s) from 10 h:
    the lines and totals shown must add up as shown."""
    at = dt.datetime(2026, 11, 3, 10, tzinfo=UTC)
    rows = [row(1, "opening", 36000 + 1, at, unit="HOUR")]
    for n, seconds in enumerate((1201, 1201, 1199, 1199), start=2):
        rows.append(work(n, n, 1, "entry", -seconds, at, unit="HOUR", seconds=seconds))
    statement = build_statement(
        hours_customer(), rows, start=None, end=None, timezone=TZ, generated_at=GENERATED
    )
    data = json.loads(to_json(statement))
    (budget,) = data["budgets"]
    amounts = [Decimal(line["amount"]) for line in budget["lines"]]
    assert all(len(line["amount"].split(".")[1]) == 2 for line in budget["lines"])
    assert budget["opening_balance"] == "10.00"
    assert Decimal(budget["opening_balance"]) + sum(amounts) == Decimal(budget["closing_balance"])
    assert budget["closing_balance"] == "8.67"
    assert Decimal(budget["used"]) == -sum(amounts)
    assert [line["hours"] for line in budget["lines"]] == ["0.33", "0.33", "0.33", "0.33"]
    rows_csv = list(csv.DictReader(io.StringIO(to_csv(statement))))
    assert {r["unit"] for r in rows_csv} == {"hours"}
    assert "Amount (hours)" in render(statement, "html")


_MONTHS = [dt.date(2026, m, 1) for m in range(1, 13)] + [dt.date(2027, 1, 1)]


@st.composite
def ledgers(draw: st.DrawFn) -> list[dict[str, Any]]:
    """An opening, then top-ups, work and corrections recorded over 2026, each with a work date
    up to four months before its recording (or a little after it)."""
    rows = [row(1, "opening", draw(st.integers(0, 10**6)), dt.datetime(2026, 1, 1, tzinfo=UTC))]
    for pid in range(2, draw(st.integers(1, 40)) + 2):
        at = dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(
            minutes=draw(st.integers(0, 364 * 24 * 60))
        )
        amount = draw(st.integers(-(10**5), 10**5))
        kind = draw(st.sampled_from(["topup", "entry", "reversal", "opening"]))
        if kind in ("topup", "opening"):
            rows.append(row(pid, kind, amount, at, unit="HOUR"))
            continue
        work_date = at.date() - dt.timedelta(days=draw(st.integers(-3, 120)))
        n = 1 if kind == "entry" else 2
        rows.append(work(pid, pid, n, kind, amount, at, unit="HOUR", work_date=work_date))
    return rows


@settings(max_examples=60, deadline=None)
@given(ledgers())
def test_consecutive_monthly_statements_chain_for_any_postings(rows: list[dict[str, Any]]) -> None:
    customer = hours_customer()
    months = [
        build_statement(
            customer,
            rows,
            start=start,
            end=following - dt.timedelta(days=1),
            timezone=TZ,
            generated_at=GENERATED,
        ).budgets[0]
        for start, following in itertools.pairwise(_MONTHS)
    ]
    before = build_statement(
        customer, rows, start=None, end=dt.date(2025, 12, 31), timezone=TZ, generated_at=GENERATED
    ).budgets[0]
    after = build_statement(
        customer, rows, start=dt.date(2027, 1, 1), end=None, timezone=TZ, generated_at=GENERATED
    ).budgets[0]
    everything = build_statement(
        customer, rows, start=None, end=None, timezone=TZ, generated_at=GENERATED
    ).budgets[0]
    chain = [before, *months, after]
    for earlier, later in itertools.pairwise(chain):
        assert later.opening_minor == earlier.closing_minor
    assert everything.opening_minor == chain[0].opening_minor
    assert after.closing_minor == everything.closing_minor
    assert sum(len(b.lines) for b in chain) == len(everything.lines)
    for b in chain:
        shown = Decimal(b.amount(b.opening_minor)) + sum(
            (Decimal(b.amount(line.amount_minor)) for line in b.lines), Decimal(0)
        )
        assert shown == Decimal(b.amount(b.closing_minor))
        assert b.opening_minor + b.added_minor - b.used_minor == b.closing_minor
        assert all(line.kind != "opening" or line.posting_id != 1 for line in b.lines)


def test_the_chart_starts_at_the_first_posting_even_the_opening_alone() -> None:
    only_opening = [row(1, "opening", 100000, dt.datetime(2026, 10, 1, 8, tzinfo=UTC))]
    statement = build(None, None, only_opening)
    (budget,) = statement.budgets
    assert budget.starts == dt.date(2026, 10, 1)
    html = render(statement, "html")
    assert "no postings yet" not in html and "now 1000.00 EUR" in html
    # a period that starts before the budget existed is drawn from the first posting on
    (budget,) = build(dt.date(2020, 1, 1), None).budgets
    svg = chart_for(budget, build(dt.date(2020, 1, 1), None), ZoneInfo(TZ))
    assert ">2026-10-01</text>" in svg and "2020-01-01" not in svg

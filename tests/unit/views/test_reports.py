"""The read side's records and the status page's burn-down, on a real (SQLite) ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, insert

from sync.app import App
from sync.ledger import schema
from sync.model import PostingKind
from sync.views.chart import BalancePoint
from sync.views.reports import balance_points, balance_rows, ledger_rows
from sync.views.statement import build_statement, load_rows
from sync.views.statement_formats import chart_for
from sync.views.status_page import BURN_DOWN_DAYS, load_status, render_status
from tests.support import money_customer, settings_for

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
TZ = "Europe/Brussels"


def posting(key: str, customer: str, amount: int, at: dt.datetime) -> dict[str, Any]:
    return {
        "key": key,
        "customer_id": customer,
        "budget_id": "retainer",
        "kind": PostingKind.TOPUP,
        "amount_minor": amount,
        "unit": "EUR",
        "recorded_at": at,
        "reason": key,
    }


def ledger_app(database: str) -> App:
    """ACME and Globex (EUR 1000.00 openings, recorded now, so first in ledger order), then
    postings over a year: some long before the burn-down window, one a microsecond before
    its local-midnight start, one right at it."""
    globex = dataclasses.replace(money_customer(), id="globex", name="Globex Ltd")
    settings = dataclasses.replace(settings_for(database, money_customer(), globex), timezone=TZ)
    app = App(settings)
    app.prepare()
    start = NOW.astimezone(ZoneInfo(TZ)).date() - dt.timedelta(days=BURN_DOWN_DAYS)
    midnight = dt.datetime.combine(start, dt.time(), tzinfo=ZoneInfo(TZ))
    with app.ledger.begin() as conn:
        conn.execute(
            insert(schema.postings),
            [
                posting("old-1", "acme", 1000, dt.datetime(2025, 12, 1, tzinfo=UTC)),
                posting("old-2", "acme", -250, midnight - dt.timedelta(microseconds=1)),
                posting("edge", "acme", 700, midnight),
                posting("recent", "acme", -300, dt.datetime(2026, 11, 20, tzinfo=UTC)),
                posting("g-old", "globex", 5000, dt.datetime(2026, 1, 1, tzinfo=UTC)),
            ],
        )
    return app


def test_records_hold_values_not_text(sqlite_url: str) -> None:
    app = ledger_app(sqlite_url)
    with app.ledger.read() as conn:
        acme = balance_rows(conn, app.settings, "acme")[0]
        last = ledger_rows(conn, customer_id="acme")[-1]
    assert (acme.balance, acme.credited, acme.below) == (
        Decimal("1011.50"),
        Decimal("11.50"),
        Decimal("300.00"),
    )
    assert (acme.unit_label, acme.open_refill) == ("EUR", None)
    assert (last.amount, last.balance_after, last.recorded_at.tzinfo is not None) == (
        Decimal("-3.00"),
        Decimal("1011.50"),
        True,
    )


def test_balance_points_carry_the_past_and_step_at_each_later_posting(db_url: str) -> None:
    app = ledger_app(db_url)
    since = dt.datetime(2026, 9, 6, tzinfo=ZoneInfo(TZ))
    with app.ledger.read() as conn:
        points = balance_points(conn, since)
    acme = points[("acme", "retainer", "EUR")]
    assert [p.balance_minor for p in acme] == [750, 100750, 101450, 101150]
    assert acme[0] == BalancePoint(since, 750)
    assert [p.balance_minor for p in points[("globex", "retainer", "EUR")]] == [5000, 105000]


def test_status_charts_come_from_one_query_and_statement_charts_end_at_the_balance(
    db_url: str,
) -> None:
    """The page used to build a statement per customer; one query draws every burn-down (by
    the moment postings were recorded). A statement's chart dates work by its work date, and
    ends at the balance."""
    app = ledger_app(db_url)
    tz = ZoneInfo(TZ)
    start = NOW.astimezone(tz).date() - dt.timedelta(days=BURN_DOWN_DAYS)
    since = dt.datetime.combine(start, dt.time(), tzinfo=tz)
    with app.ledger.read() as conn:
        data = load_status(conn, app.settings, NOW)
        for customer in app.settings.customers:
            statement = build_statement(
                customer,
                load_rows(conn, customer.id),
                start=start,
                end=None,
                timezone=TZ,
                generated_at=NOW,
            )
            (budget,) = statement.budgets
            (row,) = balance_rows(conn, app.settings, customer.id)
            assert (customer.id, "retainer") in data.charts
            assert f"now {row.balance} EUR" in chart_for(budget, statement, tz)
        statements: list[str] = []

        def record(*args: Any) -> None:
            statements.append(str(args[2]))

        event.listen(conn.engine, "before_cursor_execute", record)
        try:
            balance_points(conn, since)
        finally:
            event.remove(conn.engine, "before_cursor_execute", record)
    assert len(statements) == 1


def test_status_page_labels_times_with_the_zone_and_amounts_with_their_unit(
    sqlite_url: str,
) -> None:
    app = ledger_app(sqlite_url)
    with app.ledger.read() as conn:
        html = render_status(load_status(conn, app.settings, NOW), csrf="x")
    assert f"Last run ({TZ})" in html
    assert "1011.50 EUR" in html


def hours_app(database: str) -> App:
    """Globex with a 10-hour budget, then a 20-minute top-up and two 20-minute entries: no
    figure but the opening is a whole number of hundredths of an hour."""
    budget = dataclasses.replace(
        money_customer().budgets[0], unit="hours", opening_balance=Decimal(10), refill=None
    )
    globex = dataclasses.replace(money_customer(), id="globex", budgets=(budget,))
    app = App(settings_for(database, globex))
    app.prepare()
    at = dt.datetime(2026, 11, 20, tzinfo=UTC)
    rows = [
        ("topup", PostingKind.TOPUP, 1200),
        ("entry-1", PostingKind.ENTRY, -1200),
        ("entry-2", PostingKind.ENTRY, -1200),
    ]
    with app.ledger.begin() as conn:
        conn.execute(
            insert(schema.postings),
            [
                {**posting(key, "globex", amount, at), "kind": kind, "unit": "HOUR"}
                for key, kind, amount in rows
            ],
        )
    return app


def test_hours_are_shown_to_two_decimals_and_add_up_as_shown(sqlite_url: str) -> None:
    """10.00 h + 0.33 h (20 min) - 2 x 20 min: the balance shows 9.67 h and its parts add up
    to it as shown, in the table and in JSON; the ledger's lines add up to its balances."""
    from sync.cli.output import balance_json, ledger_json

    app = hours_app(sqlite_url)
    with app.ledger.read() as conn:
        [row] = balance_rows(conn, app.settings, "globex")
        lines = ledger_rows(conn, customer_id="globex")
    assert (row.opening, row.credited, row.debited, row.balance) == (
        Decimal("10.00"),
        Decimal("0.33"),
        Decimal("0.66"),
        Decimal("9.67"),
    )
    shown = balance_json(row)
    figures = {k: Decimal(shown[k]) for k in ("opening", "credited", "debited", "balance")}
    assert figures["opening"] + figures["credited"] - figures["debited"] == figures["balance"]
    assert all(len(shown[k].split(".")[1]) == 2 for k in figures)
    assert [(line.amount, line.balance_after) for line in lines] == [
        (Decimal("10.00"), Decimal("10.00")),
        (Decimal("0.33"), Decimal("10.33")),
        (Decimal("-0.33"), Decimal("10.00")),
        (Decimal("-0.33"), Decimal("9.67")),
    ]
    assert [ledger_json(line)["amount"] for line in lines] == ["10.00", "0.33", "-0.33", "-0.33"]

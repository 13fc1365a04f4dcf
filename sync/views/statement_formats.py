"""A `Statement` as JSON, CSV, or a self-contained HTML page with an SVG chart of the balance.

Every format carries the same figures: opening balance, each line with the balance after it,
closing balance; amounts are decimal strings in the budget's unit (currency, or hours with two
decimals) and every shown amount adds up to the shown totals. Lines are dated by their
statement date (the work date for work, see `sync.views.statement`). The HTML needs nothing but
itself, so it can be mailed, printed or opened offline.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from html import escape
from zoneinfo import ZoneInfo

from sync.views.chart import BalancePoint, balance_chart_svg
from sync.views.page_layout import cell, layout, summary, table
from sync.views.statement import GRACE_DAYS, BudgetStatement, Statement

FORMATS = ("html", "csv", "json")


def to_json(statement: Statement) -> str:
    """The statement as JSON; amounts are decimal strings in each budget's unit."""
    data = {
        "customer": statement.customer_id,
        "customer_name": statement.customer_name,
        "currency": statement.currency,
        "from": None if statement.start is None else statement.start.isoformat(),
        "to": None if statement.end is None else statement.end.isoformat(),
        "timezone": statement.timezone,
        "generated_at": statement.generated_at.isoformat(),
        "grace_days": GRACE_DAYS,
        "settled_on": None if statement.settled_on is None else statement.settled_on.isoformat(),
        "provisional": statement.provisional,
        "budgets": [
            {
                "budget": b.budget,
                "unit": b.unit,
                "currency": statement.currency,
                "unit_label": b.unit_label,
                "opening_balance": b.amount(b.opening_minor),
                "added": b.amount(b.added_minor),
                "used": b.amount(b.used_minor),
                "closing_balance": b.amount(b.closing_minor),
                "lines": [
                    {
                        "date": line.date.isoformat(),
                        "kind": line.kind,
                        "work_date": None if line.work_date is None else line.work_date.isoformat(),
                        "person": line.person,
                        "task": line.task,
                        "description": line.description,
                        "hours": line.hours,
                        "amount": b.amount(line.amount_minor),
                        "balance": b.amount(line.balance_minor),
                        "explanation": line.explanation,
                        "late": line.late,
                        "recorded_at": line.recorded_at.isoformat(),
                    }
                    for line in b.lines
                ],
            }
            for b in statement.budgets
        ],
    }
    return json.dumps(data, indent=2) + "\n"


CSV_FIELDS = (
    "customer",
    "budget",
    "unit",
    "date",
    "kind",
    "work_date",
    "person",
    "task",
    "description",
    "hours",
    "amount",
    "balance",
    "explanation",
)


def to_csv(statement: Statement) -> str:
    """One row per line, framed by an opening and a closing row per budget."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for b in statement.budgets:
        head = [statement.customer_id, b.budget, b.unit_label]
        first = "" if statement.start is None else statement.start.isoformat()
        last = "" if statement.end is None else statement.end.isoformat()
        writer.writerow(
            [*head, first, "opening balance", "", "", "", "", "", "", b.amount(b.opening_minor), ""]
        )
        for line in b.lines:
            writer.writerow(
                [
                    *head,
                    line.date.isoformat(),
                    line.kind,
                    "" if line.work_date is None else line.work_date.isoformat(),
                    line.person or "",
                    line.task or "",
                    line.description,
                    line.hours or "",
                    b.amount(line.amount_minor),
                    b.amount(line.balance_minor),
                    line.explanation or "",
                ]
            )
        writer.writerow(
            [*head, last, "closing balance", "", "", "", "", "", "", b.amount(b.closing_minor), ""]
        )
    return buffer.getvalue()


def to_html(statement: Statement) -> str:
    """A self-contained page: summary, chart and every line of each budget."""
    tz = ZoneInfo(statement.timezone)
    period = _period_text(statement)
    parts = [
        f"<h1>Statement: {escape(statement.customer_name)}</h1>",
        f'<p class="muted">{escape(period)} &middot; generated'
        f" {escape(statement.generated_at.astimezone(tz).strftime('%Y-%m-%d %H:%M'))}"
        f" ({escape(statement.timezone)})</p>",
        f'<p class="muted">Work is shown on its work date. Work recorded more than {GRACE_DAYS}'
        " days after the end of its month appears on the day it was recorded, marked late.</p>",
    ]
    if statement.provisional and statement.settled_on is not None:
        parts.append(
            f'<p class="muted">Provisional: work of this period recorded until'
            f" {escape(statement.settled_on.isoformat())} will still appear here.</p>"
        )
    for b in statement.budgets:
        parts.append(f'<section id="budget-{escape(b.budget)}">')
        parts.append(f"<h2>{escape(b.budget)} ({escape(b.unit_label)})</h2>")
        parts.append(
            summary(
                [
                    ("Opening balance", f"{b.amount(b.opening_minor)} {b.unit_label}"),
                    ("Added", f"{b.amount(b.added_minor)} {b.unit_label}"),
                    ("Used", f"{b.amount(b.used_minor)} {b.unit_label}"),
                    ("Closing balance", f"{b.amount(b.closing_minor)} {b.unit_label}"),
                ]
            )
        )
        parts.append(chart_for(b, statement, tz))
        parts.append(_lines_table(b))
        parts.append("</section>")
    return layout(f"Statement {statement.customer_name}", "".join(parts))


def chart_for(b: BudgetStatement, statement: Statement, tz: ZoneInfo) -> str:
    """The budget's balance over the statement's period as SVG, from its first posting on
    (or the period's start, if later), a step on each line's statement date."""
    points: list[BalancePoint] = []
    first = (
        b.starts if statement.start is None or b.starts is None else max(b.starts, statement.start)
    )
    if first is not None:
        points.append(BalancePoint(_midnight(first, tz), b.opening_minor))
    points.extend(BalancePoint(_midnight(line.date, tz), line.balance_minor) for line in b.lines)
    end = statement.generated_at
    if statement.end is not None:
        end = min(end, _midnight(statement.end + dt.timedelta(days=1), tz))
    if points:
        end = max(end, points[-1].at)
    return balance_chart_svg(
        points,
        unit=b.ledger_unit,
        unit_label=b.unit_label,
        title=f"{statement.customer_name} {b.budget}: balance over time",
        end=end,
        tz=tz,
        threshold_minor=b.threshold_minor,
        formatter=b.amount,
    )


def _midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=tz)


def _lines_table(b: BudgetStatement) -> str:
    rows = [
        "<tr>"
        + cell("")
        + cell("Opening balance")
        + cell("")
        + cell("")
        + cell("")
        + cell("", num=True)
        + cell("", num=True)
        + cell(b.amount(b.opening_minor), num=True)
        + "</tr>"
    ]
    for line in b.lines:
        what = escape(line.description)
        if line.late:
            what = f"<strong>late</strong> {what}"
        if line.explanation:
            what += f'<br><span class="muted">{escape(line.explanation)}</span>'
        rows.append(
            "<tr>"
            + cell(line.date.isoformat())
            + f"<td>{what}</td>"
            + cell(None if line.work_date is None else line.work_date.isoformat())
            + cell(line.person)
            + cell(line.task)
            + cell(line.hours, num=True)
            + cell(b.amount(line.amount_minor), num=True)
            + cell(b.amount(line.balance_minor), num=True)
            + "</tr>"
        )
    rows.append(
        "<tr><td></td><td><strong>Closing balance</strong></td><td></td><td></td><td></td>"
        '<td class="num"></td><td class="num"></td>'
        f'<td class="num"><strong>{escape(b.amount(b.closing_minor))}</strong></td></tr>'
    )
    headers = ["Date", "Description", "Work date", "Person", "Task", "Hours tracked"]
    headers += [f"Amount ({b.unit_label})", f"Balance ({b.unit_label})"]
    numeric = ("Hours tracked", f"Amount ({b.unit_label})", f"Balance ({b.unit_label})")
    return table(headers, rows, numeric=numeric)


def _period_text(statement: Statement) -> str:
    if statement.start is None and statement.end is None:
        return "All activity"
    start = "the beginning" if statement.start is None else statement.start.isoformat()
    end = "today" if statement.end is None else statement.end.isoformat()
    return f"From {start} to {end}"


def render(statement: Statement, fmt: str) -> str:
    """The statement in one of `FORMATS`."""
    if fmt == "json":
        return to_json(statement)
    if fmt == "csv":
        return to_csv(statement)
    if fmt == "html":
        return to_html(statement)
    raise ValueError(f"unknown statement format {fmt!r}: use one of {', '.join(FORMATS)}")

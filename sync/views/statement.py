"""The client statement: what a customer prepaid, what it was spent on, and what is left.

A statement is read straight from postings, so it reconciles to the cent with `prepaid
balance` (I2): opening balance + every line = closing balance, and with no end date the closing
balance *is* the balance. A posting belongs to the day it was recorded, in the configured time
zone, as on a bank statement: a period already sent to a client never changes afterwards, and
work synced late shows up in the period it was charged, with its own work date on the line.

`load_rows` is the one query; `build_statement` is pure (rows in, `Statement` out);
`statement_formats` turns a `Statement` into JSON, CSV or a self-contained HTML page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from sync.ledger import CHARGE, schema
from sync.model import HOUR_UNIT, PostingKind, format_amount, to_minor
from sync.rules import budget_unit
from sync.settings import Customer


class LineKind:
    """What a statement line is, in words a client reads."""

    OPENING = "opening"
    TOPUP = "top-up"
    REFILL = "refill"
    WORK = "work"
    ADJUSTMENT = "adjustment"


_WORK_KINDS = (LineKind.WORK, LineKind.ADJUSTMENT)


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One posting as the client sees it. Amounts are minor units of the budget's unit
    (positive credits the budget); `balance_minor` is the balance after this line.
    `hours` is the entry's tracked duration when the line charges the entry's current version;
    `explanation` says how the amount was reached (rounding, rate) or why it was corrected."""

    posting_id: int
    date: dt.date
    kind: str
    description: str
    amount_minor: int
    balance_minor: int
    recorded_at: dt.datetime
    work_date: dt.date | None = None
    person: str | None = None
    task: str | None = None
    hours: str | None = None
    explanation: str | None = None


@dataclass(frozen=True, slots=True)
class BudgetStatement:
    """One budget's part of a statement. `unit` is "money" or "hours"; `ledger_unit` the
    currency code or HOUR that amounts are counted in."""

    budget: str
    unit: str
    ledger_unit: str
    opening_minor: int
    lines: tuple[StatementLine, ...]
    threshold_minor: int | None

    @property
    def closing_minor(self) -> int:
        """Opening plus every line: what is left at the end of the period."""
        return self.opening_minor + sum(line.amount_minor for line in self.lines)

    @property
    def added_minor(self) -> int:
        """What was put into the budget in the period: openings, top-ups, refills."""
        return sum(line.amount_minor for line in self.lines if line.kind not in _WORK_KINDS)

    @property
    def used_minor(self) -> int:
        """What work took out of the budget in the period, net of its corrections."""
        return -sum(line.amount_minor for line in self.lines if line.kind in _WORK_KINDS)

    @property
    def unit_label(self) -> str:
        """What a reader sees next to an amount: the currency code, or "h"."""
        return "h" if self.ledger_unit == HOUR_UNIT else self.ledger_unit

    def amount(self, minor: int) -> str:
        """A decimal string of `minor` in this budget's unit."""
        return format_amount(minor, self.ledger_unit)


@dataclass(frozen=True, slots=True)
class Statement:
    """A customer's statement for `start`..`end` (inclusive local dates; None = open)."""

    customer_id: str
    customer_name: str
    currency: str
    start: dt.date | None
    end: dt.date | None
    timezone: str
    generated_at: dt.datetime
    budgets: tuple[BudgetStatement, ...]


# --- reading --------------------------------------------------------------------------------


def load_rows(
    conn: Connection, customer_id: str, *, since: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Every posting of the customer in ledger order, with its entry's and refill's details.

    With `since`, postings recorded before it are summed per budget into one "carried" row
    dated just before `since`, so a view of recent weeks does not read years of history.
    """
    p, e, r = schema.postings, schema.entries, schema.refills
    rows: list[dict[str, Any]] = []
    where = p.c.customer_id == customer_id
    if since is not None:
        carried = (
            select(p.c.budget_id, p.c.unit, func.sum(p.c.amount_minor))
            .where(where & (p.c.recorded_at < since))
            .group_by(p.c.budget_id, p.c.unit)
        )
        for budget_id, unit, total in conn.execute(carried):
            rows.append(
                {
                    "id": 0,
                    "key": "",
                    "budget_id": budget_id,
                    "kind": "carried",
                    "amount_minor": int(total or 0),
                    "unit": unit,
                    "recorded_at": since - dt.timedelta(microseconds=1),
                }
            )
        where = where & (p.c.recorded_at >= since)
    stmt = (
        select(
            p.c.id,
            p.c.key,
            p.c.budget_id,
            p.c.kind,
            p.c.amount_minor,
            p.c.unit,
            p.c.entry_version,
            p.c.work_date,
            p.c.recorded_at,
            p.c.note,
            p.c.explanation,
            p.c.entry_role,
            e.c.version.label("entry_current_version"),
            e.c.seconds,
            e.c.user_name,
            e.c.user_id,
            e.c.project_name,
            e.c.task_name,
            e.c.description,
            r.c.invoice_number,
            r.c.invoice_id,
        )
        .select_from(p.outerjoin(e, p.c.entry_id == e.c.id).outerjoin(r, p.c.refill_id == r.c.id))
        .where(where)
        .order_by(p.c.id)
    )
    rows.extend(dict(row._mapping) for row in conn.execute(stmt))
    return rows


# --- building -------------------------------------------------------------------------------


def build_statement(
    customer: Customer,
    rows: Sequence[Mapping[str, Any]],
    *,
    start: dt.date | None,
    end: dt.date | None,
    timezone: str,
    generated_at: dt.datetime,
) -> Statement:
    """Split the customer's postings (from `load_rows`) into opening, lines and what comes
    after the period, per configured budget."""
    tz = ZoneInfo(timezone)
    budgets = []
    for budget in customer.budgets:
        unit = budget_unit(customer, budget)
        mine = [row for row in rows if row["budget_id"] == budget.id and row["unit"] == unit]
        days = [row["recorded_at"].astimezone(tz).date() for row in mine]
        # Summed apart from the lines: replicas may record ids and times in slightly
        # different orders, and the opening must hold every posting before the period.
        opening = sum(
            int(row["amount_minor"])
            for row, day in zip(mine, days, strict=True)
            if start is not None and day < start
        )
        running = opening
        lines: list[StatementLine] = []
        openings_seen = 0
        for row, day in zip(mine, days, strict=True):
            if row["kind"] == PostingKind.OPENING:
                openings_seen += 1
            if (start is not None and day < start) or (end is not None and day > end):
                continue
            running += int(row["amount_minor"])
            lines.append(_line(row, day, running, openings_seen))
        threshold = None if budget.refill is None else to_minor(budget.refill.below, unit)
        budgets.append(
            BudgetStatement(
                budget=budget.id,
                unit=budget.unit,
                ledger_unit=unit,
                opening_minor=opening,
                lines=tuple(lines),
                threshold_minor=threshold,
            )
        )
    return Statement(
        customer_id=customer.id,
        customer_name=customer.name,
        currency=customer.currency,
        start=start,
        end=end,
        timezone=timezone,
        generated_at=generated_at,
        budgets=tuple(budgets),
    )


def _line(row: Mapping[str, Any], day: dt.date, balance: int, openings: int) -> StatementLine:
    kind = row["kind"]
    amount = int(row["amount_minor"])
    common: dict[str, Any] = {
        "posting_id": int(row["id"]),
        "date": day,
        "amount_minor": amount,
        "balance_minor": balance,
        "recorded_at": row["recorded_at"],
    }
    if kind == PostingKind.OPENING:
        text = "Opening balance" if openings == 1 else "Opening balance corrected"
        return StatementLine(kind=LineKind.OPENING, description=text, **common)
    if kind == PostingKind.TOPUP:
        note = f": {row['note']}" if row["note"] else ""
        return StatementLine(kind=LineKind.TOPUP, description=f"Prepayment{note}", **common)
    if kind == PostingKind.REFILL_CREDIT:
        invoice = row["invoice_number"] or row["invoice_id"]
        named = f" {invoice}" if invoice else ""
        text = (
            f"Refill invoice{named}"
            if amount >= 0
            else f"Refill invoice{named} void: credit taken back"
        )
        return StatementLine(kind=LineKind.REFILL, description=text, **common)
    first = row["entry_role"] == CHARGE
    current = row["entry_current_version"] is not None and (
        row["entry_version"] == row["entry_current_version"]
    )
    task = " / ".join(x for x in (row["project_name"], row["task_name"]) if x) or None
    seconds = row["seconds"]
    return StatementLine(
        kind=LineKind.WORK if first else LineKind.ADJUSTMENT,
        description=row["description"] or "",
        work_date=row["work_date"],
        person=row["user_name"] or row["user_id"],
        task=task,
        hours=format_amount(int(seconds), HOUR_UNIT) if current and seconds is not None else None,
        explanation=row["explanation"],
        **common,
    )

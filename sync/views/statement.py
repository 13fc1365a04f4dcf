"""The client statement: what a customer prepaid, what it was spent on, and what is left.

A statement is read straight from postings, so it reconciles with `prepaid balance` (I2):
opening balance + every line = closing balance, and with no end date the closing balance *is*
the balance. A client reads a period's statement as the work done in that period, so every
posting gets one statement date (`statement_date`), a function of the posting alone:

- work and its corrections are dated by their work date, as long as they were recorded before
  the work date's month closed: its last day plus `GRACE_DAYS` (as Orb and Metronome do);
- work or a correction recorded later is a *late* line on the day it was recorded, naming its
  work date, so a month already sent to a client stays as it was sent;
- top-ups and refills are dated by the day they were recorded; the budget's first opening
  balance comes before every period (it is where the budget starts, not something added).

Because the date does not depend on the period asked for, consecutive statements chain: the
closing balance of one is the opening balance of the next, whatever the periods.

Hours budgets are shown with two decimals. What is shown must add up to what is shown: each
running balance is rounded (to 0.01 h, half away from zero), and each line shows the difference
between the rounded balance after it and the one before it, so the lines of a statement sum to
its closing balance exactly as printed. Amounts of a statement are therefore kept in *shown*
minor units: cents of the currency, or hundredths of an hour.

`load_rows` is the one query; `build_statement` is pure (rows in, `Statement` out);
`statement_formats` turns a `Statement` into JSON, CSV or a self-contained HTML page.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from sync.ledger import CHARGE, schema
from sync.model import HOUR_UNIT, PostingKind, format_amount, to_minor
from sync.rules import budget_unit
from sync.settings import Customer

GRACE_DAYS = 5
"""Days after a month's end during which work of that month, and corrections to it, still land
in that month's statement. Later ones appear as late lines on the day they were recorded."""

SECONDS_PER_SHOWN_HOUR_UNIT = 36
"""Seconds in one shown minor unit of an hours budget (0.01 h)."""


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
    """One posting as the client sees it. Amounts are shown minor units of the budget's unit
    (positive credits the budget); `balance_minor` is the balance after this line. `date` is
    the statement date (see the module); `late` says the line was recorded after the month of
    its work date closed. `hours` is the entry's tracked duration when the line charges the
    entry's current version; `explanation` says how the amount was reached or corrected."""

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
    late: bool = False


@dataclass(frozen=True, slots=True)
class BudgetStatement:
    """One budget's part of a statement. `unit` is "money" or "hours"; `ledger_unit` the
    currency code or HOUR the ledger counts in. Amounts are in shown minor units (cents, or
    hundredths of an hour). `starts` is the statement date of the budget's first posting."""

    budget: str
    unit: str
    ledger_unit: str
    opening_minor: int
    lines: tuple[StatementLine, ...]
    threshold_minor: int | None
    starts: dt.date | None = None

    @property
    def closing_minor(self) -> int:
        """Opening plus every line: what is left at the end of the period."""
        return self.opening_minor + sum(line.amount_minor for line in self.lines)

    @property
    def added_minor(self) -> int:
        """What was put into the budget in the period: top-ups, refills, opening corrections
        (the opening balance itself is where the budget starts, not something added)."""
        return sum(line.amount_minor for line in self.lines if line.kind not in _WORK_KINDS)

    @property
    def used_minor(self) -> int:
        """What work took out of the budget in the period, net of its corrections."""
        return -sum(line.amount_minor for line in self.lines if line.kind in _WORK_KINDS)

    @property
    def unit_label(self) -> str:
        """What a reader sees next to an amount: the currency code, or "hours"."""
        return "hours" if self.ledger_unit == HOUR_UNIT else self.ledger_unit

    def amount(self, minor: int) -> str:
        """A decimal string of `minor` shown minor units in this budget's unit."""
        if self.ledger_unit == HOUR_UNIT:
            return format(Decimal(minor).scaleb(-2), "f")
        return format_amount(minor, self.ledger_unit)


@dataclass(frozen=True, slots=True)
class Statement:
    """A customer's statement for `start`..`end` (inclusive local dates; None = open).
    Lines dated up to `end` may still change until `settled_on` (the end's month closing):
    None when the statement has no end."""

    customer_id: str
    customer_name: str
    currency: str
    start: dt.date | None
    end: dt.date | None
    timezone: str
    generated_at: dt.datetime
    budgets: tuple[BudgetStatement, ...]
    settled_on: dt.date | None = None

    @property
    def provisional(self) -> bool:
        """Whether late work may still be dated inside this period (see `GRACE_DAYS`)."""
        if self.settled_on is None:
            return False
        return self.generated_at.astimezone(ZoneInfo(self.timezone)).date() <= self.settled_on


# --- reading --------------------------------------------------------------------------------


def load_rows(conn: Connection, customer_id: str) -> list[dict[str, Any]]:
    """Every posting of the customer in ledger order, with its entry's and refill's details.

    Every posting, not just the period's: a posting recorded long after its work date may
    still belong to the period (and the opening is everything dated before it).
    """
    p, e, r = schema.postings, schema.entries, schema.refills
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
        .where(p.c.customer_id == customer_id)
        .order_by(p.c.id)
    )
    return [dict(row._mapping) for row in conn.execute(stmt)]


# --- dating ---------------------------------------------------------------------------------


def month_closes(day: dt.date, grace_days: int = GRACE_DAYS) -> dt.date:
    """The last day on which a posting for work of `day` is still dated `day`: the end of its
    month plus the grace days."""
    last = calendar.monthrange(day.year, day.month)[1]
    return day.replace(day=last) + dt.timedelta(days=grace_days)


def statement_date(
    row: Mapping[str, Any], tz: ZoneInfo, grace_days: int = GRACE_DAYS
) -> tuple[dt.date, bool]:
    """The day a posting appears on a statement, and whether it is late (recorded after the
    month of its work date closed, so it appears on the day it was recorded instead)."""
    recorded = row["recorded_at"].astimezone(tz).date()
    work_date = row["work_date"]
    if work_date is None or row["entry_role"] is None:
        return recorded, False
    if recorded <= month_closes(work_date, grace_days):
        return work_date, False
    return recorded, True


def shown_minor(minor: int, unit: str) -> int:
    """A ledger amount in shown minor units: itself for money, hundredths of an hour (half away
    from zero) for seconds of an hours budget."""
    if unit != HOUR_UNIT:
        return minor
    shown = (Decimal(minor) / SECONDS_PER_SHOWN_HOUR_UNIT).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    return int(shown)


# --- building -------------------------------------------------------------------------------


def build_statement(
    customer: Customer,
    rows: Sequence[Mapping[str, Any]],
    *,
    start: dt.date | None,
    end: dt.date | None,
    timezone: str,
    generated_at: dt.datetime,
    grace_days: int = GRACE_DAYS,
) -> Statement:
    """Date the customer's postings (from `load_rows`), then split them per configured budget
    into the opening (everything dated before `start`), the period's lines, and the rest."""
    tz = ZoneInfo(timezone)
    budgets = []
    for budget in customer.budgets:
        unit = budget_unit(customer, budget)
        mine = [row for row in rows if row["budget_id"] == budget.id and row["unit"] == unit]
        threshold = None if budget.refill is None else to_minor(budget.refill.below, unit)
        budgets.append(
            BudgetStatement(
                budget=budget.id,
                unit=budget.unit,
                ledger_unit=unit,
                threshold_minor=None if threshold is None else shown_minor(threshold, unit),
                **_split(mine, unit, start, end, tz, grace_days),
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
        settled_on=None if end is None else month_closes(end, grace_days),
    )


def _split(
    rows: Sequence[Mapping[str, Any]],
    unit: str,
    start: dt.date | None,
    end: dt.date | None,
    tz: ZoneInfo,
    grace_days: int,
) -> dict[str, Any]:
    """One budget's opening, lines and first date. The first opening posting comes before
    every period; the rest are ordered by statement date, then ledger order. Running balances
    are exact; what a line shows is the difference of the shown balances around it."""
    dated: list[tuple[dt.date | None, bool, Mapping[str, Any]]] = []
    first_opening = True
    for row in rows:
        if row["kind"] == PostingKind.OPENING and first_opening:
            first_opening = False
            dated.append((None, False, row))
            continue
        dated.append((*statement_date(row, tz, grace_days), row))
    dated.sort(key=lambda d: (d[0] is not None, d[0] or dt.date.min, int(d[2]["id"])))
    # the chart starts at the first posting, the opening balance included
    days = [d if d is not None else r["recorded_at"].astimezone(tz).date() for d, _, r in dated]
    exact = 0
    shown_before = 0
    lines: list[StatementLine] = []
    for when, late, row in dated:
        exact += int(row["amount_minor"])
        shown_after = shown_minor(exact, unit)
        if when is None or (start is not None and when < start):
            shown_before = shown_after
            continue
        if end is not None and when > end:
            break
        lines.append(_line(row, when, late, shown_after - shown_before, shown_after))
        shown_before = shown_after
    opening = shown_before - sum(line.amount_minor for line in lines)
    return {"opening_minor": opening, "lines": tuple(lines), "starts": min(days, default=None)}


def _line(
    row: Mapping[str, Any], day: dt.date, late: bool, amount: int, balance: int
) -> StatementLine:
    kind = row["kind"]
    common: dict[str, Any] = {
        "posting_id": int(row["id"]),
        "date": day,
        "amount_minor": amount,
        "balance_minor": balance,
        "recorded_at": row["recorded_at"],
    }
    if kind == PostingKind.OPENING:
        return StatementLine(
            kind=LineKind.OPENING, description="Opening balance corrected", **common
        )
    if kind == PostingKind.TOPUP:
        note = f": {row['note']}" if row["note"] else ""
        return StatementLine(kind=LineKind.TOPUP, description=f"Prepayment{note}", **common)
    if kind == PostingKind.REFILL_CREDIT:
        invoice = row["invoice_number"] or row["invoice_id"]
        named = f" {invoice}" if invoice else ""
        text = (
            f"Refill invoice{named}"
            if int(row["amount_minor"]) >= 0
            else f"Refill invoice{named} void: credit taken back"
        )
        return StatementLine(kind=LineKind.REFILL, description=text, **common)
    first = row["entry_role"] == CHARGE and not late
    current = row["entry_current_version"] is not None and (
        row["entry_version"] == row["entry_current_version"]
    )
    task = " / ".join(x for x in (row["project_name"], row["task_name"]) if x) or None
    seconds = row["seconds"]
    hours = None
    if current and seconds is not None:
        hours = format(Decimal(shown_minor(int(seconds), HOUR_UNIT)).scaleb(-2), "f")
    return StatementLine(
        kind=LineKind.WORK if first else LineKind.ADJUSTMENT,
        description=row["description"] or "",
        work_date=row["work_date"],
        person=row["user_name"] or row["user_id"],
        task=task,
        hours=hours,
        explanation=_late_note(row, day) if late else row["explanation"],
        late=late,
        **common,
    )


def _late_note(row: Mapping[str, Any], day: dt.date) -> str:
    """Why a line sits in another month than its work: it came after that month closed."""
    note = (
        f"late: for work of {row['work_date'].isoformat()}, recorded {day.isoformat()} after"
        f" that month's statement closed"
    )
    return f"{note}; {row['explanation']}" if row["explanation"] else note

"""Read-only views of the ledger for the CLI, the status page and statements.

Every figure is computed from postings at the moment it is asked for, so whatever any report
shows equals a from-scratch recomputation (I2). Rows are typed records holding values (ints,
Decimals in the budget's unit, dates, datetimes); turning them into text is the job of the
edges that show them (the CLI's table, JSON and CSV, the status page, `/metrics`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, literal, null, select, union_all

from sync.ledger import Refill, balances, list_refills, open_refills, schema
from sync.model import HOUR_UNIT, EntryStatus, from_minor, shown_amount, to_minor
from sync.rules import budget_unit
from sync.settings import Settings
from sync.views.chart import BalancePoint

E = schema.entries
P = schema.postings


@dataclass(frozen=True, slots=True)
class RefillSummary:
    """A refill as reports show it. `amount` is in the budget's unit (`unit`: the currency
    code, or "hours"), `invoice_amount` (net), `invoice_total` (tax included, as the sink
    reports it; the net amount until it does) and `amount_paid` (what the sink says was
    received so far, tax included, None when it does not say) in the customer's currency;
    `invoice` is the sink's number for it (or its id)."""

    id: str
    customer: str
    budget: str
    amount: Decimal
    unit: str
    invoice_amount: Decimal
    invoice_total: Decimal
    amount_paid: Decimal | None
    partly_paid: bool
    status: str
    invoice: str | None
    invoice_url: str | None
    error: str | None
    payment_error: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class BalanceRow:
    """One configured budget. `unit` is "money" or "hours" (amounts are then in `currency`
    or in hours); `pending` is what entries waiting for review would deduct once approved,
    `below` the refill threshold (None without automatic refills).

    Amounts are as shown (`shown_amount`: hours to two decimals), and add up as shown:
    `opening + credited - debited == balance`. `balance_minor` is the exact balance in ledger
    units (seconds for hours), for anything that computes with it."""

    customer: str
    customer_name: str
    budget: str
    unit: str
    currency: str
    balance: Decimal
    opening: Decimal
    credited: Decimal
    debited: Decimal
    pending: Decimal
    below: Decimal | None
    open_refill: RefillSummary | None
    balance_minor: int = 0

    @property
    def unit_label(self) -> str:
        """What amounts are counted in: "hours" or the currency code."""
        return "hours" if self.unit == "hours" else self.currency


@dataclass(frozen=True, slots=True)
class EntryRow:
    """A stored time entry with its state (`deleted` when the tracker deleted it). `amount`
    is in `unit` (a currency code or HOUR; None while the entry has no budget); `user`,
    `client`, `project` and `task` are the tracker's names, or its ids when it gave none."""

    id: int
    source: str
    external_id: str
    customer: str | None
    budget: str | None
    status: str
    date: dt.date
    hours: Decimal
    amount: Decimal | None
    unit: str | None
    reason: str | None
    user: str | None
    client: str | None
    project: str | None
    task: str | None
    tags: tuple[str, ...]
    description: str
    version: str
    rule: str | None
    # The name of the entry's priced figures (`Priced.version`): what `entries approve
    # ID@VERSION` and the status page's buttons decide on; None when it cannot be priced.
    priced_version: str | None = None


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A record a source could not read. `id` is the stored entry with the same external id,
    if there is one (what `entries approve` / `exclude` would take); `raw` is what came in."""

    id: int | None
    source: str
    external_id: str | None
    date: dt.date | None
    locator: str
    problem: str
    raw: Any

    @property
    def reason(self) -> str:
        """Where and why, in one line."""
        return f"{self.locator}: {self.problem}"


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One posting, with its budget's balance right after it (both in `unit`, as shown:
    `amount` is the difference of the shown balances before and after it, so a budget's
    amounts add up to its shown balance; for money that is the posting's exact amount)."""

    id: int
    recorded_at: dt.datetime
    work_date: dt.date | None
    customer: str
    budget: str
    kind: str
    amount: Decimal
    unit: str
    balance_after: Decimal
    reason: str
    note: str | None
    entry_id: int | None
    refill_id: str | None
    key: str


@dataclass(frozen=True, slots=True)
class LastRun:
    """The latest sync run of a source; `finished_at` is None while it runs."""

    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str
    counts: Mapping[str, int]
    error: str | None


def balance_rows(
    conn: Connection, settings: Settings, customer_id: str | None = None
) -> list[BalanceRow]:
    """One row per configured budget: balance, its parts, what waits for review, open refill."""
    parts = balances(conn, customer_id)
    pending = _pending(conn)
    refills = open_refills(conn)
    rows = []
    for customer in settings.customers:
        if customer_id is not None and customer.id != customer_id:
            continue
        for budget in customer.budgets:
            unit = budget_unit(customer, budget)
            p = parts.get((customer.id, budget.id))
            opening, credited, debited = (p.opening, p.credited, p.debited) if p else (0, 0, 0)
            # Shown figures of the running totals; the parts are their differences, so what is
            # shown adds up even where hours are rounded.
            shown_opening = shown_amount(opening, unit)
            shown_added = shown_amount(opening + credited, unit)
            shown_balance = shown_amount(opening + credited - debited, unit)
            refill = refills.get((customer.id, budget.id))
            rows.append(
                BalanceRow(
                    customer=customer.id,
                    customer_name=customer.name,
                    budget=budget.id,
                    unit=budget.unit,
                    currency=customer.currency,
                    balance=shown_balance,
                    opening=shown_opening,
                    credited=shown_added - shown_opening,
                    debited=shown_added - shown_balance,
                    pending=shown_amount(pending.get((customer.id, budget.id), 0), unit),
                    below=None
                    if budget.refill is None
                    else shown_amount(to_minor(budget.refill.below, unit), unit),
                    open_refill=None if refill is None else _refill_summary(refill),
                    balance_minor=opening + credited - debited,
                )
            )
    return rows


def _refill_summary(refill: Refill) -> RefillSummary:
    paid = refill.amount_paid_minor
    return RefillSummary(
        id=refill.id,
        customer=refill.customer_id,
        budget=refill.budget_id,
        amount=from_minor(refill.amount_minor, refill.unit),
        unit="hours" if refill.unit == HOUR_UNIT else refill.unit,
        invoice_amount=from_minor(refill.terms.amount_minor, refill.currency),
        invoice_total=from_minor(refill.total_minor, refill.currency),
        amount_paid=None if paid is None else from_minor(paid, refill.currency),
        partly_paid=refill.partly_paid,
        status=refill.status,
        invoice=refill.invoice_number or refill.invoice_id,
        invoice_url=refill.invoice_url,
        error=refill.error,
        payment_error=refill.payment_error,
        created_at=refill.created_at,
    )


def _pending(conn: Connection) -> dict[tuple[str, str], int]:
    """What entries waiting for review would cost once approved, per budget."""
    stmt = (
        select(E.c.customer_id, E.c.budget_id, func.sum(E.c.amount_minor))
        .where((E.c.status == EntryStatus.PENDING) & E.c.deleted.is_(False))
        .group_by(E.c.customer_id, E.c.budget_id)
    )
    return {(c, b): int(total or 0) for c, b, total in conn.execute(stmt)}


def entry_rows(
    conn: Connection,
    *,
    customer_id: str | None = None,
    status: str | None = None,
    source: str | None = None,
    limit: int | None = None,
) -> list[EntryRow]:
    """Time entries with their state, newest first (`invalid_rows` lists unreadable records)."""
    stmt = select(E).order_by(E.c.spent_date.desc(), E.c.id.desc())
    if customer_id is not None:
        stmt = stmt.where(E.c.customer_id == customer_id)
    if status is not None:
        if status == EntryStatus.DELETED:
            stmt = stmt.where(E.c.deleted.is_(True))
        else:
            stmt = stmt.where((E.c.status == status) & E.c.deleted.is_(False))
    if source is not None:
        stmt = stmt.where(E.c.source == source)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        EntryRow(
            id=int(r.id),
            source=r.source,
            external_id=r.external_id,
            customer=r.customer_id,
            budget=r.budget_id,
            status=EntryStatus.DELETED if r.deleted else r.status,
            date=r.spent_date,
            hours=from_minor(int(r.seconds), HOUR_UNIT),
            amount=from_minor(int(r.amount_minor), r.unit) if r.unit else None,
            unit=r.unit,
            reason=r.reason,
            user=r.user_name or r.user_id,
            client=r.client_name or r.client_id,
            project=r.project_name or r.project_id,
            task=r.task_name or r.task_id,
            tags=tuple(json.loads(r.tags or "[]")),
            description=r.description,
            version=r.version,
            rule=r.rule,
            priced_version=r.priced,
        )
        for r in conn.execute(stmt)
    ]


def invalid_rows(
    conn: Connection, *, source: str | None = None, limit: int | None = None
) -> list[InvalidRow]:
    """Unresolved invalid records, newest first."""
    ir = schema.invalid_records
    stmt = select(ir).where(ir.c.resolved_at.is_(None)).order_by(ir.c.id.desc())
    if source is not None:
        stmt = stmt.where(ir.c.source == source)
    if limit is not None:
        stmt = stmt.limit(limit)
    known = {}
    records = conn.execute(stmt).all()
    ext_ids = [r.external_id for r in records if r.external_id]
    if ext_ids:
        for row in conn.execute(
            select(E.c.id, E.c.source, E.c.external_id).where(E.c.external_id.in_(ext_ids))
        ):
            known[(row.source, row.external_id)] = int(row.id)
    return [
        InvalidRow(
            id=known.get((r.source, r.external_id)),
            source=r.source,
            external_id=r.external_id,
            date=r.spent_date,
            locator=r.locator,
            problem=r.reason,
            raw=json.loads(r.raw),
        )
        for r in records
    ]


def ledger_rows(conn: Connection, *, customer_id: str | None = None) -> list[LedgerRow]:
    """Every posting in order, with the running balance of its budget after it."""
    stmt = select(P).order_by(P.c.id)
    if customer_id is not None:
        stmt = stmt.where(P.c.customer_id == customer_id)
    running: dict[tuple[str, str], int] = {}
    rows = []
    for p in conn.execute(stmt):
        key = (p.customer_id, p.budget_id)
        before = running.get(key, 0)
        running[key] = before + int(p.amount_minor)
        # The balance is shown rounded (hours: two decimals) and each line as the difference
        # of the shown balances around it, so the lines add up to the balance as shown.
        shown_after = shown_amount(running[key], p.unit)
        rows.append(
            LedgerRow(
                id=int(p.id),
                recorded_at=p.recorded_at,
                work_date=p.work_date,
                customer=p.customer_id,
                budget=p.budget_id,
                kind=p.kind,
                amount=shown_after - shown_amount(before, p.unit),
                unit=p.unit,
                balance_after=shown_after,
                reason=p.reason,
                note=p.note,
                entry_id=p.entry_id,
                refill_id=p.refill_id,
                key=p.key,
            )
        )
    return rows


def refill_rows(conn: Connection, *, open_only: bool = False) -> list[RefillSummary]:
    """Refills, newest first."""
    return [_refill_summary(r) for r in list_refills(conn, open_only=open_only)]


def last_runs(conn: Connection) -> dict[str, LastRun]:
    """The latest sync run of each source."""
    runs = schema.sync_runs
    latest = (
        select(runs.c.source, func.max(runs.c.id).label("id")).group_by(runs.c.source).subquery()
    )
    stmt = select(runs).join(latest, runs.c.id == latest.c.id)
    return {
        r.source: LastRun(
            started_at=r.started_at,
            finished_at=r.finished_at,
            outcome=r.outcome,
            counts=json.loads(r.counts or "{}"),
            error=r.error,
        )
        for r in conn.execute(stmt)
    }


def balance_points(
    conn: Connection, since: dt.datetime
) -> dict[tuple[str, str, str], list[BalancePoint]]:
    """Every budget's balance over time from `since` on, keyed by (customer, budget, unit):
    the balance carried into `since`, then the balance after each posting recorded since.

    One query for all customers: postings before `since` arrive summed per budget (id 0, so
    they sort first), later ones one by one in ledger order.
    """
    carried = (
        select(
            literal(0).label("id"),
            P.c.customer_id,
            P.c.budget_id,
            P.c.unit,
            func.sum(P.c.amount_minor).label("amount_minor"),
            null().label("recorded_at"),
        )
        .where(P.c.recorded_at < since)
        .group_by(P.c.customer_id, P.c.budget_id, P.c.unit)
    )
    recent = select(
        P.c.id, P.c.customer_id, P.c.budget_id, P.c.unit, P.c.amount_minor, P.c.recorded_at
    ).where(P.c.recorded_at >= since)
    both = union_all(recent, carried).subquery()
    points: dict[tuple[str, str, str], list[BalancePoint]] = {}
    running: dict[tuple[str, str, str], int] = {}
    for r in conn.execute(select(both).order_by(both.c.id)):
        key = (r.customer_id, r.budget_id, r.unit)
        running[key] = running.get(key, 0) + int(r.amount_minor or 0)
        budget_points = points.setdefault(key, [BalancePoint(since, 0)])
        if r.recorded_at is None:
            budget_points[0] = BalancePoint(since, running[key])
        else:
            budget_points.append(BalancePoint(r.recorded_at, running[key]))
    return points
